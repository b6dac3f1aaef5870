/**
 * A stand-in for the browser's `WebSocket`, driven by the test: it records
 * what the client sends and closes, and the test plays the server's part
 * (`serverOpen()`, `serverMessage()`, `serverClose()`, `serverError()`).
 */

/** Every FakeWebSocket made since the last `reset()`, oldest first. */
export const sockets = /** @type {FakeWebSocket[]} */ ([]);

export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  /**
   * @param {string} url
   * @param {string | string[]} [protocols]
   */
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = FakeWebSocket.CONNECTING;
    this.binaryType = "blob";
    /** @type {unknown[]} */
    this.sent = [];
    /** @type {Array<[number | undefined, string | undefined]>} */
    this.closeCalls = [];
    /** @type {((event: Event) => void) | null} */
    this.onopen = null;
    /** @type {((event: {data: unknown}) => void) | null} */
    this.onmessage = null;
    /** @type {((event: Event) => void) | null} */
    this.onerror = null;
    /** @type {((event: {code: number, reason: string, wasClean: boolean}) => void) | null} */
    this.onclose = null;
    sockets.push(this);
  }

  /** @param {unknown} data */
  send(data) {
    if (this.readyState !== FakeWebSocket.OPEN) {
      throw new Error(`InvalidStateError: send() in readyState ${this.readyState}`);
    }
    this.sent.push(data);
  }

  /**
   * Record the close; as a browser does, refuse codes a page may not send.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code, reason) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: the close code ${code} is neither 1000 nor 3000-4999`);
    }
    this.closeCalls.push([code, reason]);
    this.readyState = FakeWebSocket.CLOSING;
  }

  serverOpen() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.(new Event("open"));
  }

  /** @param {unknown} data */
  serverMessage(data) {
    this.onmessage?.({ data });
  }

  /**
   * @param {number} code
   * @param {string} [reason]
   * @param {boolean} [wasClean]
   */
  serverClose(code, reason = "", wasClean = code !== 1006) {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason, wasClean });
  }

  /** A lost connection as a browser reports it: `error`, then `close` with 1006. */
  serverError() {
    this.onerror?.(new Event("error"));
    this.serverClose(1006, "", false);
  }
}

/** Forget the sockets made so far. */
export function reset() {
  sockets.length = 0;
}

/** @returns {FakeWebSocket} The socket made last. */
export function latest() {
  const socket = sockets.at(-1);
  if (socket === undefined) throw new Error("no WebSocket has been made");
  return socket;
}

/**
 * wsviews.js: a small, dependency-free websocket client for wsviews views.
 *
 *     import { connect } from "/static/wsviews/wsviews.js";
 *
 *     const socket = connect("/ws/chat/lobby/");
 *     socket.addEventListener("message", (event) => console.log(event.data));
 *     socket.sendJSON({ text: "hello" });
 *
 * It reconnects with jittered exponential backoff, keeps what is sent while
 * disconnected in a queue that is flushed on the next open, and gives up for
 * good on close codes that say a retry cannot help. Loaded as a module, it
 * also sets `window.WSViews` for classic scripts that run after it.
 * Documented in docs/client.md.
 */

/**
 * Close codes after which the client does not reconnect: the server refused
 * what this client sends, so sending it again would be refused again.
 * 4000-4999 (the application's own codes) do not reconnect either, except
 * 4008 (SLOW_CODE): the server closed a client that fell behind, which may
 * well keep up after reconnecting.
 * @type {ReadonlyArray<number>}
 */
export const NO_RETRY_CODES = Object.freeze([
  1003, // unsupported data: wrong frame type
  1007, // invalid payload: e.g. invalid JSON
  1008, // policy violation
  1009, // message too big
]);

/**
 * The connection states, as `socket.state` reports them.
 * @typedef {"connecting" | "open" | "reconnecting" | "closing" | "closed"} State
 */

/**
 * What `send()` takes: whatever the browser's `WebSocket.send()` takes.
 * @typedef {Parameters<WebSocket["send"]>[0]} Data
 */

/**
 * The fields of each event a `WSViewsSocket` dispatches (see `WSViewsSocket`).
 * @typedef {{reconnected: boolean, flushed: number}} OpenFields
 * @typedef {{data: unknown, text: string | null}} MessageFields
 * @typedef {{code: number, reason: string, wasClean: boolean, willReconnect: boolean,
 *   unsent: Data[]}} CloseFields
 * @typedef {{attempt: number, delay: number, code: number}} ReconnectFields
 * @typedef {{state: State}} StateFields
 */

/**
 * @typedef {object} Options
 * @property {string | string[]} [protocols] Subprotocols to offer in the handshake.
 * @property {boolean} [reconnect=true] Reconnect after the connection drops.
 * @property {number} [minDelay=500] Delay before the first retry, in ms.
 * @property {number} [maxDelay=30000] Longest delay between retries, in ms.
 * @property {number} [factor=2] Each retry waits `factor` times longer than the last.
 * @property {number} [jitter=0.5] Fraction of each delay that is random (0 to 1),
 *   so clients dropped together do not come back together.
 * @property {number} [maxRetries=Infinity] Retries in a row before giving up.
 * @property {number} [stableAfter=5000] A connection open this long (ms) resets the
 *   backoff; one that drops sooner keeps backing off, so a server that accepts
 *   and then fails at once is not hammered.
 * @property {number} [queueLimit=1000] Most messages kept while disconnected.
 * @property {BinaryType} [binaryType="arraybuffer"] How binary messages arrive.
 * @property {(code: number, reason: string) => boolean} [shouldReconnect]
 *   Decide whether a close is worth retrying; defaults to `shouldReconnect()`.
 */

/** @type {Required<Options>} */
export const DEFAULTS = Object.freeze({
  protocols: [],
  reconnect: true,
  minDelay: 500,
  maxDelay: 30000,
  factor: 2,
  jitter: 0.5,
  maxRetries: Infinity,
  stableAfter: 5000,
  queueLimit: 1000,
  binaryType: "arraybuffer",
  shouldReconnect,
});

/** The code wsviews closes a socket with when it falls behind its outbound limit ("slow"). */
export const SLOW_CODE = 4008;

/**
 * Return false for close codes that mean "do not retry": NO_RETRY_CODES and 4000-4999 but SLOW_CODE.
 * @param {number} code
 * @returns {boolean}
 */
export function shouldReconnect(code) {
  if (code === SLOW_CODE) return true;
  return !(NO_RETRY_CODES.includes(code) || (code >= 4000 && code <= 4999));
}

/**
 * Return the ws:// or wss:// URL of `path`, resolved against the page's URL.
 * Absolute ws:// and wss:// URLs are returned as they are.
 * @param {string} path
 * @param {string} [base=location.href]
 * @returns {string}
 */
export function websocketURL(path, base = globalThis.location?.href) {
  const url = new URL(path, base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url.href;
}

/**
 * An event whose extra fields (`data`, `code`, ...) are plain properties.
 * @template {object} [Fields={}]
 */
export class WSViewsEvent extends Event {
  /**
   * @param {string} type
   * @param {Fields} [fields]
   */
  constructor(type, fields = /** @type {Fields} */ ({})) {
    super(type);
    Object.assign(this, fields);
  }
}

/**
 * A websocket that reconnects and queues. Events, each also delivered to the
 * matching `on<type>` property:
 *
 * - `open`: connected; `reconnected` (false the first time), `flushed`
 *   (queued messages just sent).
 * - `message`: `data` (parsed JSON when the text parses, else the text; an
 *   ArrayBuffer for binary), `text` (the raw text, or null for binary).
 * - `close`: the connection closed; `code`, `reason`, `wasClean`,
 *   `willReconnect`, and `unsent` (messages still queued when it gives up).
 * - `error`: the browser reported an error (it never says which; a `close` follows).
 * - `reconnect`: a retry is scheduled; `attempt` (1, 2, ...), `delay` (ms), `code`.
 * - `statechange`: `state` changed.
 */
export class WSViewsSocket extends EventTarget {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {Data[]} */
  #queue = [];
  /** @type {State} */
  #state = "connecting";
  #attempt = 0;
  #opens = 0;
  #openedAt = 0;
  #stopped = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;

  /**
   * @param {string} path Path relative to the page (`/ws/chat/lobby/`), or a ws(s):// URL.
   * @param {Options} [options]
   */
  constructor(path, options = {}) {
    super();
    /** @type {string} */
    this.url = websocketURL(path);
    /** @type {Required<Options>} */
    this.options = { ...DEFAULTS, ...options };
    /** @type {((event: WSViewsEvent<OpenFields> & OpenFields) => void) | null} */
    this.onopen = null;
    /** @type {((event: WSViewsEvent<MessageFields> & MessageFields) => void) | null} */
    this.onmessage = null;
    /** @type {((event: WSViewsEvent<CloseFields> & CloseFields) => void) | null} */
    this.onclose = null;
    /** @type {((event: WSViewsEvent) => void) | null} */
    this.onerror = null;
    /** @type {((event: WSViewsEvent<ReconnectFields> & ReconnectFields) => void) | null} */
    this.onreconnect = null;
    /** @type {((event: WSViewsEvent<StateFields> & StateFields) => void) | null} */
    this.onstatechange = null;
    this.#connect();
  }

  /** @returns {State} */
  get state() {
    return this.#state;
  }

  /** @returns {number} Messages waiting for the connection to open. */
  get queued() {
    return this.#queue.length;
  }

  /**
   * Send a message now if the socket is open, else queue it for the next open.
   * @param {Data} data
   * @returns {boolean} true if sent now, false if queued.
   * @throws {Error} after `close()` or a close that is not retried, or when the queue is full.
   */
  send(data) {
    if (this.#stopped) {
      throw new Error(`wsviews: cannot send on a closed socket (${this.url}); connect again.`);
    }
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(data);
      return true;
    }
    if (this.#queue.length >= this.options.queueLimit) {
      throw new Error(
        `wsviews: ${this.#queue.length} messages are already queued (queueLimit) ` +
          "while disconnected; raise queueLimit or wait for the socket to open.",
      );
    }
    this.#queue.push(data);
    return false;
  }

  /**
   * Send `value` encoded as JSON (see `send()`).
   * @param {unknown} value
   * @returns {boolean}
   */
  sendJSON(value) {
    return this.send(JSON.stringify(value));
  }

  /**
   * Close the connection and stop reconnecting. Queued messages are dropped
   * (the `close` event lists them in `unsent`).
   * @param {number} [code=1000]
   * @param {string} [reason=""]
   */
  close(code = 1000, reason = "") {
    if (this.#stopped) return;
    if (this.#ws) {
      this.#ws.close(code, reason); // throws for a code the browser may not send
      this.#stopped = true;
      this.#setState("closing");
    } else {
      clearTimeout(this.#timer ?? undefined);
      this.#timer = null;
      this.#finish({ code, reason, wasClean: true });
    }
  }

  #connect() {
    this.#timer = null;
    this.#setState("connecting");
    const ws = new WebSocket(this.url, this.options.protocols);
    ws.binaryType = this.options.binaryType;
    ws.onopen = () => this.#opened();
    ws.onmessage = (event) => this.#emit("message", parseMessage(event.data));
    ws.onerror = () => this.#emit("error");
    ws.onclose = (event) => this.#closed(event);
    this.#ws = ws;
  }

  #opened() {
    this.#openedAt = Date.now();
    const reconnected = this.#opens > 0;
    this.#opens += 1;
    // Flush before any handler runs, so what they send goes after the queue.
    let flushed = 0;
    while (this.#queue.length && this.#ws?.readyState === WebSocket.OPEN) {
      this.#ws.send(/** @type {Data} */ (this.#queue.shift()));
      flushed += 1;
    }
    this.#setState("open");
    this.#emit("open", { reconnected, flushed });
  }

  /** @param {CloseEvent} event */
  #closed(event) {
    const { code, reason, wasClean } = event;
    this.#ws = null;
    if (this.#openedAt && Date.now() - this.#openedAt >= this.options.stableAfter) {
      this.#attempt = 0;
    }
    this.#openedAt = 0;
    const retry =
      !this.#stopped &&
      this.options.reconnect &&
      this.#attempt < this.options.maxRetries &&
      this.options.shouldReconnect(code, reason);
    if (!retry) {
      this.#finish({ code, reason, wasClean });
      return;
    }
    const delay = this.#delay();
    this.#attempt += 1;
    // Scheduled before the events, so a handler calling close() cancels it.
    this.#timer = setTimeout(() => this.#connect(), delay);
    this.#setState("reconnecting");
    if (this.#stopped) return;
    this.#emit("close", { code, reason, wasClean, willReconnect: true, unsent: [] });
    if (this.#stopped) return;
    this.#emit("reconnect", { attempt: this.#attempt, delay, code });
  }

  /** @param {{code: number, reason: string, wasClean: boolean}} event */
  #finish({ code, reason, wasClean }) {
    this.#stopped = true;
    const unsent = this.#queue.splice(0);
    this.#setState("closed");
    this.#emit("close", { code, reason, wasClean, willReconnect: false, unsent });
  }

  /** @returns {number} The next retry's delay in ms: exponential, capped, jittered. */
  #delay() {
    const { minDelay, maxDelay, factor, jitter } = this.options;
    const base = Math.min(maxDelay, minDelay * factor ** this.#attempt);
    return Math.round(base * (1 - jitter * Math.random()));
  }

  /** @param {State} state */
  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.#emit("statechange", { state });
  }

  /**
   * Call the `on<type>` property, then the listeners; a throwing handler is
   * reported without breaking the connection's bookkeeping.
   * @param {string} type
   * @param {object} [fields]
   */
  #emit(type, fields) {
    const event = new WSViewsEvent(type, fields);
    const handler = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this))[`on${type}`];
    if (typeof handler === "function") {
      try {
        handler.call(this, event);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
    this.dispatchEvent(event);
  }
}

/**
 * Return the `message` event fields for a frame's data.
 * @param {string | ArrayBuffer | Blob} raw
 * @returns {{data: unknown, text: string | null}}
 */
function parseMessage(raw) {
  if (typeof raw !== "string") return { data: raw, text: null };
  try {
    return { data: JSON.parse(raw), text: raw };
  } catch {
    return { data: raw, text: raw };
  }
}

/**
 * Open a reconnecting websocket to `path` (relative to the page).
 * @param {string} path
 * @param {Options} [options]
 * @returns {WSViewsSocket}
 */
export function connect(path, options) {
  return new WSViewsSocket(path, options);
}

/** @type {typeof globalThis & {WSViews?: object}} */ (globalThis).WSViews = Object.freeze({
  connect,
  shouldReconnect,
  websocketURL,
  WSViewsSocket,
  WSViewsEvent,
  NO_RETRY_CODES,
  SLOW_CODE,
  DEFAULTS,
});

// @ts-check
/**
 * <wsviews-stream-source>: a Turbo Stream source on a websocket that reconnects.
 *
 *     <wsviews-stream-source src="/ws/turbo-streams/?stream=..." reload="rows"></wsviews-stream-source>
 *
 * Turbo's own <turbo-stream-source> opens one WebSocket and never reopens it
 * once it drops. This element opens its socket with wsviews.js (jittered
 * backoff, no retry after 1003/1007/1008/1009) and hands every text message to
 * Turbo, as <turbo-stream-source> does. `{% turbo_stream_from %}` renders it.
 *
 * Nothing is replayed after a drop, so on every open (the first one too: the
 * page was rendered before its socket joined) the <turbo-frame> elements
 * whose ids are listed in `reload` are reloaded, and stream messages wait
 * until they have loaded, then apply in order. Turbo's append and prepend
 * drop an existing element with the same id first, and replace and remove
 * are idempotent, so a change both in a reloaded frame and in a held message
 * shows once. A frame without `src` is loaded from the page's own URL.
 *
 * The `state` attribute mirrors the socket's state ("connecting", "open",
 * "reconnecting", "closed"), for styling. Documented in docs/html.md.
 */

import { connect } from "./wsviews.js";

/**
 * The parts of Turbo's <turbo-frame> element used here.
 * @typedef {HTMLElement & { src: string | null, loaded: Promise<void>, reload(): Promise<void> }} FrameElement
 */

/**
 * The parts of the `window.Turbo` object used here.
 * @typedef {{ connectStreamSource(source: EventTarget): void, disconnectStreamSource(source: EventTarget): void }} TurboGlobal
 */

/** @returns {TurboGlobal | undefined} */
function turbo() {
  return /** @type {{ Turbo?: TurboGlobal }} */ (/** @type {unknown} */ (window)).Turbo;
}

/**
 * Reload `frame`: from its `src`, or from the page's URL if it has none.
 * @param {FrameElement} frame
 * @returns {Promise<void>}
 */
function reloadFrame(frame) {
  if (frame.src) return frame.reload();
  frame.src = location.href;
  return frame.loaded;
}

export class StreamSourceElement extends HTMLElement {
  /** @type {import("./wsviews.js").WSViewsSocket | null} */
  #socket = null;
  /** Messages held while frames reload, or null when none are. @type {string[] | null} */
  #held = null;
  /** Counts opens, so that only the latest one releases held messages. */
  #opens = 0;

  connectedCallback() {
    // Turbo defines <turbo-stream> when it loads; window.Turbo is set by then.
    customElements.whenDefined("turbo-stream").then(() => {
      if (this.isConnected && this.#socket === null) this.#start();
    });
  }

  disconnectedCallback() {
    if (this.#socket === null) return;
    this.#socket.close();
    this.#socket = null;
    turbo()?.disconnectStreamSource(this);
  }

  /** The websocket URL: absolute, or a path on the page's host. */
  get src() {
    return this.getAttribute("src") || "";
  }

  #start() {
    const Turbo = turbo();
    if (!Turbo) {
      console.error("<wsviews-stream-source> needs Turbo: load @hotwired/turbo on the page.");
      return;
    }
    Turbo.connectStreamSource(this);
    const socket = connect(this.src);
    this.#socket = socket;
    socket.addEventListener("statechange", () => this.setAttribute("state", socket.state));
    socket.addEventListener("open", () => this.#resync());
    socket.addEventListener("message", (event) => {
      const text = /** @type {{ text?: string | null }} */ (/** @type {unknown} */ (event)).text;
      if (typeof text === "string") this.#receive(text);
    });
  }

  async #resync() {
    const ids = (this.getAttribute("reload") || "").split(/\s+/).filter(Boolean);
    const frames = /** @type {FrameElement[]} */ (
      ids.map((id) => document.getElementById(id)).filter((frame) => frame?.localName === "turbo-frame")
    );
    if (frames.length === 0) return;
    const open = ++this.#opens;
    // Messages held for an earlier open came before a drop: this reload covers them.
    this.#held = [];
    const results = await Promise.allSettled(frames.map(reloadFrame));
    for (const result of results) {
      if (result.status === "rejected") console.warn("<wsviews-stream-source>: a frame did not reload", result.reason);
    }
    if (open !== this.#opens) return;
    const held = this.#held;
    this.#held = null;
    for (const html of held) this.#deliver(html);
  }

  /** @param {string} html */
  #receive(html) {
    if (this.#held !== null) this.#held.push(html);
    else this.#deliver(html);
  }

  /** @param {string} html */
  #deliver(html) {
    // Turbo listens for "message" events on its stream sources, as on a WebSocket.
    this.dispatchEvent(new MessageEvent("message", { data: html }));
  }
}

if (customElements.get("wsviews-stream-source") === undefined) {
  customElements.define("wsviews-stream-source", StreamSourceElement);
}

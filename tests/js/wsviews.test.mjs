/**
 * Unit tests of the browser client (src/wsviews/static/wsviews/wsviews.js)
 * with a fake WebSocket and mocked timers: the behaviour docs/client.md
 * documents. The real browser and server are in tests/test_browser.py.
 */

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { FakeWebSocket, latest, reset, sockets } from "./fake_websocket.mjs";

// The client reads WebSocket and the page's location when it runs, as in a browser.
/** @type {any} */ (globalThis).WebSocket = FakeWebSocket;
/** @type {any} */ (globalThis).location = { href: "http://example.test/chat/lobby/" };

const wsviews = await import("../../src/wsviews/static/wsviews/wsviews.js");
const { DEFAULTS, NO_RETRY_CODES, SLOW_CODE, WSViewsSocket, connect, shouldReconnect, websocketURL } = wsviews;

/** No jitter: delays are exactly minDelay * factor ** n, capped at maxDelay. */
const EXACT = { jitter: 0, minDelay: 100, maxDelay: 1000 };

/**
 * Record every event of `socket` as a short line, in the order dispatched.
 * @param {InstanceType<typeof WSViewsSocket>} socket
 * @returns {string[]}
 */
function record(socket) {
  /** @type {string[]} */
  const events = [];
  /** @param {any} e */
  const line = (e) => {
    switch (e.type) {
      case "open": return `open reconnected=${e.reconnected} flushed=${e.flushed}`;
      case "message": return `message ${JSON.stringify(e.data)} text=${JSON.stringify(e.text)}`;
      case "close": return `close ${e.code} ${e.willReconnect ? "retry" : "final"} unsent=${e.unsent.length}`;
      case "reconnect": return `reconnect ${e.attempt} after ${e.delay} (${e.code})`;
      case "statechange": return `state ${e.state}`;
      default: return e.type;
    }
  };
  for (const type of ["open", "message", "close", "reconnect", "error", "statechange"]) {
    socket.addEventListener(type, (e) => events.push(line(e)));
  }
  return events;
}

beforeEach(() => {
  reset();
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
});

afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

describe("websocketURL", () => {
  test("resolves a path against the page and turns http: into ws:", () => {
    assert.equal(websocketURL("/ws/chat/lobby/"), "ws://example.test/ws/chat/lobby/");
    assert.equal(websocketURL("../room/", "http://example.test/chat/lobby/"), "ws://example.test/chat/room/");
  });

  test("turns https: into wss: and keeps ws: and wss: URLs as they are", () => {
    assert.equal(websocketURL("/ws/", "https://example.test/page"), "wss://example.test/ws/");
    assert.equal(websocketURL("wss://other.test/ws/", "http://example.test/"), "wss://other.test/ws/");
    assert.equal(websocketURL("ws://other.test:8000/ws/?a=1"), "ws://other.test:8000/ws/?a=1");
  });
});

describe("connecting", () => {
  test("connect() opens a WebSocket at once with the protocols and arraybuffer binaries", () => {
    const socket = connect("/ws/chat/lobby/", { protocols: ["chat.v1"] });
    assert.ok(socket instanceof WSViewsSocket);
    assert.equal(sockets.length, 1);
    assert.equal(latest().url, "ws://example.test/ws/chat/lobby/");
    assert.deepEqual(latest().protocols, ["chat.v1"]);
    assert.equal(latest().binaryType, "arraybuffer");
    assert.equal(socket.url, "ws://example.test/ws/chat/lobby/");
    assert.equal(socket.state, "connecting");
  });

  test("the options in effect are the defaults with the given ones on top", () => {
    const socket = connect("/ws/", { maxRetries: 3, binaryType: "blob" });
    assert.deepEqual(socket.options, { ...DEFAULTS, maxRetries: 3, binaryType: "blob" });
    assert.equal(latest().binaryType, "blob");
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.deepEqual({ ...DEFAULTS, shouldReconnect: null }, {
      protocols: [], reconnect: true, minDelay: 500, maxDelay: 30000, factor: 2, jitter: 0.5,
      maxRetries: Infinity, stableAfter: 5000, queueLimit: 1000, binaryType: "arraybuffer",
      shouldReconnect: null,
    });
    assert.equal(DEFAULTS.shouldReconnect, shouldReconnect);
  });

  test("opening sets the state, then the on<type> property and the listeners get the event", () => {
    const socket = connect("/ws/");
    const events = record(socket);
    /** @type {string[]} */
    const order = [];
    socket.onopen = (e) => order.push(`onopen ${e.reconnected}`);
    socket.addEventListener("open", () => order.push("listener"));
    latest().serverOpen();
    assert.equal(socket.state, "open");
    assert.deepEqual(events, ["state open", "open reconnected=false flushed=0"]);
    assert.deepEqual(order, ["onopen false", "listener"]);
  });

  test("a browser error is an error event; the close that follows is retried", () => {
    const socket = connect("/ws/", EXACT);
    const events = record(socket);
    latest().serverError();
    assert.deepEqual(events, ["error", "state reconnecting", "close 1006 retry unsent=0", "reconnect 1 after 100 (1006)"]);
  });

  test("window.WSViews offers the module's API to classic scripts", () => {
    const api = /** @type {any} */ (globalThis).WSViews;
    assert.ok(Object.isFrozen(api));
    assert.deepEqual(Object.keys(api).sort(), [
      "DEFAULTS", "NO_RETRY_CODES", "SLOW_CODE", "WSViewsEvent", "WSViewsSocket", "connect", "shouldReconnect",
      "websocketURL",
    ]);
    assert.equal(api.connect, connect);
  });
});

describe("sending and the queue", () => {
  test("send() on an open socket sends at once and returns true; sendJSON encodes", () => {
    const socket = connect("/ws/");
    latest().serverOpen();
    assert.equal(socket.send("hello"), true);
    assert.equal(socket.sendJSON({ text: "hi", n: [1, 2] }), true);
    assert.deepEqual(latest().sent, ["hello", '{"text":"hi","n":[1,2]}']);
    assert.equal(socket.queued, 0);
  });

  test("what is sent while connecting is queued and sent in order on open, before the handlers run", () => {
    const socket = connect("/ws/");
    assert.equal(socket.send("one"), false);
    assert.equal(socket.sendJSON({ two: 2 }), false);
    assert.equal(socket.queued, 2);
    assert.deepEqual(latest().sent, []);
    socket.onopen = () => socket.send("from the handler");
    const events = record(socket);
    latest().serverOpen();
    assert.deepEqual(latest().sent, ["one", '{"two":2}', "from the handler"]);
    assert.equal(socket.queued, 0);
    assert.deepEqual(events, ["state open", "open reconnected=false flushed=2"]);
  });

  test("what is sent while waiting to reconnect goes out on the next connection, flagged reconnected", () => {
    const socket = connect("/ws/", EXACT);
    latest().serverOpen();
    socket.send("before");
    const first = latest();
    first.serverClose(1012, "server restarting");
    assert.equal(socket.state, "reconnecting");
    assert.equal(socket.send("while down"), false);
    assert.equal(socket.send("and again"), false);
    const events = record(socket);
    mock.timers.tick(100);
    assert.equal(sockets.length, 2);
    latest().serverOpen();
    assert.deepEqual(first.sent, ["before"]);
    assert.deepEqual(latest().sent, ["while down", "and again"]);
    assert.deepEqual(events, ["state connecting", "state open", "open reconnected=true flushed=2"]);
  });

  test("past queueLimit send() throws, naming the option, and keeps what was queued", () => {
    const socket = connect("/ws/", { queueLimit: 2 });
    socket.send("a");
    socket.send("b");
    assert.throws(() => socket.send("c"), /2 messages are already queued \(queueLimit\).*raise queueLimit/);
    assert.equal(socket.queued, 2);
    latest().serverOpen();
    assert.deepEqual(latest().sent, ["a", "b"]);
  });

  test("binary data is queued and sent as it is", () => {
    const socket = connect("/ws/");
    const bytes = new Uint8Array([1, 2, 3]);
    socket.send(bytes);
    latest().serverOpen();
    assert.equal(latest().sent[0], bytes);
  });
});

describe("messages", () => {
  test("text that parses as JSON arrives parsed in data, the raw text in text", () => {
    const socket = connect("/ws/");
    const events = record(socket);
    latest().serverOpen();
    latest().serverMessage('{"type":"message","text":"hi"}');
    latest().serverMessage("42");
    latest().serverMessage("not json");
    latest().serverMessage('"a string"');
    assert.deepEqual(events.slice(2), [
      'message {"type":"message","text":"hi"} text="{\\"type\\":\\"message\\",\\"text\\":\\"hi\\"}"',
      'message 42 text="42"',
      'message "not json" text="not json"',
      'message "a string" text="\\"a string\\""',
    ]);
  });

  test("binary messages arrive as they came in data, with text null", () => {
    const socket = connect("/ws/");
    /** @type {Array<{data: unknown, text: string | null}>} */
    const got = [];
    socket.onmessage = ({ data, text }) => got.push({ data, text });
    latest().serverOpen();
    const buffer = new ArrayBuffer(4);
    latest().serverMessage(buffer);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.data, buffer);
    assert.equal(got[0]?.text, null);
  });

  test("a throwing on<type> handler is reported later and the listeners still run", () => {
    const socket = connect("/ws/");
    /** @type {string[]} */
    const seen = [];
    socket.onmessage = () => {
      throw new Error("handler bug");
    };
    socket.addEventListener("message", () => seen.push("listener"));
    latest().serverOpen();
    latest().serverMessage("x");
    assert.deepEqual(seen, ["listener"]);
    assert.equal(socket.state, "open");
    assert.throws(() => mock.timers.tick(0), /handler bug/); // rethrown from a timer, as the console shows it
    latest().serverMessage("y");
    assert.deepEqual(seen, ["listener", "listener"]);
  });
});

describe("reconnecting", () => {
  test("retries back off exponentially from minDelay, capped at maxDelay", () => {
    const socket = connect("/ws/", { ...EXACT, maxDelay: 700 });
    const events = record(socket);
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      latest().serverError();
      const delay = Math.min(700, 100 * 2 ** (attempt - 1));
      mock.timers.tick(delay - 1);
      assert.equal(sockets.length, attempt, `retry ${attempt} must wait ${delay} ms`);
      mock.timers.tick(1);
      assert.equal(sockets.length, attempt + 1);
    }
    assert.deepEqual(events.filter((e) => e.startsWith("reconnect")), [
      "reconnect 1 after 100 (1006)", "reconnect 2 after 200 (1006)", "reconnect 3 after 400 (1006)",
      "reconnect 4 after 700 (1006)", "reconnect 5 after 700 (1006)",
    ]);
    assert.equal(socket.state, "connecting");
  });

  test("factor sets the growth, and jitter takes a random part of each delay off", () => {
    mock.method(Math, "random", () => 0.5);
    const socket = connect("/ws/", { minDelay: 1000, maxDelay: 60000, factor: 3, jitter: 0.5 });
    /** @type {number[]} */
    const delays = [];
    socket.onreconnect = ({ delay }) => delays.push(delay);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      latest().serverError();
      mock.timers.tick(60000);
    }
    assert.deepEqual(delays, [750, 2250, 6750]); // 1000 * 3 ** n * (1 - 0.5 * 0.5)
  });

  test("the default delays are 0.25-0.5 s, then 0.5-1 s, 1-2 s ...", () => {
    /** @type {number[]} */
    const delays = [];
    for (const random of [0, 0.999999]) {
      mock.method(Math, "random", () => random);
      const socket = connect("/ws/");
      socket.onreconnect = ({ delay }) => delays.push(delay);
      for (let attempt = 0; attempt < 3; attempt += 1) {
        latest().serverError();
        mock.timers.tick(30000);
      }
      socket.close();
    }
    assert.deepEqual(delays, [500, 1000, 2000, 250, 500, 1000]);
  });

  test("after maxRetries retries in a row the client gives up and hands back what was queued", () => {
    const socket = connect("/ws/", { ...EXACT, maxRetries: 2 });
    socket.send("never sent");
    const events = record(socket);
    /** @type {unknown[]} */
    let unsent = [];
    socket.onclose = (e) => {
      if (!e.willReconnect) unsent = e.unsent;
    };
    latest().serverError();
    mock.timers.tick(100);
    latest().serverError();
    mock.timers.tick(200);
    latest().serverError();
    mock.timers.tick(10000);
    assert.equal(sockets.length, 3);
    assert.deepEqual(events.filter((e) => e.startsWith("close") || e.startsWith("reconnect")), [
      "close 1006 retry unsent=0", "reconnect 1 after 100 (1006)",
      "close 1006 retry unsent=0", "reconnect 2 after 200 (1006)",
      "close 1006 final unsent=1",
    ]);
    assert.deepEqual(unsent, ["never sent"]);
    assert.equal(socket.state, "closed");
    assert.equal(socket.queued, 0);
    assert.throws(() => socket.send("late"), /cannot send on a closed socket \(ws:\/\/example\.test\/ws\/\); connect again/);
  });

  test("maxRetries counts retries in a row: a connection that opened but dropped soon does not reset it", () => {
    const socket = connect("/ws/", { ...EXACT, maxRetries: 2, stableAfter: 5000 });
    const events = record(socket);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      latest().serverOpen();
      mock.timers.tick(4999);
      latest().serverClose(1011, "server error");
      mock.timers.tick(1000);
    }
    assert.equal(socket.state, "closed");
    assert.deepEqual(events.filter((e) => e.startsWith("reconnect")), [
      "reconnect 1 after 100 (1011)", "reconnect 2 after 200 (1011)",
    ]);
  });

  test("a connection open for stableAfter ms resets the backoff", () => {
    const socket = connect("/ws/", { ...EXACT, stableAfter: 5000 });
    /** @type {string[]} */
    const retries = [];
    socket.onreconnect = ({ attempt, delay }) => retries.push(`${attempt}:${delay}`);
    latest().serverError();
    mock.timers.tick(100);
    latest().serverError();
    mock.timers.tick(200);
    latest().serverOpen();
    mock.timers.tick(5000);
    latest().serverClose(1001, "going away");
    mock.timers.tick(100);
    assert.deepEqual(retries, ["1:100", "2:200", "1:100"]);
    assert.equal(sockets.length, 4);
  });

  test("reconnect: false closes for good on the first drop", () => {
    const socket = connect("/ws/", { reconnect: false });
    const events = record(socket);
    latest().serverOpen();
    latest().serverClose(1006);
    mock.timers.tick(60000);
    assert.equal(sockets.length, 1);
    assert.deepEqual(events.slice(-2), ["state closed", "close 1006 final unsent=0"]);
  });
});

describe("close codes", () => {
  test("NO_RETRY_CODES are 1003, 1007, 1008 and 1009", () => {
    assert.deepEqual([...NO_RETRY_CODES], [1003, 1007, 1008, 1009]);
    assert.ok(Object.isFrozen(NO_RETRY_CODES));
  });

  test("a close with 4008 (slow) is retried", () => {
    const socket = connect("/ws/", EXACT);
    latest().serverOpen();
    latest().serverClose(SLOW_CODE, "slow: fell behind its outbound limit");
    assert.equal(shouldReconnect(4008), true);
    assert.equal(socket.state, "reconnecting");
    mock.timers.tick(60000);
    assert.equal(sockets.length, 2);
  });

  for (const code of [1003, 1007, 1008, 1009, 4000, 4321, 4999]) {
    test(`a close with ${code} is not retried: the client stays closed and send() throws`, () => {
      const socket = connect("/ws/", EXACT);
      const events = record(socket);
      latest().serverOpen();
      latest().serverClose(code, "refused");
      mock.timers.tick(60000);
      assert.equal(shouldReconnect(code), false);
      assert.equal(sockets.length, 1);
      assert.equal(socket.state, "closed");
      assert.deepEqual(events.slice(-2), ["state closed", `close ${code} final unsent=0`]);
      assert.throws(() => socket.send("again"), /cannot send on a closed socket/);
    });
  }

  for (const code of [1000, 1001, 1006, 1011, 1012, 1013, 3000, 3999, 5000]) {
    test(`a close with ${code} is retried`, () => {
      const socket = connect("/ws/", EXACT);
      latest().serverOpen();
      latest().serverClose(code);
      assert.equal(shouldReconnect(code), true);
      assert.equal(socket.state, "reconnecting");
      mock.timers.tick(100);
      assert.equal(sockets.length, 2);
    });
  }

  test("a shouldReconnect option decides instead, given the code and the reason", () => {
    /** @type {Array<[number, string]>} */
    const asked = [];
    const socket = connect("/ws/", {
      ...EXACT,
      shouldReconnect: (code, reason) => {
        asked.push([code, reason]);
        return reason !== "banned";
      },
    });
    latest().serverClose(1008, "slow down");
    mock.timers.tick(100);
    assert.equal(sockets.length, 2);
    latest().serverClose(1000, "banned");
    mock.timers.tick(60000);
    assert.equal(sockets.length, 2);
    assert.equal(socket.state, "closed");
    assert.deepEqual(asked, [[1008, "slow down"], [1000, "banned"]]);
  });
});

describe("close()", () => {
  test("closes the connection with 1000, goes to closing, then closed for good", () => {
    const socket = connect("/ws/", EXACT);
    latest().serverOpen();
    const events = record(socket);
    socket.close();
    assert.deepEqual(latest().closeCalls, [[1000, ""]]);
    assert.equal(socket.state, "closing");
    assert.throws(() => socket.send("x"), /cannot send on a closed socket/);
    latest().serverClose(1000);
    mock.timers.tick(60000);
    assert.equal(sockets.length, 1);
    assert.equal(socket.state, "closed");
    assert.deepEqual(events, ["state closing", "state closed", "close 1000 final unsent=0"]);
    socket.close(); // a second close is a no-op
    assert.equal(latest().closeCalls.length, 1);
  });

  test("passes the code and reason on; a code the browser refuses throws and changes nothing", () => {
    const socket = connect("/ws/");
    latest().serverOpen();
    assert.throws(() => socket.close(1001, "leaving"), /InvalidAccessError/);
    assert.equal(socket.state, "open");
    assert.equal(socket.send("still open"), true);
    socket.close(4001, "done here");
    assert.deepEqual(latest().closeCalls, [[4001, "done here"]]);
  });

  test("while waiting to reconnect, cancels the retry and drops the queue into unsent", () => {
    const socket = connect("/ws/", EXACT);
    latest().serverError();
    socket.send("queued");
    const events = record(socket);
    /** @type {unknown[]} */
    let unsent = [];
    socket.onclose = (e) => {
      unsent = e.unsent;
    };
    socket.close(4000, "bye");
    mock.timers.tick(60000);
    assert.equal(sockets.length, 1);
    assert.equal(socket.state, "closed");
    assert.deepEqual(events, ["state closed", "close 4000 final unsent=1"]);
    assert.deepEqual(unsent, ["queued"]);
  });

  test("called from a close handler, cancels the retry that was scheduled, and no reconnect event follows", () => {
    const socket = connect("/ws/", EXACT);
    const events = record(socket);
    socket.onclose = (e) => {
      if (e.willReconnect) socket.close();
    };
    latest().serverError();
    mock.timers.tick(60000);
    assert.equal(sockets.length, 1);
    assert.equal(socket.state, "closed");
    assert.deepEqual(events, [
      "error", "state reconnecting", "state closed", "close 1000 final unsent=0", "close 1006 retry unsent=0",
    ]);
  });

  test("called from a reconnect handler, cancels that retry", () => {
    const socket = connect("/ws/", EXACT);
    socket.onreconnect = () => socket.close();
    latest().serverError();
    mock.timers.tick(60000);
    assert.equal(sockets.length, 1);
    assert.equal(socket.state, "closed");
  });
});

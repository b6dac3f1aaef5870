// The /hub-chat/<room>/ page: centrifuge-js (loaded before this module as the global
// Centrifuge) against the wsviews hub. Messages are publications into room:<room>, shown in
// offset order, each once, whether they come live, from history on join, or from recovery.

const main = document.querySelector("main");
const room = main.dataset.room;
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const endpoint = `${scheme}//${location.host}${main.dataset.endpoint}`;
const HISTORY_ON_JOIN = 100;
const TYPING_EVERY_MS = 2000; // at most one signal this often while typing
const TYPING_SHOWN_MS = 3500; // a name stays in the indicator this long after its last signal

const centrifuge = new Centrifuge(endpoint, {
  token: JSON.parse(document.getElementById("hub-token").textContent),
  // Called when the token expires: the Django view signs a new one from the session.
  async getToken() {
    const response = await fetch(main.dataset.tokenUrl, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`token view answered ${response.status}`);
    return (await response.json()).token;
  },
  maxReconnectDelay: 5000,
});
const chat = centrifuge.newSubscription(`room:${room}`, { joinLeave: true, recoverable: true });
const typing = centrifuge.newSubscription(`typing:${room}`);
window.hubChat = { centrifuge, chat, typing, refreshRooms }; // for the browser console and tests

const banner = document.getElementById("banner");
const messages = document.getElementById("messages");
let myClient = "";
let everConnected = false;
let epoch = "";

// Connection state: the header badge, the banner while reconnecting, a line in the log.

centrifuge.on("connecting", (ctx) => {
  demo.showState(everConnected ? "reconnecting" : "connecting");
  if (everConnected) {
    banner.hidden = false;
    demo.log("warn", `disconnected (${ctx.code} ${ctx.reason}): reconnecting`);
  }
});
centrifuge.on("connected", (ctx) => {
  myClient = ctx.client;
  banner.hidden = true;
  demo.showState("open");
  demo.log("info", everConnected ? "reconnected" : `connected over ${ctx.transport}`);
  everConnected = true;
});
centrifuge.on("disconnected", (ctx) => {
  demo.showState("closed");
  banner.hidden = false;
  banner.textContent = `Disconnected: ${ctx.reason} (${ctx.code}); not reconnecting.`;
  demo.log("warn", `disconnected for good: ${ctx.code} ${ctx.reason}`);
});

// Messages: one <li> per offset, kept in offset order.

/** Show one publication, unless it is already shown; return whether it was new. */
function show(publication) {
  const offset = publication.offset || 0;
  if (offset && messages.querySelector(`li[data-offset="${offset}"]`)) return false;
  const data = publication.data || {};
  const item = document.createElement("li");
  item.className = data.announcement ? "in announcement" : "in";
  item.dataset.offset = String(offset);
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = data.announcement ? "announcement" : (publication.info?.connInfo?.name || "?");
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = String(data.text ?? "");
  item.append(who, text);
  const later = offset && [...messages.children].find((li) => Number(li.dataset.offset) > offset);
  messages.insertBefore(item, later || null);
  if (!later) messages.scrollTop = messages.scrollHeight;
  return true;
}

/** Load the room's last messages (on first join, or when recovery could not cover a gap). */
async function loadHistory() {
  const result = await chat.history({ limit: HISTORY_ON_JOIN, reverse: true });
  if (epoch && result.epoch !== epoch) messages.replaceChildren(); // a new stream: old offsets mean nothing
  epoch = result.epoch;
  for (const publication of result.publications.reverse()) show(publication);
}

chat.on("publication", (ctx) => {
  show(ctx);
  if (ctx.info) stoppedTyping(ctx.info.client);
});
chat.on("subscribed", async (ctx) => {
  epoch = epoch || ctx.streamPosition?.epoch || "";
  if (ctx.wasRecovering && ctx.recovered) {
    demo.log("info", `rejoined #${room}: missed messages recovered`);
  } else {
    if (ctx.wasRecovering) demo.log("warn", `rejoined #${room}: could not recover, reloading history`);
    else demo.log("info", `joined #${room}`);
    await loadHistory().catch((error) => demo.log("warn", `history: ${error.message}`));
  }
  await flushOutbox();
  await loadPresence().catch((error) => demo.log("warn", `presence: ${error.message}`));
});
chat.on("error", (ctx) => demo.log("warn", `chat:${room}: ${ctx.error.message}`));

// Presence: who is here, from presence() on each subscribe, then join and leave pushes.

const here = new Map(); // client id -> name

function renderPresence() {
  const list = document.getElementById("presence");
  const items = [...here].sort((a, b) => a[1].localeCompare(b[1])).map(([client, name]) => {
    const item = document.createElement("li");
    item.dataset.client = client;
    item.textContent = name;
    if (client === myClient) item.className = "me";
    return item;
  });
  list.replaceChildren(...items);
}

async function loadPresence() {
  const result = await chat.presence();
  here.clear();
  for (const [client, info] of Object.entries(result.clients)) here.set(client, info.connInfo?.name || "?");
  renderPresence();
}

chat.on("join", (ctx) => {
  here.set(ctx.info.client, ctx.info.connInfo?.name || "?");
  renderPresence();
});
chat.on("leave", (ctx) => {
  here.delete(ctx.info.client);
  stoppedTyping(ctx.info.client);
  renderPresence();
});

// Typing: {"typing": true} publications into typing:<room>, which keeps no history.

const typists = new Map(); // client id -> {name, timer}

function renderTyping() {
  const names = [...typists.values()].map((typist) => typist.name);
  document.getElementById("typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function stoppedTyping(client) {
  const typist = typists.get(client);
  if (!typist) return;
  clearTimeout(typist.timer);
  typists.delete(client);
  renderTyping();
}

typing.on("publication", (ctx) => {
  const client = ctx.info?.client;
  if (!client || client === myClient) return;
  clearTimeout(typists.get(client)?.timer);
  const timer = setTimeout(() => stoppedTyping(client), TYPING_SHOWN_MS);
  typists.set(client, { name: ctx.info.connInfo?.name || "?", timer });
  renderTyping();
});

const input = document.getElementById("message");
let lastSignal = 0;
input.addEventListener("input", () => {
  const now = Date.now();
  if (!input.value || now - lastSignal < TYPING_EVERY_MS || typing.state !== "subscribed") return;
  lastSignal = now;
  typing.publish({ typing: true }).catch(() => {}); // a lost signal only dims the indicator
});

// Sending: a publication; the hook in myapp/hub.py checks it, then everyone gets it back.
// What is typed while the room is not subscribed waits in the outbox, sent in order once it is.

const outbox = [];

async function publish(text) {
  try {
    await chat.publish({ text });
  } catch (error) {
    demo.log("warn", `not sent (${error.code} ${error.message}): ${text}`);
  }
}

async function flushOutbox() {
  while (outbox.length && chat.state === "subscribed") await publish(outbox.shift());
}

document.getElementById("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  lastSignal = 0;
  if (chat.state === "subscribed" && !outbox.length) {
    await publish(text);
  } else {
    outbox.push(text);
    demo.log("info", `queued until reconnected: ${text}`);
  }
});

const announce = document.getElementById("announce");
announce.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(announce.action, {
    method: "POST", body: new FormData(announce), headers: { "X-Requested-With": "fetch" },
  });
  if (response.ok) announce.reset();
  else demo.log("warn", `announcement refused: ${response.status} ${await response.text()}`);
});

// The other rooms' head counts: an RPC answered by @hub.rpc("rooms") in myapp/hub.py.

const ROOMS_EVERY_MS = 15000;

async function refreshRooms() {
  const { data } = await centrifuge.rpc("rooms", {});
  for (const count of document.querySelectorAll(".count[data-room]")) {
    const clients = data[count.dataset.room];
    count.textContent = clients === undefined ? "" : ` (${clients} here)`;
  }
  return data;
}
centrifuge.on("connected", () => refreshRooms().catch(() => {}));
setInterval(() => {
  if (centrifuge.state === "connected") refreshRooms().catch(() => {});
}, ROOMS_EVERY_MS);

chat.subscribe();
typing.subscribe();
centrifuge.connect();

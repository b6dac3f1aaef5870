// Drive the real centrifuge-js SDK against the hub core served by tests/hub/driver.py.
// argv[2]: JSON {url, tokens: {ann: [...], bob: "..."}}. Prints one JSON object per step;
// the Python test asserts on them. Every wait is bounded.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const cfg = JSON.parse(process.argv[2]);
const out = (step, data) => console.log(JSON.stringify({ step, ...data }));
const annTokens = [...cfg.tokens.ann];

function waitFor(emitter, event, ms = 4000, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    const handler = (ctx) => {
      if (!predicate(ctx)) return;
      clearTimeout(timer);
      emitter.removeListener(event, handler);
      resolve(ctx);
    };
    emitter.on(event, handler);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pubData = (ctx) => ({ data: ctx.data, offset: ctx.offset, user: ctx.info && ctx.info.user });

async function main() {
  const ann = new Centrifuge(cfg.url, {
    websocket: WebSocket, name: 'js-test', getToken: async () => annTokens.shift(),
  });
  const annStates = [];
  ann.on('connected', (ctx) => annStates.push('connected'));
  ann.on('disconnected', (ctx) => annStates.push(`disconnected:${ctx.code}`));
  ann.on('connecting', (ctx) => annStates.push(`connecting:${ctx.code}`));
  ann.connect();
  const connected = await waitFor(ann, 'connected');
  out('connected', { client: connected.client.length > 0, transport: connected.transport });

  const room = ann.newSubscription('chat:room', { recoverable: true, positioned: true, joinLeave: true });
  const annPubs = [];
  const joins = [];
  room.on('publication', (ctx) => annPubs.push(pubData(ctx)));
  room.on('join', (ctx) => joins.push(ctx.info.user));
  room.on('leave', (ctx) => joins.push(`-${ctx.info.user}`));
  room.subscribe();
  const subscribed = await waitFor(room, 'subscribed');
  out('subscribed', { recoverable: subscribed.recoverable, positioned: subscribed.positioned,
    offset: subscribed.streamPosition.offset, epoch: subscribed.streamPosition.epoch.length > 0 });

  const bob = new Centrifuge(cfg.url, { websocket: WebSocket, token: cfg.tokens.bob });
  bob.connect();
  await waitFor(bob, 'connected');
  const bobRoom = bob.newSubscription('chat:room');
  bobRoom.subscribe();
  await waitFor(bobRoom, 'subscribed');
  await bobRoom.publish({ text: 'hi' });
  await waitFor(room, 'publication', 4000, () => true).catch(() => null);
  await sleep(100);
  out('published', { pubs: annPubs, joins });

  const presence = await room.presence();
  const stats = await room.presenceStats();
  out('presence', { users: Object.values(presence.clients).map((c) => c.user).sort(),
    numClients: stats.numClients, numUsers: stats.numUsers });

  await bobRoom.publish({ text: 'two' });
  await bobRoom.publish({ text: 'three' });
  await sleep(100);
  const history = await room.history({ limit: 10 });
  const reversed = await room.history({ limit: 2, reverse: true });
  out('history', { offsets: history.publications.map((p) => p.offset), top: history.offset,
    reversed: reversed.publications.map((p) => p.data.text) });
  try {
    await room.history({ limit: 5, since: { offset: 1, epoch: 'not-the-epoch' } });
    out('history-epoch', { code: 0 });
  } catch (e) {
    out('history-epoch', { code: e.code });
  }

  const echoed = await ann.rpc('echo', { a: 1 });
  let rpcError = null;
  try { await ann.rpc('missing', {}); } catch (e) { rpcError = e.code; }
  out('rpc', { data: echoed.data, missing: rpcError });
  await ann.send({ note: 'fire and forget' });

  // Recovery: ann goes away, bob publishes twice, ann comes back and recovers both.
  ann.disconnect();
  await sleep(100);
  await bobRoom.publish({ text: 'missed-1' });
  await bobRoom.publish({ text: 'missed-2' });
  const seen = annPubs.length;
  ann.connect();
  const resubscribed = await waitFor(room, 'subscribed');
  await sleep(200);
  out('recovered', { wasRecovering: resubscribed.wasRecovering, recovered: resubscribed.recovered,
    missed: annPubs.slice(seen).map((p) => p.data.text) });

  // The first connection token expires in a few seconds: the SDK refreshes it and stays connected.
  await sleep(cfg.refreshWaitMs);
  out('refreshed', { state: ann.state, states: annStates });

  const unknown = ann.newSubscription('nowhere:x');
  unknown.subscribe();
  const unsubscribed = await waitFor(unknown, 'unsubscribed');
  const privateSub = ann.newSubscription('$secret');
  privateSub.subscribe();
  const privateUnsub = await waitFor(privateSub, 'unsubscribed');
  out('refused', { unknown: unsubscribed.code, private: privateUnsub.code });

  const kicked = waitFor(bob, 'disconnected');
  bob.rpc('kick', {}).catch(() => null);
  const bobGone = await kicked;
  out('kicked', { code: bobGone.code, state: bob.state });

  ann.disconnect();
}

main().then(() => process.exit(0), (e) => { out('failed', { error: String(e && e.stack || e) }); process.exit(1); });

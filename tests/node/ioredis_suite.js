// ioredis (npm) against shardgate, run by
// crates/shardgate-bin/tests/node_clients.rs with NODE_PATH pointing at the
// packages installed from tests/node/package-lock.json. Every check runs
// over RESP3 (ioredis 6's default: HELLO 3) and again over RESP2; then a
// client lives through a restart of the redis-server behind a one-shard
// pool. Exits non-zero with the failing check's name.
//
// usage: node ioredis_suite.js SHARDED_PORT ONE_SHARD_PORT
"use strict";

const Redis = require("ioredis");
const { version } = require("ioredis/package.json");
const h = require("./harness");

const [sharded, oneShard] = process.argv.slice(2).map(Number);

function connect(port, options = {}) {
  const client = new Redis({ host: "127.0.0.1", port, ...options });
  client.on("error", () => {}); // reconnects are expected in the restart check
  return client;
}

async function suite(protocol) {
  const p = `io${protocol}:`;
  const check = (name, ...rest) => h.check(`RESP${protocol} ${name}`, ...rest);
  const r = connect(sharded, { protocol });
  check("ping", (await r.ping()) === "PONG");
  check("protocol negotiated through the proxy", h.respOf(await r.client("INFO")) === protocol);

  // Pipelines: 200 writes over every shard in one batch, then a split MGET.
  const pipeline = r.pipeline();
  for (let i = 0; i < 200; i++) pipeline.set(`${p}k${i}`, String(i));
  const written = await pipeline.exec();
  check("pipeline of 200 SETs", written.length === 200 && written.every(([err, ok]) => !err && ok === "OK"));
  const keys = Array.from({ length: 200 }, (_, i) => `${p}k${i}`);
  const values = await r.mget(keys);
  check("mget across shards", values.every((v, i) => v === String(i)), values.slice(0, 5));
  const auto = connect(sharded, { protocol, enableAutoPipelining: true });
  const gets = await Promise.all(keys.map((k) => auto.get(k)));
  check("auto-pipelined GETs", gets.every((v, i) => v === String(i)));
  check("del across shards", (await r.del(keys)) === 200);

  // MULTI/EXEC, and WATCH aborting EXEC after another client's write.
  const tx = await r.multi().set(`{${p}acct}a`, "1").incr(`{${p}acct}a`).get(`{${p}acct}a`).exec();
  check("multi/exec", JSON.stringify(tx) === JSON.stringify([[null, "OK"], [null, 2], [null, "2"]]), tx);
  await r.set(`{${p}acct}balance`, "100");
  await r.watch(`{${p}acct}balance`);
  await connect(sharded, { protocol }).incrby(`{${p}acct}balance`, 50);
  check("watch conflict aborts exec", (await r.multi().set(`{${p}acct}balance`, "70").exec()) === null);
  await r.watch(`{${p}acct}balance`);
  const retried = await r.multi().decrby(`{${p}acct}balance`, 30).exec();
  check("exec after an untouched watch", retried[0][1] === 120, retried);

  // Pub/Sub: a channel, and a pattern that matches channels on every shard.
  const sub = connect(sharded, { protocol });
  const messages = [];
  const pmessages = new Set();
  sub.on("message", (channel, message) => messages.push([channel, message]));
  sub.on("pmessage", (_pattern, channel) => pmessages.add(channel));
  await sub.subscribe(`${p}news`);
  check("publish reaches the subscriber", (await r.publish(`${p}news`, "hello")) === 1);
  await h.eventually(`RESP${protocol} message received`, () =>
    messages.some(([c, m]) => c === `${p}news` && m === "hello"),
  );
  const psub = connect(sharded, { protocol });
  psub.on("pmessage", (_pattern, channel) => pmessages.add(channel));
  await psub.psubscribe(`${p}chan.*`);
  const channels = await h.namesOnDifferentShards((args) => r.call(...args), `${p}chan.`, 3);
  for (const channel of channels) await r.publish(channel, `to ${channel}`);
  await h.eventually(`RESP${protocol} pmessage from every shard`, () =>
    channels.every((c) => pmessages.has(c)),
  );

  // Blocking pop: BLPOP waits (CLIENT LIST through the proxy shows it
  // blocked) until another connection pushes.
  const blocker = connect(sharded, { protocol });
  await r.del(`${p}queue`);
  const popped = blocker.blpop(`${p}queue`, 5);
  await h.eventually(`RESP${protocol} blpop is blocked`, async () =>
    /cmd=blpop/.test(await r.client("LIST")),
  );
  check("lpush from another connection", (await r.lpush(`${p}queue`, "job")) === 1);
  const woken = await h.within(5000, popped, "blpop");
  check("blpop woken by the push", JSON.stringify(woken) === JSON.stringify([`${p}queue`, "job"]), woken);
  check("blpop times out empty", (await blocker.blpop(`${p}nothing`, 0.2)) === null);

  // Scripts: EVAL, SCRIPT LOAD + EVALSHA, an unknown SHA, and
  // defineCommand (EVALSHA first, EVAL when answered NOSCRIPT: a body
  // neither Redis nor the proxy has seen).
  const lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  check("eval", (await r.eval(lua, 1, `${p}counter`, 5)) === 5);
  const sha = await r.script("LOAD", lua);
  check("evalsha after script load", (await r.evalsha(sha, 1, `${p}counter`, 2)) === 7);
  check("script exists on every shard", JSON.stringify(await r.script("EXISTS", sha)) === "[1]");
  let noscript;
  try {
    await r.evalsha("0".repeat(40), 1, `${p}counter`, 1);
  } catch (err) {
    noscript = err.message;
  }
  check("evalsha of an unknown sha is NOSCRIPT", String(noscript).startsWith("NOSCRIPT"), noscript);
  const fresh = `${lua} -- ioredis RESP${protocol}`;
  r.defineCommand(`addTo${protocol}`, { numberOfKeys: 1, lua: fresh });
  check("defineCommand falls back to EVAL", (await r[`addTo${protocol}`](`${p}counter`, 3)) === 10);
  check("defineCommand then uses EVALSHA", (await r[`addTo${protocol}`](`${p}counter`, 1)) === 11);

  // RESP3 reply types through the proxy: maps and doubles.
  if (protocol === 3) {
    const typed = connect(sharded, { protocol: 3, replyMapping: "resp3" });
    await typed.hset(`${p}h`, "a", "1");
    const map = await typed.call("HGETALL", `${p}h`);
    check("map reply as an object", JSON.stringify(map) === '{"a":"1"}', map);
    await typed.zadd(`${p}z`, 1.5, "m");
    const score = await typed.zscore(`${p}z`, "m");
    check("double reply as a number", score === 1.5, score);
    typed.disconnect();
  } else {
    await r.hset(`${p}h`, "a", "1");
    const flat = await r.call("HGETALL", `${p}h`);
    check("map reply as a flat array", JSON.stringify(flat) === '["a","1"]', flat);
  }

  for (const client of [r, auto, sub, psub, blocker]) client.disconnect();
}

// The redis-server behind a one-shard pool is killed and a new one started
// on its port: commands fail meanwhile (an error, not a hang), then
// succeed again on the same client; a subscriber hears again.
async function restart() {
  const check = h.check;
  const r = connect(oneShard, { maxRetriesPerRequest: 50 });
  const sub = connect(oneShard);
  let heard = 0;
  sub.on("message", () => heard++);
  await sub.subscribe("after-restart");
  check("restart: write before", (await r.set("survivor", "before")) === "OK");
  await h.control("kill-backend");
  let failure;
  try {
    await h.within(5000, r.get("survivor"), "GET while the backend is down");
  } catch (err) {
    failure = err.message;
  }
  check(`restart: a command while the backend is down fails (${failure})`, failure !== undefined && !failure.startsWith("no answer"), failure);
  await h.control("start-backend");
  await h.eventually("restart: commands succeed again", async () => (await r.set("survivor", "after")) === "OK");
  check("restart: the new server has the write", (await r.get("survivor")) === "after");
  await h.eventually("restart: the subscriber hears again", async () => {
    await r.publish("after-restart", "hello");
    return heard > 0;
  });
  r.disconnect();
  sub.disconnect();
}

(async () => {
  console.log(`ioredis ${version}`);
  await suite(3);
  await suite(2);
  await restart();
  h.finish("ioredis");
})().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`);
  process.exit(1);
});

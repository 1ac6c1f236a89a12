// node-redis (npm package `redis`) against shardgate, run by
// crates/shardgate-bin/tests/node_clients.rs with NODE_PATH pointing at the
// packages installed from tests/node/package-lock.json. Every check runs
// over RESP3 (node-redis 6's default: HELLO 3) and again over RESP2; then
// a client lives through a restart of the redis-server behind a one-shard
// pool. Exits non-zero with the failing check's name.
//
// usage: node node_redis_suite.js SHARDED_PORT ONE_SHARD_PORT
"use strict";

const { createClient, defineScript, WatchError } = require("redis");
const { version } = require("redis/package.json");
const h = require("./harness");

const [sharded, oneShard] = process.argv.slice(2).map(Number);

async function connect(port, options = {}) {
  const client = createClient({
    socket: { host: "127.0.0.1", port, reconnectStrategy: () => 50 },
    ...options,
  });
  client.on("error", () => {}); // reconnects are expected in the restart check
  await client.connect();
  return client;
}

async function suite(protocol) {
  const p = `nr${protocol}:`;
  const check = (name, ...rest) => h.check(`RESP${protocol} ${name}`, ...rest);
  const r = await connect(sharded, { RESP: protocol });
  const closing = [r];
  const more = async (options = {}) => {
    const client = await connect(sharded, { RESP: protocol, ...options });
    closing.push(client);
    return client;
  };
  check("ping", (await r.ping()) === "PONG");
  const info = await r.sendCommand(["CLIENT", "INFO"]);
  check("protocol negotiated through the proxy", h.respOf(info) === protocol, String(info));

  // Pipelines: 200 writes over every shard in one batch, then a split MGET.
  const keys = Array.from({ length: 200 }, (_, i) => `${p}k${i}`);
  const batch = r.multi();
  keys.forEach((k, i) => batch.set(k, String(i)));
  const written = await batch.execAsPipeline();
  check("pipeline of 200 SETs", written.length === 200 && written.every((ok) => ok === "OK"));
  const values = await r.mGet(keys);
  check("mget across shards", values.every((v, i) => v === String(i)), values.slice(0, 5));
  const gets = await Promise.all(keys.map((k) => r.get(k)));
  check("auto-pipelined GETs", gets.every((v, i) => v === String(i)));
  check("del across shards", (await r.del(keys)) === 200);

  // MULTI/EXEC, and WATCH aborting EXEC after another client's write.
  const acct = `{${p}acct}`;
  const tx = await r.multi().set(`${acct}a`, "1").incr(`${acct}a`).get(`${acct}a`).exec();
  check("multi/exec", JSON.stringify(tx) === JSON.stringify(["OK", 2, "2"]), tx);
  await r.set(`${acct}balance`, "100");
  await r.watch(`${acct}balance`);
  await (await more()).incrBy(`${acct}balance`, 50);
  let aborted;
  try {
    await r.multi().set(`${acct}balance`, "70").exec();
  } catch (err) {
    aborted = err;
  }
  check("watch conflict aborts exec", aborted instanceof WatchError, String(aborted));
  await r.watch(`${acct}balance`);
  const retried = await r.multi().decrBy(`${acct}balance`, 30).exec();
  check("exec after an untouched watch", retried[0] === 120, retried);

  // Pub/Sub: a channel, and a pattern that matches channels on every shard.
  const sub = await more();
  const messages = [];
  await sub.subscribe(`${p}news`, (message, channel) => messages.push([channel, message]));
  check("publish reaches the subscriber", (await r.publish(`${p}news`, "hello")) === 1);
  await h.eventually(`RESP${protocol} message received`, () =>
    messages.some(([c, m]) => c === `${p}news` && m === "hello"),
  );
  const psub = await more();
  const pmessages = new Set();
  await psub.pSubscribe(`${p}chan.*`, (_message, channel) => pmessages.add(channel));
  const channels = await h.namesOnDifferentShards((args) => r.sendCommand(args), `${p}chan.`, 3);
  for (const channel of channels) await r.publish(channel, `to ${channel}`);
  await h.eventually(`RESP${protocol} pmessage from every shard`, () =>
    channels.every((c) => pmessages.has(c)),
  );

  // Blocking pop: BLPOP waits (CLIENT LIST through the proxy shows it
  // blocked) until another connection pushes.
  const blocker = await more();
  await r.del(`${p}queue`);
  const popped = blocker.blPop(`${p}queue`, 5);
  await h.eventually(`RESP${protocol} blpop is blocked`, async () =>
    /cmd=blpop/.test(String(await r.sendCommand(["CLIENT", "LIST"]))),
  );
  check("lpush from another connection", (await r.lPush(`${p}queue`, "job")) === 1);
  const woken = await h.within(5000, popped, "blpop");
  check("blpop woken by the push", woken?.key === `${p}queue` && woken?.element === "job", woken);
  check("blpop times out empty", (await blocker.blPop(`${p}nothing`, 0.2)) === null);

  // Scripts: EVAL, SCRIPT LOAD + EVALSHA, an unknown SHA, and a
  // defineScript command (EVALSHA first, EVAL when answered NOSCRIPT: a
  // body neither Redis nor the proxy has seen).
  const lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  const counter = `${p}counter`;
  check("eval", (await r.eval(lua, { keys: [counter], arguments: ["5"] })) === 5);
  const sha = await r.scriptLoad(lua);
  check("evalsha after script load", (await r.evalSha(sha, { keys: [counter], arguments: ["2"] })) === 7);
  check("script exists on every shard", JSON.stringify(await r.scriptExists(sha)) === "[1]");
  let noscript;
  try {
    await r.evalSha("0".repeat(40), { keys: [counter], arguments: ["1"] });
  } catch (err) {
    noscript = err.message;
  }
  check("evalsha of an unknown sha is NOSCRIPT", String(noscript).startsWith("NOSCRIPT"), noscript);
  const fresh = `${lua} -- node-redis RESP${protocol}`;
  const scripted = await more({
    scripts: {
      addTo: defineScript({
        SCRIPT: fresh,
        NUMBER_OF_KEYS: 1,
        parseCommand(parser, key, n) {
          parser.pushKey(key);
          parser.push(String(n));
        },
        transformReply: undefined,
      }),
    },
  });
  check("defineScript falls back to EVAL", (await scripted.addTo(counter, 3)) === 10);
  check("defineScript then uses EVALSHA", (await scripted.addTo(counter, 1)) === 11);

  // Reply types through the proxy: RESP3 maps and doubles, RESP2 arrays
  // and strings (sendCommand skips node-redis's own transforms).
  await r.hSet(`${p}h`, "a", "1");
  await r.zAdd(`${p}z`, { score: 1.5, value: "m" });
  const map = await r.sendCommand(["HGETALL", `${p}h`]);
  const score = await r.sendCommand(["ZSCORE", `${p}z`, "m"]);
  if (protocol === 3) {
    check("map reply as an object", JSON.stringify(map) === '{"a":"1"}', map);
    check("double reply as a number", score === 1.5, score);
  } else {
    check("map reply as a flat array", JSON.stringify(map) === '["a","1"]', map);
    check("double reply as a string", score === "1.5", score);
  }

  for (const client of closing) client.destroy();
}

// The redis-server behind a one-shard pool is killed and a new one started
// on its port: commands fail meanwhile (an error, not a hang), then
// succeed again on the same client; a subscriber hears again.
async function restart() {
  const check = h.check;
  const r = await connect(oneShard);
  const sub = await connect(oneShard);
  let heard = 0;
  await sub.subscribe("after-restart", () => heard++);
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
  r.destroy();
  sub.destroy();
}

(async () => {
  console.log(`node-redis ${version}`);
  await suite(3);
  await suite(2);
  await restart();
  h.finish("node-redis");
})().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`);
  process.exit(1);
});

// Shared by the Node.js client suites: checks that stop the run with the
// failing check's name, deadlines instead of sleeps, and the handshake
// with the Rust test that owns the redis-server processes.
"use strict";

const readline = require("node:readline");

function check(name, condition, detail) {
  if (!condition) {
    const extra = detail === undefined ? "" : ` ${JSON.stringify(detail)}`;
    console.error(`FAILED: ${name}${extra}`);
    process.exit(1);
  }
  console.log(`ok: ${name}`);
}

/** Polls `probe` (async, returns truthy when done) every 20 ms until `ms`. */
async function eventually(name, probe, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) {
        console.log(`ok: ${name}`);
        return last;
      }
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      check(name, false, String(last));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Rejects after `ms` so that a lost reply fails the check instead of hanging. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The Rust test reads `control: <what>` lines on stdout, does it, and
// answers `done` on stdin.
const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on("line", (line) => {
  const next = waiting.shift();
  if (next) next(line);
});

function control(what) {
  return within(
    30000,
    new Promise((resolve) => {
      waiting.push(resolve);
      console.log(`control: ${what}`);
    }),
    `control: ${what}`,
  );
}

/**
 * `count` channel names that the proxy places on different shards: two
 * names on different shards make MSETNX fail with CROSSSLOT.
 * `run(args)` sends one command and returns its reply (or throws).
 */
async function namesOnDifferentShards(run, prefix, count) {
  const found = [`${prefix}0`];
  for (let i = 1; i < 500 && found.length < count; i++) {
    const name = `${prefix}${i}`;
    let apart = true;
    for (const other of found) {
      try {
        await run(["MSETNX", other, "1", name, "1"]);
        await run(["DEL", other, name]);
        apart = false;
        break;
      } catch (err) {
        if (!String(err.message).startsWith("CROSSSLOT")) throw err;
      }
    }
    if (apart) found.push(name);
  }
  check(`${count} names on different shards`, found.length === count, found);
  return found;
}

/** The `resp=` field of CLIENT INFO through the proxy. */
function respOf(clientInfo) {
  const match = /(?:^| )resp=(\d)/.exec(String(clientInfo));
  return match ? Number(match[1]) : undefined;
}

function finish(suite) {
  console.log(`all ${suite} checks passed`);
  lines.close();
  process.exit(0);
}

module.exports = { check, eventually, within, control, namesOnDifferentShards, respOf, finish };

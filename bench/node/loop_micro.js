// Node.js side of phaseloop's loop micro-benchmarks (bench/src/bin/loop-micro.rs).
// Each case prints one JSON line: {"case": name, "ns": total nanoseconds}.
// Usage: node loop_micro.js <case> <n>
'use strict';
const crypto = require('node:crypto');

const [, , name, nArg] = process.argv;
const n = Number(nArg);
const now = () => process.hrtime.bigint();
const report = (start) => {
  console.log(JSON.stringify({ case: name, ns: Number(now() - start) }));
};

const cases = {
  immediates() {
    const start = now();
    let left = n;
    for (let i = 0; i < n; i++) setImmediate(() => { if (--left === 0) report(start); });
  },
  next_ticks() {
    const start = now();
    let left = n;
    for (let i = 0; i < n; i++) process.nextTick(() => { if (--left === 0) report(start); });
  },
  futures() {
    const start = now();
    let left = n;
    const task = async () => { await undefined; if (--left === 0) report(start); };
    for (let i = 0; i < n; i++) task();
  },
  timers_insert_cancel() {
    const start = now();
    const ids = new Array(n);
    for (let i = 0; i < n; i++) ids[i] = setTimeout(() => { throw new Error('ran'); }, 1000 + i);
    for (let i = 0; i < n; i++) clearTimeout(ids[i]);
    report(start);
  },
  pool_round_trip() {
    const start = now();
    let left = n;
    const next = () => crypto.randomBytes(1, () => { if (--left === 0) report(start); else next(); });
    next();
  },
  pool_batch() {
    const start = now();
    let left = n;
    for (let i = 0; i < n; i++) crypto.randomBytes(1, () => { if (--left === 0) report(start); });
  },
};

cases[name]();

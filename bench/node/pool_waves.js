// The Node side of `pool-waves`: N pbkdf2-sha512 jobs submitted at once to
// a pool of N threads (UV_THREADPOOL_SIZE=N), per run the time from the
// submits to the first and to the last callback.
// Usage: UV_THREADPOOL_SIZE=8 node bench/node/pool_waves.js [runs] [jobs] [iterations]
const crypto = require("node:crypto");
const runs = +process.argv[2] || 20;
const jobs = +process.argv[3] || 8;
const iterations = +process.argv[4] || 100000;
let run = 0;
function wave() {
  if (++run > runs) return;
  const t0 = process.hrtime.bigint();
  const done = [];
  for (let i = 0; i < jobs; i++) {
    crypto.pbkdf2("password", "salt", iterations, 64, "sha512", () => {
      done.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (done.length === jobs) {
        done.sort((a, b) => a - b);
        console.log(`run ${String(run).padStart(2)}: first done ${done[0].toFixed(1)} ms, last ${done[jobs - 1].toFixed(1)} ms`);
        setTimeout(wave, 50);
      }
    });
  }
}
setTimeout(wave, 50);

// The seed's nine-step example, printing its order on one line.
const fs = require("node:fs");
const out = [];
const log = (s) => out.push(s);
log(1);
setTimeout(() => log(2), 0);
Promise.resolve().then(() => log(3));
process.nextTick(() => log(4));
fs.readFile(__filename, () => {
  log(5);
  setImmediate(() => { log(6); console.log(out.join(", ")); });
  process.nextTick(() => log(7));
  Promise.resolve().then(() => log(8));
});
log(9);

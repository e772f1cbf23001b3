// A probe for scripts/bench-worker: one `l402_decide` call through the Worker's generated glue
// and Wasm in Node's V8, no workerd around it, timed over a loop (what the crossing and core's
// Wasm cost without the runtime). Args: <module dir> <env JSON> <request string> <iterations>;
// with 0 iterations it prints the decision itself (for the JavaScript-only probe).
import { readFileSync } from "node:fs";

const [dir, envJson, blob, n] = process.argv.slice(2);
const { initSync, l402_decide } = await import(dir + "/l402_worker.js");
initSync({ module: readFileSync(dir + "/l402_worker_bg.wasm") });
const env = JSON.parse(envJson);
const first = l402_decide(env, blob, Date.now());
if (first.charCodeAt(0) !== 70 /* F */) throw new Error("expected a forward: " + first.slice(0, 80));
if (+n === 0) {
  console.log(JSON.stringify({ decision: first }));
  process.exit(0);
}

let sink = 0;
const call = () => {
  sink += l402_decide(env, blob, Date.now()).length;
};
const loop = () => {
  sink += blob.length + (Date.now() & 1);
};
function perCall(f, k) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < k; i++) f();
  return Number(process.hrtime.bigint() - t) / k / 1000;
}
for (let i = 0; i < 20000; i++) {
  call(); // V8's tier-up
  loop();
}
// Five rounds, the loop's own cost taken out of each; the median, as one round can land on a
// GC or a tier-up.
const rounds = [];
for (let r = 0; r < 5; r++) rounds.push(perCall(call, +n / 5) - perCall(loop, +n / 5));
rounds.sort((a, b) => a - b);
console.log(JSON.stringify({ call_us: rounds[2], sink: sink > 0 }));

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
function perCall(f) {
  for (let i = 0; i < 20000; i++) f(); // V8's tier-up
  const t = process.hrtime.bigint();
  for (let i = 0; i < +n; i++) f();
  return Number(process.hrtime.bigint() - t) / +n / 1000;
}
const call = perCall(() => {
  sink += l402_decide(env, blob, Date.now()).length;
});
const loop = perCall(() => {
  sink += blob.length + (Date.now() & 1);
});
console.log(JSON.stringify({ call_us: call - loop, sink: sink > 0 }));

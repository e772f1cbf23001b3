// A probe for scripts/bench-worker: one step of the L402 Worker's request path (the statements
// of worker/js/index.mjs, or a JS proxy's copy), done REPEAT times in one request, so that
// workerd's CPU per request less that of the `none` step, divided by REPEAT, is one step's cost
// with the machine's noise divided by REPEAT too. Bindings: OP (the step), REPEAT, DECISION
// (what `l402_decide` answers this request: the forward the `forward` step applies), and the
// L402 Worker's own. bench_worker.rs checks that the lines marked as the entry module's are.
import { initSync, l402_decide, l402_origin } from "./l402_worker.js";
import wasmModule from "./l402_worker_bg.wasm";

initSync({ module: wasmModule });

/// The request line and headers as the Worker's entry module hands them to `l402_decide`.
function blobOf(request, target, secure) {
  const parts = [request.method, target, secure ? "1" : "0"];
  // entry module's lines: begin
  for (const [name, value] of request.headers) parts.push(name, value);
  parts.push("");
  // entry module's lines: end
  return parts.join("\n");
}

/// A JS proxy's copy of the request.
function copyOf(request) {
  return new Request("http://origin.internal/weather", request);
}

/// The Worker's forward: the copy with `redirect: "manual"`, `host` removed, then the
/// decision's removals and settings (worker/js/index.mjs).
function forwardOf(request, d) {
  const init = { method: request.method, headers: request.headers, redirect: "manual" };
  const out = new Request("http://origin.internal/weather", init);
  // entry module's lines: begin
  const headers = out.headers;
  headers.delete("host");
  const lines = d.split("\n");
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k];
    if (line.charCodeAt(0) === 45 /* - */) headers.delete(line.slice(1));
    else headers.set(line.slice(1), lines[++k]);
  }
  // entry module's lines: end
  return out;
}

const steps = {
  // The loop alone.
  none: () => 1,
  // The target and scheme, as the Worker reads them.
  url: (request) => {
    const url = new URL(request.url);
    return (url.pathname + url.search).length + (url.protocol === "https:" ? 1 : 0);
  },
  // The headers read into the decision's string.
  headers: (request) => blobOf(request, "/weather", false).length,
  // A JS proxy's copy of the request (`new Request(url, request)`).
  copy: (request) => copyOf(request).method.length,
  // The Worker's forward: its copy, removals and settings.
  forward: (request, env, d) => forwardOf(request, d).method.length,
  // A JS proxy's fetch: its copy fetched from the origin, the answer read.
  "fetch-copy": async (request) => (await (await fetch(copyOf(request))).text()).length,
  // The Worker's fetch: its forward fetched from the origin, the answer read.
  "fetch-forward": async (request, env, d) =>
    (await (await fetch(forwardOf(request, d))).text()).length,
  // One crossing into the Wasm that does no work.
  crossing: (request, env) => l402_origin(env).length,
  // The headers read and one decision (the verified-credential cache hit on every call but
  // the first).
  decide: (request, env, d) => l402_decide(env, blobOf(request, "/weather", false), Date.now()).length,
};
// The same call in a Worker whose cache is off (CACHE_SIZE 0): every call verifies.
steps["decide-nocache"] = steps.decide;
// A JS proxy's fetch, then the call: less `fetch-copy`, the call as a request meets it, after
// workerd's own work for a request has cooled the caches (the loop above runs it hot).
steps["fetch-decide"] = async (request, env, d) =>
  (await steps["fetch-copy"](request)) + steps.decide(request, env, d);
steps["fetch-decide-nocache"] = steps["fetch-decide"];

export default {
  async fetch(request, env) {
    const step = steps[env.OP];
    const repeat = Number(env.REPEAT);
    let sink = 0;
    for (let i = 0; i < repeat; i++) {
      const r = step(request, env, env.DECISION);
      sink += typeof r === "number" ? r : await r;
    }
    return new Response(sink > 0 ? "ok" : "");
  },
};

// The Worker's entry module (issue 18): JavaScript keeps the request and does what the runtime
// does natively (parse the URL, copy the headers, fetch); Rust in Wasm (l402-core) makes every
// decision. One string crosses into Wasm per request (method, target, headers) with the clock,
// and one comes back (the decision), see `l402_decide` in worker/src/glue.rs. Requests that need I/O first (a challenge,
// a store, the deny-list) are finished by Rust (`l402_resume`).
import {
  initSync,
  l402_decide,
  l402_origin,
  l402_origin_failed,
  l402_resume,
  SpentSet,
  Allowance,
} from "./l402_worker.js";
import wasmModule from "./l402_worker_bg.wasm";

initSync({ module: wasmModule });

// The Durable Object classes: the spent-set (L402_SPENT_SET) and metered tokens' counts
// (L402_ALLOWANCE), bound in wrangler.toml.
export { SpentSet, Allowance };

let origin; // ORIGIN_URL, as Rust validated it (one per isolate)

/// `R<status>\n<n>\n` + n name/value lines + body: core's answer.
function reply(d) {
  let i = d.indexOf("\n");
  const status = Number(d.slice(1, i));
  let j = d.indexOf("\n", i + 1);
  let n = Number(d.slice(i + 1, j));
  let p = j + 1;
  const headers = new Headers();
  while (n-- > 0) {
    const a = d.indexOf("\n", p);
    const b = d.indexOf("\n", a + 1);
    headers.append(d.slice(p, a), d.slice(a + 1, b));
    p = b + 1;
  }
  return new Response(d.slice(p), { status, headers });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = url.pathname + url.search;
    // One flat string, made by join: a string grown by `+=` is a rope that the glue's copy into
    // the Wasm's memory must first flatten (a second copy, and garbage: docs/BENCHMARKS.md, fifth look).
    const parts = [request.method, target, url.protocol === "https:" ? "1" : "0"];
    for (const [name, value] of request.headers) parts.push(name, value);
    parts.push("");
    const blob = parts.join("\n");
    const d = l402_decide(env, blob, Date.now());
    if (d.charCodeAt(0) === 70 /* F: forward, with core's removals and settings */) {
      origin ??= l402_origin(env);
      // One copy of the headers, made by the Request constructor (as a JavaScript proxy does);
      // redirects are the client's to follow: a fetch that followed one would bring back
      // whatever it points at, judged or not.
      const init = { method: request.method, headers: request.headers, redirect: "manual" };
      if (request.method !== "GET" && request.method !== "HEAD") init.body = request.body;
      const out = new Request(origin + target, init);
      const headers = out.headers;
      headers.delete("host");
      const lines = d.split("\n");
      for (let k = 1; k < lines.length; k++) {
        const line = lines[k];
        if (line.charCodeAt(0) === 45 /* - */) headers.delete(line.slice(1));
        else headers.set(line.slice(1), lines[++k]);
      }
      try {
        return await fetch(out);
      } catch (e) {
        console.error("l402 worker: origin fetch failed: " + e);
        return reply(l402_origin_failed(env));
      }
    }
    if (d.charCodeAt(0) === 82 /* R */) return reply(d);
    return l402_resume(Number(d.slice(1)), request, env);
  },
};

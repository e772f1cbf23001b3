//! workerd CPU per request: a trivial Worker (returns 200), a JavaScript Worker that proxies to
//! it, the plain-JavaScript L402 verifier (npm `macaroon` 3.0.4 and WebCrypto, with and without
//! a cache, answering 200 itself: the peer the Rust Worker is held to), and the L402 Worker on authorized requests (with and without its cache) proxying to it —
//! and a Payment charge spent in the Worker's `SpentSet` Durable Object (a fresh credential per
//! request; the objects run in the same process, their storage in memory or SQLite on disk) —
//! all in one `workerd serve` process (the binary wrangler ships), from a generated capnp
//! config, so no dev proxy sits in the path. Every Worker's `fetch()` goes to the trivial
//! Worker (`globalOutbound`), so the origin's CPU is inside workerd's and equal for all. Probes
//! split the L402 Worker's cost: deciding only, the JavaScript around the decision only (the
//! same decision applied, as a constant), the same with one crossing into the Wasm that does no
//! work, a JS proxy doing the forward's header work, a JS proxy awaiting its fetch in `try` (or
//! with `.catch`), one `l402_decide` call in Node's V8 without workerd, and the request path's
//! steps one by one, each done 50 times in one request so that the machine's noise is divided
//! by 50 too (`wasm-tests/bench-js/host_ops.mjs`; docs/BENCHMARKS.md, "Speed at the edge"),
//! the call also after an origin fetch each time (as a request meets it, caches cooled);
//! differences are taken per round.
//!
//! workerd is pinned to core 0, `wrk` (one thread, 16 connections) to core 1; rounds alternate;
//! CPU from `/proc`; Markdown on stdout.
//!
//! `./scripts/bench-worker [--seconds 5] [--rounds 3] [--quick] [--only trivial,l402,v8-alone,…]`
//! (`--only`: the variants by their short names, for probing one cost).
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use l402_core::Preimage;
use testkit::wrk::{self, Load, median};
use testkit::{Proc, free_ports};
use wasm_tests::KEYS;

const TRIVIAL: &str = r#"export default { async fetch() { return new Response("ok"); } };"#;
const PROXY: &str = r#"export default {
  async fetch(request) {
    const url = new URL(request.url);
    return fetch(new Request("http://origin.internal" + url.pathname + url.search, request));
  },
};"#;

/// A probe: the JS proxy doing the L402 forward's header work (the request copied by the
/// Request constructor, `host` and the credential dropped, two headers set) with no Wasm, to
/// split the L402 Worker's cost.
const PROXY_HEADERS: &str = r#"export default {
  async fetch(request) {
    const url = new URL(request.url);
    const out = new Request("http://origin.internal" + url.pathname + url.search,
      { method: request.method, headers: request.headers, redirect: "manual" });
    out.headers.delete("host");
    out.headers.delete("authorization");
    out.headers.set("x-l402-token-id", "0000000000000000000000000000000000000000000000000000000000000000");
    out.headers.set("x-l402-service", "weather");
    return fetch(out);
  },
};"#;

/// The steps of the request path timed one by one in workerd (`wasm-tests/bench-js/host_ops.mjs`),
/// each done [`HOST_OPS_REPEAT`] times in one request: its `OP` and what it is.
const HOST_OPS: [(&str, &str); 12] = [
    ("none", "the loop alone"),
    ("url", "the target read (`new URL`)"),
    ("headers", "the headers read into the decision's string"),
    ("copy", "a JS proxy's copy of the request"),
    (
        "forward",
        "the Worker's forward (its copy, removals and settings)",
    ),
    (
        "fetch-copy",
        "a JS proxy's copy fetched from the origin, the answer read",
    ),
    (
        "fetch-forward",
        "the Worker's forward fetched from the origin, the answer read",
    ),
    ("crossing", "one crossing into the Wasm that does no work"),
    (
        "decide",
        "the headers read and one `l402_decide` call (cache)",
    ),
    (
        "decide-nocache",
        "the headers read and one `l402_decide` call (no cache)",
    ),
    (
        "fetch-decide",
        "a JS proxy's fetch, then the headers read and one `l402_decide` call (cache)",
    ),
    (
        "fetch-decide-nocache",
        "a JS proxy's fetch, then the headers read and one `l402_decide` call (no cache)",
    ),
];
const HOST_OPS_REPEAT: u32 = 50;

/// A probe: the JS proxy awaiting its fetch inside `try`, as the L402 Worker does to answer an
/// unreachable origin itself.
const PROXY_AWAIT: &str = r#"export default {
  async fetch(request) {
    const url = new URL(request.url);
    try {
      return await fetch(new Request("http://origin.internal" + url.pathname + url.search, request));
    } catch (e) {
      return new Response("origin unreachable", { status: 503 });
    }
  },
};"#;

/// A probe: the same with the failure handled by `.catch` on fetch's promise.
const PROXY_CATCH: &str = r#"export default {
  async fetch(request) {
    const url = new URL(request.url);
    return fetch(new Request("http://origin.internal" + url.pathname + url.search, request))
      .catch(() => new Response("origin unreachable", { status: 503 }));
  },
};"#;

/// The L402 Worker's bindings (what `wrangler.toml` `[vars]` and secrets would give it).
fn l402_bindings(cache_size: u32) -> String {
    testkit::workerd::text_bindings(&l402_vars(cache_size))
}

fn l402_vars(cache_size: u32) -> [(&'static str, String); 6] {
    [
        ("L402_KEYS", KEYS.to_owned()),
        (
            "INVOICE_SERVICE_TOKEN",
            "bench-edge-token-0123456789".into(),
        ),
        ("ORIGIN_URL", "http://origin.internal".into()),
        (
            "INVOICE_SERVICE_URL",
            "http://invoice-service.internal".into(),
        ),
        (
            "L402_ROUTES",
            r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.into(),
        ),
        ("CACHE_SIZE", cache_size.to_string()),
    ]
}

/// Runs `wasm-tests/bench-js/v8_alone.mjs` in Node 22's V8 (no workerd) on the request `wrk`
/// sends, with the Worker's generated glue and Wasm; `iterations` 0 asks for the decision.
fn v8_alone_run(
    module_dir: &Path,
    authorization: &str,
    cache_size: u32,
    iterations: u32,
) -> Result<serde_json::Value> {
    let (node, _) = testkit::workerd::wrangler()?;
    let env: serde_json::Map<String, serde_json::Value> = l402_vars(cache_size)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let blob = format!("GET\n/weather\n0\nhost\n127.0.0.1\nauthorization\n{authorization}\n");
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(node)
        .arg(testkit::repo_root().join("wasm-tests/bench-js/v8_alone.mjs"))
        .arg(module_dir)
        .arg(serde_json::Value::Object(env).to_string())
        .arg(blob)
        .arg(iterations.to_string())
        .output()?;
    if !out.status.success() {
        bail!("v8_alone.mjs: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A probe: µs per `l402_decide` call through the same glue and Wasm in V8 without workerd.
fn v8_alone(module_dir: &Path, authorization: &str, cache_size: u32) -> Result<f64> {
    v8_alone_run(module_dir, authorization, cache_size, 200_000)?["call_us"]
        .as_f64()
        .context("v8_alone.mjs output")
}

/// What `l402_decide` answers the request `wrk` sends (a forward), for the JavaScript-only
/// probe to apply the same removals and settings without the call.
fn decision(module_dir: &Path, authorization: &str) -> Result<String> {
    let d = v8_alone_run(module_dir, authorization, 1024, 0)?;
    d["decision"]
        .as_str()
        .map(str::to_owned)
        .context("v8_alone.mjs decision")
}

/// The plain-JavaScript verifier (`wasm-tests/bench-js/js_verifier.mjs`, npm `macaroon` 3.0.4
/// from the interop clients' folder, CommonJS modules named as `require` asks): its modules.
fn js_verifier_modules(dir: &Path) -> Result<String> {
    let root = testkit::repo_root();
    std::fs::copy(
        root.join("wasm-tests/bench-js/js_verifier.mjs"),
        dir.join("js_verifier.mjs"),
    )?;
    let node_modules =
        testkit::artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh")?
            .join("node_modules");
    let mut modules =
        vec![r#"(name = "js_verifier.mjs", esModule = embed "js_verifier.mjs")"#.to_owned()];
    for (name, file) in [
        ("macaroon", "macaroon/macaroon.js"),
        ("sjcl", "sjcl/sjcl.js"),
        ("tweetnacl", "tweetnacl/nacl-fast.js"),
        ("tweetnacl-util", "tweetnacl-util/nacl-util.js"),
    ] {
        let local = format!("cjs-{name}.js");
        std::fs::copy(node_modules.join(file), dir.join(&local))?;
        modules.push(format!(
            r#"(name = "{name}", commonJsModule = embed "{local}")"#
        ));
    }
    Ok(format!("[{}]", modules.join(", ")))
}

/// Whether every block of lines `probe` marks as the entry module's (between `// entry
/// module's lines: begin` and `end`) is, indentation aside, lines of `entry`, and there is at
/// least one: a probe that times the entry module's statements must not drift from them.
fn same_lines(entry: &str, probe: &str) -> bool {
    fn trimmed(s: &str) -> Vec<&str> {
        s.lines().map(str::trim).collect()
    }
    let entry = trimmed(entry);
    let mut rest = &trimmed(probe)[..];
    let mut blocks = 0;
    while let Some(begin) = rest
        .iter()
        .position(|l| *l == "// entry module's lines: begin")
    {
        rest = &rest[begin + 1..];
        let Some(end) = rest
            .iter()
            .position(|l| *l == "// entry module's lines: end")
        else {
            return false;
        };
        let block = &rest[..end];
        if block.is_empty() || !entry.windows(block.len()).any(|w| w == block) {
            return false;
        }
        blocks += 1;
        rest = &rest[end + 1..];
    }
    blocks > 0
}

/// Writes the workerd config; returns the sockets' ports by name. `decision`: what
/// `l402_decide` answers the benchmark's request.
fn write_config(dir: &Path, module_dir: &Path, decision: &str) -> Result<Vec<(String, u16)>> {
    std::fs::write(dir.join("trivial.mjs"), TRIVIAL)?;
    std::fs::write(dir.join("proxy.mjs"), PROXY)?;
    std::fs::write(dir.join("proxy-headers.mjs"), PROXY_HEADERS)?;
    std::fs::write(dir.join("proxy-await.mjs"), PROXY_AWAIT)?;
    std::fs::write(dir.join("proxy-catch.mjs"), PROXY_CATCH)?;
    let js_modules = js_verifier_modules(dir)?;
    let l402_modules = testkit::workerd::embed_worker(dir, module_dir)?;
    // A probe: the same Worker deciding only (its forward answered 200 instead of fetched).
    let entry = std::fs::read_to_string(dir.join("l402/index.mjs"))?;
    let decide_only = entry.replace("return await fetch(out);", "return new Response(\"ok\");");
    if decide_only == entry {
        bail!("the Worker's entry module no longer has the forward this probe replaces");
    }
    // A probe: the JavaScript around the decision only (the request read into one string, the
    // clock read, the same forward applied: its removals and settings), with the decision the
    // Wasm gives this request as a constant in place of the call.
    let constant = serde_json::Value::from(decision).to_string();
    let js_only = decide_only.replace(
        "l402_decide(env, blob, Date.now())",
        &format!("blob.length > 0 && Date.now() > 0 ? {constant} : \"\""),
    );
    if js_only == decide_only {
        bail!("the Worker's entry module no longer has the call this probe replaces");
    }
    // A probe: the same and one crossing into the same Wasm that does no work (`l402_origin`:
    // the environment in, a short string back), to split the call from core's work.
    let crossing = js_only.replacen(
        "const d = ",
        "const d = l402_origin(env).length === 0 ? \"\" : ",
        1,
    );
    if crossing == js_only {
        bail!("the Worker's entry module no longer has the decision this probe wraps");
    }
    // A probe's module list: the Worker's, with the probe's file as the entry module.
    let probe_modules = |file: &str, text: String| -> Result<String> {
        std::fs::write(dir.join("l402").join(file), text)?;
        Ok(l402_modules.replacen(
            r#"(name = "index.mjs", esModule = embed "l402/index.mjs")"#,
            &format!(r#"(name = "{file}", esModule = embed "l402/{file}")"#),
            1,
        ))
    };
    let js_only_modules = probe_modules("js-only.mjs", js_only)?;
    let crossing_modules = probe_modules("crossing.mjs", crossing)?;
    let decide_modules = probe_modules("decide-only.mjs", decide_only)?;
    let host_ops =
        std::fs::read_to_string(testkit::repo_root().join("wasm-tests/bench-js/host_ops.mjs"))?;
    if !same_lines(&entry, &host_ops) {
        bail!("host_ops.mjs: the lines it marks are no longer the entry module's");
    }
    let host_ops_modules = probe_modules("host_ops.mjs", host_ops)?;
    // The steps' Workers: the L402 Worker's bindings and the step's.
    let host_ops_services: String = HOST_OPS
        .iter()
        .map(|(op, _)| {
            format!(
                r#"    (name = "host-{op}", worker = (modules = {host_ops_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial", bindings = [{b1}, {step}])),
"#,
                b1 = l402_bindings(if op.ends_with("-nocache") { 0 } else { 1024 }),
                step = testkit::workerd::text_bindings(&[
                    ("OP", (*op).to_owned()),
                    ("REPEAT", HOST_OPS_REPEAT.to_string()),
                    ("DECISION", decision.to_owned()),
                ]),
            )
        })
        .collect();
    let do_dir = dir.join("durable-objects");
    std::fs::create_dir_all(&do_dir)?;
    let names: Vec<String> = [
        "trivial",
        "proxy",
        "proxy-headers",
        "proxy-await",
        "proxy-catch",
        "l402-decide",
        "l402-js-only",
        "l402-crossing",
        "js-verifier",
        "js-verifier-nocache",
        "l402",
        "l402-nocache",
        "l402-pay",
        "l402-pay-disk",
        "l402-metered",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(HOST_OPS.iter().map(|(op, _)| format!("host-{op}")))
    .collect();
    let ports: Vec<(String, u16)> = free_ports(names.len())
        .into_iter()
        .zip(names)
        .map(|(p, n)| (n, p))
        .collect();
    let sockets = ports
        .iter()
        .map(|(n, p)| {
            format!(r#"(name = "{n}", address = "127.0.0.1:{p}", http = (), service = "{n}")"#)
        })
        .collect::<Vec<_>>()
        .join(",\n    ");
    let config = format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "trivial", worker = (modules = [(name = "trivial.mjs", esModule = embed "trivial.mjs")], compatibilityDate = "2025-09-01")),
    (name = "proxy", worker = (modules = [(name = "proxy.mjs", esModule = embed "proxy.mjs")], compatibilityDate = "2025-09-01", globalOutbound = "trivial")),
    (name = "proxy-headers", worker = (modules = [(name = "proxy-headers.mjs", esModule = embed "proxy-headers.mjs")], compatibilityDate = "2025-09-01", globalOutbound = "trivial")),
    (name = "proxy-await", worker = (modules = [(name = "proxy-await.mjs", esModule = embed "proxy-await.mjs")], compatibilityDate = "2025-09-01", globalOutbound = "trivial")),
    (name = "proxy-catch", worker = (modules = [(name = "proxy-catch.mjs", esModule = embed "proxy-catch.mjs")], compatibilityDate = "2025-09-01", globalOutbound = "trivial")),
    (name = "l402-decide", worker = (modules = {decide_modules}, compatibilityDate = "2025-09-01", bindings = [{b1}])),
    (name = "l402-js-only", worker = (modules = {js_only_modules}, compatibilityDate = "2025-09-01", bindings = [{b1}])),
    (name = "l402-crossing", worker = (modules = {crossing_modules}, compatibilityDate = "2025-09-01", bindings = [{b1}])),
    (name = "js-verifier", worker = (modules = {js_modules}, compatibilityDate = "2025-09-01", compatibilityFlags = ["nodejs_compat"],
      bindings = [(name = "L402_KEYS", text = "{keys}"), (name = "CACHE", text = "1")])),
    (name = "js-verifier-nocache", worker = (modules = {js_modules}, compatibilityDate = "2025-09-01", compatibilityFlags = ["nodejs_compat"],
      bindings = [(name = "L402_KEYS", text = "{keys}"), (name = "CACHE", text = "0")])),
    (name = "l402", worker = (modules = {l402_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial", bindings = [{b1}])),
    (name = "l402-nocache", worker = (modules = {l402_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial", bindings = [{b0}])),
    (name = "l402-pay", worker = (modules = {l402_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial",
      bindings = [{b1}, (name = "L402_SPENT_SET", durableObjectNamespace = "SpentSet")],
      durableObjectNamespaces = [(className = "SpentSet", uniqueKey = "l402-bench-spent-set", enableSql = true)],
      durableObjectStorage = (inMemory = void))),
    (name = "l402-pay-disk", worker = (modules = {l402_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial",
      bindings = [{b1}, (name = "L402_SPENT_SET", durableObjectNamespace = "SpentSet")],
      durableObjectNamespaces = [(className = "SpentSet", uniqueKey = "l402-bench-spent-set-disk", enableSql = true)],
      durableObjectStorage = (localDisk = "do-disk"))),
    (name = "l402-metered", worker = (modules = {l402_modules}, compatibilityDate = "2025-09-01", globalOutbound = "trivial",
      bindings = [{b1}, (name = "L402_ALLOWANCE", durableObjectNamespace = "Allowance")],
      durableObjectNamespaces = [(className = "Allowance", uniqueKey = "l402-bench-allowance", enableSql = true)],
      durableObjectStorage = (localDisk = "do-disk"))),
{host_ops_services}    (name = "do-disk", disk = (path = "{do_dir}", writable = true)),
  ],
  sockets = [
    {sockets}
  ],
);
"#,
        keys = KEYS,
        b1 = l402_bindings(1024),
        b0 = l402_bindings(0),
        do_dir = do_dir.display(),
    );
    std::fs::write(dir.join("bench.capnp"), config)?;
    Ok(ports)
}

fn main() -> Result<()> {
    let args = wasm_tests::bench::BenchArgs::from_env();
    let (secs, rounds) = (args.secs, args.rounds);
    let dir = tempfile::Builder::new()
        .prefix("l402-bench-worker-")
        .tempdir()?;
    let module = testkit::workerd::worker_module()?;
    let module_dir = module.parent().context("module path")?;
    let p = Preimage::from_bytes([0x55; 32]);
    let token = wasm_tests::token("weather", &["read"], Some(86_400), wasm_tests::now(), &p, 5)?;
    let auth = vec![format!("Authorization: L402 {token}:{}", p.expose_hex())];
    // A metered token (an allowance no run can spend), counted in its Durable Object.
    let metered = {
        let keyring: l402_core::Keyring = KEYS.parse()?;
        let p = Preimage::from_bytes([0x56; 32]);
        let entry = l402_core::ServiceEntry {
            name: "weather".parse()?,
            tier: 0,
            capabilities: vec!["read".into()],
            lifetime_secs: Some(86_400),
            allowance: Some(1_000_000_000_000),
        };
        let t = l402_core::mint(
            &keyring,
            p.payment_hash(),
            [6; 28],
            &entry,
            wasm_tests::now(),
        )?;
        vec![format!(
            "Authorization: L402 {}:{}",
            t.macaroon_b64,
            p.expose_hex()
        )]
    };
    let authorization = auth[0].trim_start_matches("Authorization: ").to_owned();
    let ports = write_config(
        dir.path(),
        module_dir,
        &decision(module_dir, &authorization)?,
    )?;
    let bin = testkit::workerd::workerd_bin()?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(&bin)
        .args(["serve", "bench.capnp"])
        .current_dir(dir.path());
    let mut proc = Proc::spawn("workerd", cmd, dir.path())?;
    let port = |n: &str| ports.iter().find(|p| p.0 == n).map(|p| p.1).unwrap();
    proc.wait_http(
        &format!("http://127.0.0.1:{}/", port("trivial")),
        Duration::from_secs(30),
    )?;

    let host_ops: Vec<(String, String)> = HOST_OPS
        .iter()
        .map(|(op, what)| {
            (
                format!("probe: {what}, {HOST_OPS_REPEAT} times in one request, answers 200"),
                format!("host-{op}"),
            )
        })
        .collect();
    let mut variants: Vec<(&str, &str, Vec<String>)> = vec![
        ("trivial Worker (returns 200)", "trivial", vec![]),
        ("JS proxy Worker -> trivial", "proxy", vec![]),
        (
            "probe: JS proxy with the L402 forward's header work, no Wasm -> trivial",
            "proxy-headers",
            auth.clone(),
        ),
        (
            "probe: JS proxy awaiting its fetch in `try` -> trivial",
            "proxy-await",
            vec![],
        ),
        (
            "probe: JS proxy handling a failed fetch with `.catch` -> trivial",
            "proxy-catch",
            vec![],
        ),
        (
            "probe: L402 Worker deciding only (cache), answers 200 itself",
            "l402-decide",
            auth.clone(),
        ),
        (
            "probe: the same, its decision as a constant in place of the Wasm call (JavaScript only)",
            "l402-js-only",
            auth.clone(),
        ),
        (
            "probe: the same and one crossing into the Wasm that does no work (`l402_origin`)",
            "l402-crossing",
            auth.clone(),
        ),
        (
            "plain-JS L402 verifier (npm macaroon 3.0.4 + WebCrypto), authorized (cache), returns 200",
            "js-verifier",
            auth.clone(),
        ),
        (
            "plain-JS L402 verifier, authorized (no cache), returns 200",
            "js-verifier-nocache",
            auth.clone(),
        ),
        (
            "L402 Worker, authorized (cache) -> trivial",
            "l402",
            auth.clone(),
        ),
        (
            "L402 Worker, authorized (no cache) -> trivial",
            "l402-nocache",
            auth.clone(),
        ),
        (
            "L402 Worker, Payment charge spent in its Durable Object (in-memory storage) -> trivial",
            "l402-pay",
            vec![],
        ),
        (
            "L402 Worker, Payment charge spent in its Durable Object (SQLite on local disk) -> trivial",
            "l402-pay-disk",
            vec![],
        ),
        (
            "L402 Worker, metered token counted in its Durable Object (SQLite on local disk) -> trivial",
            "l402-metered",
            metered,
        ),
    ];
    variants.extend(
        host_ops
            .iter()
            .map(|(label, name)| (label.as_str(), name.as_str(), auth.clone())),
    );
    if let Some(unknown) = args
        .only
        .iter()
        .flatten()
        .find(|n| n.as_str() != "v8-alone" && !variants.iter().any(|v| v.1 == n.as_str()))
    {
        bail!("--only: no variant named {unknown:?}");
    }
    let variants: Vec<_> = variants.into_iter().filter(|v| args.runs(v.1)).collect();
    let mut results: Vec<Vec<(wrk::Run, f64)>> = variants.iter().map(|_| Vec::new()).collect();
    let mut runs = 0u32;
    let mut load = |v: &(&str, &str, Vec<String>), seconds: u64| -> Result<(wrk::Run, f64)> {
        // A Payment charge serves one request: fresh credentials for every run.
        let script = if v.1.starts_with("l402-pay") {
            runs += 1;
            let path = dir.path().join(format!("payment-{runs}.txt"));
            wasm_tests::bench::payment_credentials(&path, seconds as usize * 8_000 + 2_000, runs)?;
            Some(wasm_tests::bench::rotating_credentials_script(&path))
        } else {
            None
        };
        let cpu0 = testkit::procstat::cpu_seconds(proc.pid())?;
        let run = wrk::run(&Load {
            url: &format!("http://127.0.0.1:{}/weather", port(v.1)),
            headers: &v.2,
            seconds,
            connections: 16,
            core: Some(1),
            script: script.as_deref(),
        })?;
        let cpu1 = testkit::procstat::cpu_seconds(proc.pid())?;
        if run.statuses.keys().any(|c| *c != 200) || run.socket_errors > 0 {
            bail!(
                "{}: expected only 200, saw {:?}, {} socket errors",
                v.0,
                run.statuses,
                run.socket_errors
            );
        }
        let cpu = (cpu1 - cpu0) * 1e6 / run.requests;
        Ok((run, cpu))
    };
    for v in &variants {
        load(v, 1)?; // warm up: isolate start, V8 tier-up
    }
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            results[i].push(load(v, secs)?);
        }
    }
    let version = Command::new(&bin).arg("--version").output()?;
    println!(
        "{} `serve` on core 0 (one process, {} Workers and their Durable Objects); `wrk -t1 -c16` on core 1; {rounds} round(s) x {secs} s, alternated; median [min..max].\n",
        String::from_utf8_lossy(&version.stdout).trim(),
        ports.len()
    );
    println!("| variant | req/s | workerd CPU µs/req | p50 ms | p99 ms | requests |");
    println!("|---|---|---|---|---|---|");
    let mut cpus = Vec::new();
    for (v, rs) in variants.iter().zip(&results) {
        let (rps, rlo, rhi) = median(rs.iter().map(|r| r.0.rps).collect());
        let (cpu, clo, chi) = median(rs.iter().map(|r| r.1).collect());
        let (p50, _, _) = median(rs.iter().map(|r| r.0.p50_ms).collect());
        let (p99, _, _) = median(rs.iter().map(|r| r.0.p99_ms).collect());
        let n: f64 = rs.iter().map(|r| r.0.requests).sum();
        println!(
            "| {} | {rps:.0} [{rlo:.0}..{rhi:.0}] | {cpu:.1} [{clo:.1}..{chi:.1}] | {p50:.3} | {p99:.3} | {n} (all 200) |",
            v.0
        );
        cpus.push(cpu);
    }
    if args.runs("v8-alone") {
        println!(
            "\nProbe, V8 alone: one `l402_decide` call through the same glue and Wasm in Node 22 \
             (no workerd; 200,000 calls in five rounds, the loop's own cost taken out, the median round): \
             {:.2} µs with the cache, {:.2} µs without.",
            v8_alone(module_dir, &authorization, 1024)?,
            v8_alone(module_dir, &authorization, 0)?,
        );
    }
    let cpu = |name: &str| {
        variants
            .iter()
            .position(|v| v.1 == name)
            .map_or(f64::NAN, |i| cpus[i])
    };
    let rounds = |name: &str| -> Vec<f64> {
        variants
            .iter()
            .position(|v| v.1 == name)
            .map_or_else(Vec::new, |i| results[i].iter().map(|r| r.1).collect())
    };
    // `a` above `b`: the median of the per-round differences.
    let above = |a: &str, b: &str| wrk::paired(&rounds(a), &rounds(b));
    let part = |a: &str, b: &str| {
        let (d, lo, hi) = above(a, b);
        format!("{d:.1} µs [{lo:.1}..{hi:.1}]")
    };
    let probes = [
        "trivial",
        "l402-js-only",
        "l402-crossing",
        "l402-decide",
        "l402",
    ];
    if probes.iter().all(|n| args.runs(n)) {
        println!(
            "\nWhere the L402 Worker's CPU goes with the cache (per-round differences: median \
             [quartiles]): the JavaScript around the decision, with the forward's header work, \
             {} above the trivial Worker; one crossing into the Wasm that does no work {}; \
             core's decision in workerd beyond that crossing {}; the fetch to the origin {}.",
            part("l402-js-only", "trivial"),
            part("l402-crossing", "l402-js-only"),
            part("l402-decide", "l402-crossing"),
            part("l402", "l402-decide"),
        );
    }
    if args.runs("proxy") && args.runs("proxy-headers") {
        println!(
            "The forward's header work in a JS proxy with no Wasm (the request copied, `host` \
             and the credential removed, two headers set): {} above the JS proxy.",
            part("proxy-headers", "proxy"),
        );
    }
    if args.runs("host-none") {
        // Per round: a combination of the steps' Workers, less the loop alone, per step.
        let per_step = |terms: &[(&str, f64)]| {
            let loop_alone = rounds("host-none");
            let mut sum = vec![0.0; loop_alone.len()];
            for (op, k) in terms {
                for (s, (x, l)) in sum
                    .iter_mut()
                    .zip(rounds(&format!("host-{op}")).iter().zip(&loop_alone))
                {
                    *s += k * (x - l) / f64::from(HOST_OPS_REPEAT);
                }
            }
            let (d, lo, hi) = wrk::paired(&sum, &vec![0.0; sum.len()]);
            format!("{d:.2} µs [{lo:.2}..{hi:.2}]")
        };
        println!(
            "\nThe request path's steps in workerd, each done {HOST_OPS_REPEAT} times in one \
             request (per round: the step's Worker less the loop alone, divided by \
             {HOST_OPS_REPEAT}; median [quartiles]):\n\n| step | per step |\n|---|---|"
        );
        for (op, what) in &HOST_OPS {
            if *op != "none" && args.runs(&format!("host-{op}")) {
                println!("| {what} | {} |", per_step(&[(op, 1.0)]));
            }
        }
        // The hot sum needs every step but the call after a fetch; the cold one needs all.
        let ran = |cold: bool| {
            HOST_OPS
                .iter()
                .filter(|(op, _)| cold || !op.starts_with("fetch-decide"))
                .all(|(op, _)| args.runs(&format!("host-{op}")))
        };
        if ran(false) {
            println!(
                "\nOne `l402_decide` call, the headers read taken out: {} with the cache, {} \
                 without. What the L402 Worker's steps add to a JS proxy's: before any Wasm (the \
                 headers read, its forward less the proxy's copy) {}; the origin's fetch of its \
                 forward less the proxy's fetch of its copy {}; all of it with the call: {} with \
                 the cache (goal for the whole request: <= +15), {} without (goal: <= +30).",
                per_step(&[("decide", 1.0), ("headers", -1.0)]),
                per_step(&[("decide-nocache", 1.0), ("headers", -1.0)]),
                per_step(&[("headers", 1.0), ("forward", 1.0), ("copy", -1.0)]),
                per_step(&[("fetch-forward", 1.0), ("fetch-copy", -1.0)]),
                per_step(&[
                    ("fetch-forward", 1.0),
                    ("fetch-copy", -1.0),
                    ("decide", 1.0)
                ]),
                per_step(&[
                    ("fetch-forward", 1.0),
                    ("fetch-copy", -1.0),
                    ("decide-nocache", 1.0),
                ]),
            );
        }
        if ran(true) {
            // The loop runs the call hot; a request meets it after workerd's own work.
            println!(
                "The same call after an origin fetch (a fetch then the call, less the fetch, the \
                 headers read taken out): {} with the cache, {} without; all of it with that \
                 call: {} with the cache, {} without.",
                per_step(&[
                    ("fetch-decide", 1.0),
                    ("fetch-copy", -1.0),
                    ("headers", -1.0)
                ]),
                per_step(&[
                    ("fetch-decide-nocache", 1.0),
                    ("fetch-copy", -1.0),
                    ("headers", -1.0),
                ]),
                per_step(&[
                    ("fetch-forward", 1.0),
                    ("fetch-copy", -2.0),
                    ("fetch-decide", 1.0)
                ]),
                per_step(&[
                    ("fetch-forward", 1.0),
                    ("fetch-copy", -2.0),
                    ("fetch-decide-nocache", 1.0),
                ]),
            );
        }
        if args.runs("trivial") {
            println!(
                "A Worker with the L402 Wasm loaded, doing the loop alone: {} above the trivial \
                 Worker, per request.",
                part("host-none", "trivial")
            );
        }
    }
    if ["proxy", "proxy-await", "proxy-catch"]
        .iter()
        .all(|n| args.runs(n))
    {
        println!(
            "Awaiting the origin's fetch in `try` (to answer a failure itself): {} above the JS \
             proxy; with `.catch` on fetch's promise instead: {}.",
            part("proxy-await", "proxy"),
            part("proxy-catch", "proxy"),
        );
    }
    if args.only.is_some()
        && ["proxy", "l402", "l402-nocache"]
            .iter()
            .all(|n| args.runs(n))
    {
        println!(
            "The whole request, the L402 Worker above the JS proxy: {} with the cache, {} without.",
            part("l402", "proxy"),
            part("l402-nocache", "proxy"),
        );
    }
    if args.only.is_some() {
        return Ok(()); // a probe run: the summary's figures need every variant
    }
    println!(
        "\nL402 Worker CPU per authorized request: {:.1} µs with the cache ({:+.1} µs above the JS \
         proxy, the median of the rounds' differences; goal <= +15), {:.1} µs without ({:+.1} µs \
         above; goal <= +30). The plain-JavaScript \
         verifier: {:.1} µs with its cache ({:+.1} µs above the trivial Worker), {:.1} µs without \
         ({:+.1} µs above). A Payment charge spent in its Durable Object (a new object per payment \
         hash, in the same process): {:.1} µs with in-memory storage ({:+.1} µs above the L402 \
         request with the cache), {:.1} µs with SQLite on local disk (workerd's own storage \
         engine; Cloudflare's is not on this machine).",
        cpu("l402"),
        above("l402", "proxy").0,
        cpu("l402-nocache"),
        above("l402-nocache", "proxy").0,
        cpu("js-verifier"),
        above("js-verifier", "trivial").0,
        cpu("js-verifier-nocache"),
        above("js-verifier-nocache", "trivial").0,
        cpu("l402-pay"),
        above("l402-pay", "l402").0,
        cpu("l402-pay-disk"),
    );
    println!(
        "Metered token counted in its Durable Object: {:.1} µs, {:.1} µs above the unmetered \
         request with the cache; one Durable Object call (the Payment charge's spend, SQLite on \
         disk) costs {:.1} µs above it. Goal: metered <= unmetered + one Durable Object call.",
        cpu("l402-metered"),
        above("l402-metered", "l402").0,
        above("l402-pay-disk", "l402").0,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same_lines;

    #[test]
    fn a_probe_s_marked_lines_must_be_the_entry_module_s() {
        let entry = "a\n    b();\n    c();\nd\n";
        let probe = |body: &str| {
            format!("x\n// entry module's lines: begin\n{body}\n// entry module's lines: end\ny")
        };
        assert!(same_lines(entry, &probe("  b();\n  c();")));
        assert!(!same_lines(entry, &probe("  b();\n  c(1);")));
        assert!(!same_lines(entry, &probe("")));
        assert!(!same_lines(entry, "b();\nc();"));
        // Every marked block counts.
        let two = format!("{}\n{}", probe("  b();"), probe("  e();"));
        assert!(!same_lines(entry, &two));
        let two = format!("{}\n{}", probe("  b();"), probe("d"));
        assert!(same_lines(entry, &two));
    }
}

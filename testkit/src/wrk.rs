//! `wrk` (Debian package) as the load generator of the benchmarks: one thread pinned to a
//! core, latency percentiles, and a count of every status code seen (a Lua `response` hook),
//! so that a benchmark can refuse a round that answered something other than it expected.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Counts statuses per thread; `done` prints them as `status <code> <count>` lines.
const STATUS_SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do io.write(string.format("status %d %d\n", code, n)) end
  end
end
"#;

/// One `wrk` run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Requests completed.
    pub requests: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Socket errors wrk reported (connect, read, write, timeout), summed.
    pub socket_errors: u64,
}

/// What to run.
pub struct Load<'a> {
    /// Full URL.
    pub url: &'a str,
    /// Extra request headers, `Name: value`.
    pub headers: &'a [String],
    /// Seconds.
    pub seconds: u64,
    /// Open connections.
    pub connections: u32,
    /// The core `wrk` is pinned to, if any.
    pub core: Option<u32>,
    /// More Lua for the script (e.g. a `request` hook), beside the status counter.
    pub script: Option<&'a str>,
}

/// Runs `wrk` once and parses its report.
pub fn run(load: &Load<'_>) -> Result<Run> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let script = std::env::temp_dir().join(format!("l402-wrk-{}-{n}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!("{STATUS_SCRIPT}\n{}", load.script.unwrap_or_default()),
    )?;
    let mut cmd = match load.core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &core.to_string(), "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    cmd.args(["-t1", "--latency"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .arg("-s")
        .arg(&script);
    for h in load.headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(load.url);
    let out = cmd
        .output()
        .context("running wrk (apt-get install wrk; taskset from util-linux)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&text)
}

fn parse(text: &str) -> Result<Run> {
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("wrk output: {text}"))?;
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("wrk output: {text}"))?;
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map(parse_ms)
            .unwrap_or(f64::NAN)
    };
    let mut statuses = BTreeMap::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        if let (Some("status"), Some(code), Some(n)) = (f.next(), f.next(), f.next())
            && let (Ok(code), Ok(n)) = (code.parse::<u16>(), n.parse::<u64>())
        {
            *statuses.entry(code).or_insert(0) += n;
        }
    }
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(Run {
        requests,
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        statuses,
        socket_errors,
    })
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => f64::NAN,
    }
}

/// `(median, min, max)`; NaN for an empty list.
pub fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// `(median, first quartile, third quartile)` of the per-round differences `a[i] - b[i]`; NaN
/// when there are none. Rounds alternate the variants, so each difference compares runs made
/// seconds apart; the quartiles say how far a difference can be trusted on a noisy machine.
pub fn paired(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if d.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    d.sort_by(|x, y| x.total_cmp(y));
    (d[d.len() / 2], d[d.len() / 4], d[(3 * d.len()) / 4])
}

/// Pins every thread of `pid` to `core`.
pub fn pin(pid: u32, core: u32) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("taskset -p {pid}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report_with_status_counts() {
        let text = "Running 1s test @ http://127.0.0.1:1/weather\n  1 threads and 32 connections\n\
            Latency Distribution\n     50%  412.00us\n     75%  1.00ms\n     90%  2.00ms\n     99%    1.21ms\n\
            12345 requests in 1.00s, 1.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
            Requests/sec:  12345.67\nTransfer/sec:      1.00MB\nstatus 402 12000\nstatus 503 345\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 12345.0);
        assert!((r.rps - 12345.67).abs() < 1e-6);
        assert!((r.p50_ms - 0.412).abs() < 1e-9);
        assert!((r.p99_ms - 1.21).abs() < 1e-9);
        assert_eq!(r.statuses.get(&402), Some(&12000));
        assert_eq!(r.statuses.get(&503), Some(&345));
        assert_eq!(r.socket_errors, 3);
    }

    #[test]
    fn pairs_rounds_before_taking_the_median() {
        // `b`'s third round ran fast: the medians' difference says 15, every other round 10.
        let a = [110.0, 310.0, 120.0, 115.0];
        let b = [100.0, 300.0, 20.0, 105.0];
        assert_eq!(paired(&a, &b), (10.0, 10.0, 100.0));
        assert!(paired(&[], &[]).0.is_nan());
    }
}

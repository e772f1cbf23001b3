//! CPU time of processes from `/proc`, for benchmarks that charge a server for its work.

use std::process::Command;

use anyhow::{Context, Result};

/// `(pid, process group, utime + stime in ticks)` of every process `/proc` lists.
fn all() -> Result<Vec<(u32, u32, f64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces: fields resume after the last ") ".
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let pid = head.split_whitespace().next().and_then(|p| p.parse().ok());
        let pgrp = f.get(2).and_then(|g| g.parse().ok());
        let ticks = f
            .get(11)
            .zip(f.get(12))
            .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?));
        if let (Some(pid), Some(pgrp), Some(ticks)) = (pid, pgrp, ticks) {
            out.push((pid, pgrp, ticks));
        }
    }
    Ok(out)
}

fn ticks_per_second() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8(out.stdout)?
        .trim()
        .parse()
        .context("getconf CLK_TCK")
}

/// CPU seconds (user + system) used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let ticks = all()?
        .into_iter()
        .find(|(p, _, _)| *p == pid)
        .map(|(_, _, t)| t)
        .context("no such process")?;
    Ok(ticks / ticks_per_second()?)
}

/// CPU seconds used so far by every process of the group `pgid` leads.
pub fn group_cpu_seconds(pgid: u32) -> Result<f64> {
    let ticks: f64 = all()?
        .into_iter()
        .filter(|(_, g, _)| *g == pgid)
        .map(|(_, _, t)| t)
        .sum();
    Ok(ticks / ticks_per_second()?)
}

/// The processes of the group `pgid` leads.
pub fn group_members(pgid: u32) -> Result<Vec<u32>> {
    Ok(all()?
        .into_iter()
        .filter(|(_, g, _)| *g == pgid)
        .map(|(p, _, _)| p)
        .collect())
}

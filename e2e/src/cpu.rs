//! CPU time of this process and everything it started (the stack: wrangler's Node process, its dev proxy workerd,
//! the workerd running our Worker, nginx, ffmpeg, the uploader), grouped by what each process is. A benchmark
//! samples it before and after a run and prints the difference, so a reader sees which process the machine's cores
//! went to, and whether the machine (not the code under test) was the bound: on this machine every part of "the
//! edge" and every simulated viewer share the same cores.

use std::collections::{BTreeMap, HashMap};

/// Linux's clock ticks per second for `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) used so far, per kind of process, over this process and its descendants that are
/// still running. Exited processes are not counted, so sample while the stack runs.
pub fn sample() -> BTreeMap<&'static str, f64> {
    let me = std::process::id();
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut info: HashMap<u32, (String, f64)> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the comm: state(0) ppid(1) ... utime(11) stime(12).
        let (Some(ppid), Some(utime), Some(stime)) = (
            fields.get(1).and_then(|v| v.parse::<u32>().ok()),
            fields.get(11).and_then(|v| v.parse::<f64>().ok()),
            fields.get(12).and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        parent.insert(pid, ppid);
        info.insert(pid, (comm, (utime + stime) / TICKS_PER_SECOND));
    }
    let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
    for (pid, (comm, seconds)) in &info {
        let mut p = *pid;
        let mine = loop {
            if p == me {
                break true;
            }
            match parent.get(&p) {
                Some(&pp) if pp != 0 && pp != p => p = pp,
                _ => break false,
            }
        };
        if mine {
            *out.entry(kind(*pid, comm, me)).or_default() += seconds;
        }
    }
    out
}

fn kind(pid: u32, comm: &str, me: u32) -> &'static str {
    if pid == me {
        return "benchmark client";
    }
    match comm {
        "workerd" => {
            // wrangler dev starts two: its proxy on the public port, and the Worker's own on a port it picks (0).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("entry=127.0.0.1:0") {
                "workerd: the Worker"
            } else {
                "workerd: wrangler's dev proxy"
            }
        }
        "node" | "MainThread" => "wrangler (Node)",
        "nginx" => "origin nginx",
        "ffmpeg" => "ffmpeg (publisher, origin)",
        c if c.starts_with("sunnylive-orig") => "origin uploader",
        // wrangler's bundler, watching the Worker's entry file.
        "esbuild" => "wrangler (esbuild)",
        c if c.starts_with("midtrans") => "Midtrans stand-in",
        _ => "other",
    }
}

/// `after - before`, per kind.
pub fn difference(
    before: &BTreeMap<&'static str, f64>,
    after: &BTreeMap<&'static str, f64>,
) -> BTreeMap<&'static str, f64> {
    after
        .iter()
        .map(|(k, v)| (*k, (v - before.get(k).copied().unwrap_or(0.0)).max(0.0)))
        .collect()
}

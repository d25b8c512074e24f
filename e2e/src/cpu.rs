//! CPU time of this process and everything it started (the stack: wrangler's Node process, its dev proxy workerd,
//! the workerd running our Worker, nginx, ffmpeg, the uploader), grouped by what each process is. A benchmark
//! samples it before and after a run and prints the difference, so a reader sees which process the machine's cores
//! went to, and whether the machine (not the code under test) was the bound: on this machine every part of "the
//! edge" and every simulated viewer share the same cores.

use std::collections::{BTreeMap, HashMap};

/// Linux's clock ticks per second for `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// One running process: its parent, its name (`comm`) and the CPU seconds (user + system) it has used so far.
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    seconds: f64,
}

/// Every process now running, from /proc.
fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
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
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the comm: state(0) ppid(1) ... utime(11) stime(12).
        let (Some(ppid), Some(utime), Some(stime)) = (
            fields.get(1).and_then(|v| v.parse::<u32>().ok()),
            fields.get(11).and_then(|v| v.parse::<f64>().ok()),
            fields.get(12).and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        out.push(Proc {
            pid,
            ppid,
            comm: stat[open + 1..close].to_string(),
            seconds: (utime + stime) / TICKS_PER_SECOND,
        });
    }
    out
}

/// Whether `pid` is `root` or descends from it.
fn descends(pid: u32, root: u32, parent: &HashMap<u32, u32>) -> bool {
    let mut p = pid;
    loop {
        if p == root {
            return true;
        }
        match parent.get(&p) {
            Some(&pp) if pp != 0 && pp != p => p = pp,
            _ => return false,
        }
    }
}

/// CPU seconds (user + system) used so far, per kind of process, over this process and its descendants that are
/// still running. Exited processes are not counted, so sample while the stack runs.
pub fn sample() -> BTreeMap<&'static str, f64> {
    let me = std::process::id();
    let procs = processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
    for p in procs.iter().filter(|p| descends(p.pid, me, &parent)) {
        *out.entry(kind(p.pid, &p.comm, me)).or_default() += p.seconds;
    }
    out
}

/// CPU seconds (user + system) used so far by the workerd that runs the Worker (not wrangler's dev proxy) among the
/// descendants of `root` (a `wrangler dev`'s pid): what one Worker under that wrangler costs, however many other
/// stacks run beside it.
pub fn worker_workerd_seconds(root: u32) -> f64 {
    let procs = processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    procs
        .iter()
        .filter(|p| p.comm == "workerd" && kind(p.pid, &p.comm, 0) == WORKER && descends(p.pid, root, &parent))
        .map(|p| p.seconds)
        .sum()
}

/// Resident memory (KiB, `VmRSS`) of the workerd that runs the Worker under `root` (a `wrangler dev`'s pid), if it
/// runs: what holding a room's sockets costs that process.
pub fn worker_workerd_rss_kib(root: u32) -> Option<u64> {
    worker_workerd_pids(root)
        .into_iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .reduce(|a, b| a + b)
}

/// The workerd processes that run the Worker under `root` (a `wrangler dev`'s pid): not its dev proxy.
fn worker_workerd_pids(root: u32) -> Vec<u32> {
    let procs = processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    procs
        .iter()
        .filter(|p| p.comm == "workerd" && kind(p.pid, &p.comm, 0) == WORKER && descends(p.pid, root, &parent))
        .map(|p| p.pid)
        .collect()
}

/// Open file descriptors of the workerd that runs the Worker under `root`, and that process's open-file limit: how
/// many descriptors a socket costs it, against the per-process limit that bounds how many sockets one workerd holds.
pub fn worker_workerd_fds(root: u32) -> Option<(u64, Option<u64>)> {
    let pid = *worker_workerd_pids(root).first()?;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        });
    Some((open, limit))
}

/// The kind of the workerd that runs the Worker itself.
const WORKER: &str = "workerd: the Worker";

fn kind(pid: u32, comm: &str, me: u32) -> &'static str {
    if pid == me {
        return "benchmark client";
    }
    match comm {
        "workerd" => {
            // wrangler dev starts two: its proxy on the public port, and the Worker's own on a port it picks (0).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("entry=127.0.0.1:0") {
                WORKER
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

/// The TCP ports on 127.0.0.1 that the workerd running the Worker under `root` (a `wrangler dev`'s pid) listens on:
/// its entry socket among them (wrangler picks it at random and tells only its proxy).
pub fn worker_workerd_ports(root: u32) -> Vec<u16> {
    let procs = processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    let mut ports = Vec::new();
    for p in procs
        .iter()
        .filter(|p| p.comm == "workerd" && kind(p.pid, &p.comm, 0) == WORKER && descends(p.pid, root, &parent))
    {
        // The socket inodes this process holds open.
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", p.pid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|link| {
                let link = link.to_string_lossy().to_string();
                link.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string)
            })
            .collect();
        let table = std::fs::read_to_string(format!("/proc/{}/net/tcp", p.pid)).unwrap_or_default();
        for line in table.lines().skip(1) {
            // sl local_address rem_address st ... inode (the 10th field).
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            // 0A: listening; 0100007F: 127.0.0.1.
            if *state != "0A" || !local.starts_with("0100007F:") || !inodes.iter().any(|i| i == inode) {
                continue;
            }
            if let Some(port) = local.split(':').nth(1).and_then(|h| u16::from_str_radix(h, 16).ok()) {
                ports.push(port);
            }
        }
    }
    ports
}

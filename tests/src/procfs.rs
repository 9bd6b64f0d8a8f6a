//! What a process has used so far, read from `/proc` (Linux): the figures the benchmarks
//! print and the memory tests assert.

/// A `/proc/<pid>/status` field in KiB (`"VmRSS:"`, `"VmHWM:"`, …); `None` for a process
/// that is gone or a field that is absent.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time of a process so far, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's value, when unknown).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Context switches of all of a process's threads so far, voluntary (a thread went to
/// sleep: parked, waiting) plus involuntary (preempted), from each
/// `/proc/<pid>/task/<tid>/status`; the process's own `status` counts only its main thread.
/// Threads that have exited are not counted. `None` for a process that is gone.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        sum += status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_sleeps_adds_context_switches_to_its_process() {
        let me = std::process::id();
        let before = context_switches(me).expect("our own process");
        // Each sleep parks this thread at least once; sleeping is what is measured here.
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let after = context_switches(me).expect("our own process");
        assert!(after >= before + 20, "{before} -> {after}");
        assert_eq!(context_switches(u32::MAX), None, "no such process");
    }
}

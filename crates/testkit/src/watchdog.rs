//! A time limit for a whole test binary. A hang (a lost wake-up, a reply
//! that never comes) would otherwise hold CI until its own limit, with
//! nothing in the log but "has been running for over 60 seconds"; this
//! fails the run instead, and kills the server processes the tests
//! started, which would hold the harness's output pipe open.

use std::sync::{Mutex, Once};
use std::time::Duration;

/// Generous: the slowest test binary takes about a minute on a loaded
/// 2-core machine.
const LIMIT: Duration = Duration::from_secs(600);

static ARMED: Once = Once::new();
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Starts the clock for this test binary (once; later calls do nothing).
pub fn arm() {
    ARMED.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(LIMIT);
            eprintln!("test binary still running after {LIMIT:?}: a test hangs; aborting the run");
            let pids = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for pid in pids.into_iter().filter(|pid| is_our_server(*pid)) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
            std::process::exit(101);
        });
    });
}

/// Whether `pid` is still a `rackwave serve` process: a test may have
/// reaped its server already, and the pid may belong to another process
/// by now.
fn is_our_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"rackwave"))
            && args.get(1) == Some(&&b"serve"[..])
    })
}

/// A server process to kill if the limit is reached.
pub fn track(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// The process has been killed and reaped.
pub fn untrack(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

//! The progress line of a time-based run: on a terminal only (stderr), rewritten in place
//! once a second, cleared when the run ends. Nothing is printed when stderr is a file or a
//! pipe, so logs and records stay clean.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::qualify::spec::format_duration;

/// The running progress line; dropping it stops and clears it.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Starts the line for a run of `total` (plus its setup and warm-up), labelled `what`;
/// `None` when stderr is not a terminal.
pub fn start(what: &str, total: Duration) -> Option<Ticker> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let what = what.to_string();
    let t0 = Instant::now();
    let handle = std::thread::Builder::new()
        .name("gdswap-progress".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let elapsed = Duration::from_secs(t0.elapsed().as_secs());
                let shown = if elapsed.is_zero() {
                    "0s".to_string()
                } else {
                    format_duration(elapsed)
                };
                eprint!(
                    "\r\x1b[K{what}: {shown} elapsed, measuring for {} (after setup and warm-up)",
                    format_duration(total)
                );
                let _ = std::io::stderr().flush();
                // Wake often to stop promptly, redraw once a second.
                for _ in 0..10 {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        })
        .ok()?;
    Some(Ticker {
        stop,
        handle: Some(handle),
    })
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

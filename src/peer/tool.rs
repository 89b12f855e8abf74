//! Finding a peer tool in PATH, and running one in its own process group under a time limit.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether `p` is a file someone may execute.
pub(super) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// An executable called `name` in `PATH`, if any.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// What a tool run to its end left: its exit status and everything it printed.
pub(super) struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why a tool run gave no exit status.
pub(super) enum RunFailure {
    /// It could not be started.
    Start(std::io::Error),
    /// It ran past its time limit and was killed, with its process group.
    TimedOut,
    /// Waiting for it failed (it was killed, with its process group).
    Wait(std::io::Error),
}

/// Runs `exe` with `args` (stdin empty) in its own process group, so that a run past
/// `timeout` is killed with everything it started. Both pipes are read while it runs, so a
/// full pipe never blocks it.
pub(super) fn run_in_group(
    exe: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<Ran, RunFailure> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(RunFailure::Start)?;
    let kill = |child: &mut Child| {
        if crate::io::sys::kill_process_group(child.id()).is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
    };
    fn drain<R: std::io::Read + Send + 'static>(
        pipe: Option<R>,
    ) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                break Err(RunFailure::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill(&mut child);
                break Err(RunFailure::Wait(e));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Ran {
        status: status?,
        stdout,
        stderr,
    })
}

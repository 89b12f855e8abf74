//! gdsio: where it is, whether a workload suits it, its command line, its result line read,
//! one run in its own process group under a time limit, the runs of a round combined.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fio::fio_ranges;
use super::tool::{find_in_path, is_executable, run_in_group, RunFailure};
use crate::error::{msg, Error, Message, Result, Setting};
use crate::options::{Op, RunOptions};
use crate::size::Bytes;

/// Where the GDS tools install gdsio when it is not in PATH.
pub const GDSIO_DEFAULT: &str = "/usr/local/cuda/gds/tools/gdsio";
/// Names the gdsio binary, before PATH and [`GDSIO_DEFAULT`] are looked at.
pub const GDSIO_ENV: &str = "GDSWAP_GDSIO";
/// Seconds one gdsio run may take before it is killed (default: see [`gdsio_timeout`]).
pub const GDSIO_TIMEOUT_ENV: &str = "GDSWAP_GDSIO_TIMEOUT";

/// Where gdsio is (`$GDSWAP_GDSIO`, else PATH, else [`GDSIO_DEFAULT`]), or why it cannot be
/// used.
pub fn locate_gdsio() -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(GDSIO_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "{GDSIO_ENV} names {}, which is not an executable file",
                p.display()
            ))
        };
    }
    find_in_path("gdsio")
        .or_else(|| {
            let p = PathBuf::from(GDSIO_DEFAULT);
            is_executable(&p).then_some(p)
        })
        .ok_or_else(|| {
            format!(
                "not installed (not in PATH, not at {GDSIO_DEFAULT}; it ships with NVIDIA's GDS tools)"
            )
        })
}

/// One of the two gdsio transfers gdswap runs; each is its own row of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GdsioXfer {
    /// `-x 0`, printed as `XferType: GPUD`: storage to and from GPU memory through cuFile.
    Gpud,
    /// `-x 2`, printed as `XferType: CPU_GPU`: storage to and from CPU memory, copied to and
    /// from GPU memory.
    CpuGpu,
}

/// Both gdsio rows, in the order they run.
pub const GDSIO_XFERS: [GdsioXfer; 2] = [GdsioXfer::Gpud, GdsioXfer::CpuGpu];

impl GdsioXfer {
    /// The row's name in a comparison (and in `--peers`).
    pub fn name(self) -> &'static str {
        match self {
            GdsioXfer::Gpud => "gdsio-gpud",
            GdsioXfer::CpuGpu => "gdsio-cpu-gpu",
        }
    }

    /// The value of gdsio's `-x`.
    pub fn flag(self) -> &'static str {
        match self {
            GdsioXfer::Gpud => "0",
            GdsioXfer::CpuGpu => "2",
        }
    }

    /// What gdsio prints after `XferType:`.
    pub fn label(self) -> &'static str {
        match self {
            GdsioXfer::Gpud => "GPUD",
            GdsioXfer::CpuGpu => "CPU_GPU",
        }
    }

    /// The row called `name`, if any.
    pub fn by_name(name: &str) -> Option<GdsioXfer> {
        GDSIO_XFERS.into_iter().find(|x| x.name() == name)
    }
}

/// The one file gdsio runs on for `opts` (`-f`), or why gdsio cannot run this workload as
/// gdswap's backends do (the reason of a skip note).
pub fn gdsio_file(opts: &RunOptions) -> std::result::Result<PathBuf, Message> {
    if opts.random {
        return Err(msg![
            Setting::Random,
            ": gdswap runs gdsio for sequential reads and writes only (-I 0, -I 1)"
        ]);
    }
    if !opts.direct {
        return Err(msg![
            Setting::Buffered,
            ": gdswap runs gdsio for O_DIRECT workloads only"
        ]);
    }
    let w = &opts.workload;
    if w.size % 1024 != 0 || w.block_size % 1024 != 0 {
        return Err(msg![
            "gdsio takes sizes in whole KiB, and ",
            Setting::Size,
            format!(" {} or ", w.size),
            Setting::BlockSize,
            format!(" {} is not", w.block_size)
        ]);
    }
    let per_thread = w.block_size * w.threads as u64;
    if per_thread == 0 || w.size % per_thread != 0 {
        return Err(msg![
            Setting::Size,
            format!(
                " {} is not a whole number of blocks per thread ({} thread(s) x ",
                Bytes(w.size),
                w.threads
            ),
            Setting::BlockSize,
            format!(
                " {}), which gdsio's threads would split differently",
                Bytes(w.block_size)
            )
        ]);
    }
    let ranges = fio_ranges(opts).map_err(|e| Message::from(e.to_string()))?;
    match ranges.first() {
        Some(first) if ranges.iter().all(|r| r.path == first.path) => Ok(first.path.clone()),
        _ => Err(msg![
            Setting::Dir,
            format!(" with {} threads: gdsio takes one file its threads share (-f) or a directory of files it names itself (-D), not gdswap's per-thread files; use ", w.threads),
            Setting::File,
            ", or 1 thread"
        ]),
    }
}

/// gdsio's command line (without the program) for `opts` on `file`, and a one-line mode.
///
/// Flags, as NVIDIA's GPUDirect Storage documentation uses and describes them (no real run of
/// gdsio has checked this build; none was at hand):
/// - Troubleshooting Guide, "Running Performance Benchmarks with GDS"
///   (docs.nvidia.com/gpudirect-storage/troubleshooting-guide/troubleshooting-performance.html):
///   `gdsio -f FILE -d 0 -w 4 -s 10G -i 1M -I 0 -x 0` is "GDS: Storage -> GPU Memory", `-x 1`
///   "Storage -> CPU Memory", `-x 2` "Storage -> CPU Memory -> GPU Memory", `-x 5` async
///   stream mode and `-x 6` batch mode (which gdswap does not run).
/// - Getting Started, "Demonstrating GDS with GDSIO"
///   (docs.nvidia.com/gpudirect-storage/getting-started/demonstrating-gds-with-gdsio.html):
///   `-x 0 -d 0 -s 8K -i 4K -f FILE -I 1` writes 8 KB (`-s`) from GPU 0 (`-d`) to FILE (`-f`) in
///   4 KB blocks (`-i`), printing `IoType: WRITE`. (Its prose calls `-I 1` "a single
///   iteration"; the output it shows, and every other example, make `-I 1` a write and `-I 0` a
///   read.)
/// - "GDS Support for NVMe", Test GDS (docs.nvidia.com/deploy/gds-support-for-nvme/test-gds.html):
///   `-w 4` is four threads; `-I 1` prints `IoType: WRITE`, `-I 0` `IoType: READ`; `-x 2` prints
///   `XferType: CPU_GPU`; `-s 1g -i 1m`: sizes take K, M, G (KiB multiples: `IOSize: 1024(KiB)`).
///
/// That `-s` is the whole data set when `-w` threads share one `-f` file (as gdswap's `--size`),
/// not a size per thread as with `-D`, is not in those pages (their `-w 4` examples with output
/// use `-D`, with `DataSetSize: .../4194304(KiB)` for `-s 1g`: per-thread files); it comes from
/// a user's post on NVIDIA's developer forums ("Why is the CPU usage higher when transferring
/// data via GDS ...", forums.developer.nvidia.com/t/why-is-the-cpu-usage-higher-when-
/// transferring-data-via-gds-compared-to-transferring-data-through-the-cpu/346097), where
/// `-f FILE -w 4 -s 100G` printed `DataSetSize: .../104857600(KiB)`: 100 GiB in all. Sizes are
/// given in KiB (`K`), the unit gdsio reports in. `-x 0` and `-x 2` are taken to keep one transfer in flight per
/// thread, gdsio's async stream and batch modes being `-x 5` and `-x 6`.
pub fn gdsio_args(opts: &RunOptions, file: &Path, xfer: GdsioXfer) -> (Vec<String>, String) {
    let io = match opts.workload.op {
        Op::Read => "0",
        Op::Write => "1",
    };
    let args: Vec<String> = vec![
        "-f".into(),
        file.display().to_string(),
        "-d".into(),
        opts.gpu.device.to_string(),
        "-w".into(),
        opts.workload.threads.to_string(),
        "-s".into(),
        format!("{}K", opts.workload.size / 1024),
        "-i".into(),
        format!("{}K", opts.workload.block_size / 1024),
        "-x".into(),
        xfer.flag().into(),
        "-I".into(),
        io.into(),
    ];
    let mode = format!(
        "gdsio -x {} ({}: {}), -I {io} ({}), GPU {}, {}, synchronous transfers (not gdsio's async or batch modes, so {} does not apply), {} warm-up + {} measured run(s) per round; latency: gdsio's average only",
        xfer.flag(),
        xfer.label(),
        match xfer {
            GdsioXfer::Gpud => "cuFile between the file and GPU memory",
            GdsioXfer::CpuGpu => "through CPU memory",
        },
        opts.workload.op,
        opts.gpu.device,
        if opts.workload.threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{} threads sharing one file", opts.workload.threads)
        },
        crate::error::setting_name(Setting::QueueDepth),
        opts.workload.warmup,
        opts.workload.loops,
    );
    (args, mode)
}

/// How long one gdsio run may take: `$GDSWAP_GDSIO_TIMEOUT` seconds, else 60 s plus the time
/// to move the data set at 10 MiB/s. gdsio goes through cuFile, which can hang where no GPU or
/// GDS driver is usable, so a run is never waited for without end.
pub fn gdsio_timeout(opts: &RunOptions) -> Result<Duration> {
    gdsio_timeout_from(std::env::var(GDSIO_TIMEOUT_ENV).ok().as_deref(), opts)
}

/// [`gdsio_timeout`] with the variable's value given.
fn gdsio_timeout_from(value: Option<&str>, opts: &RunOptions) -> Result<Duration> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
            _ => Err(Error::invalid(
                crate::error::Setting::Env(GDSIO_TIMEOUT_ENV),
                format!("'{v}' is not a whole number of seconds above 0"),
            )),
        },
        None => Ok(Duration::from_secs(60 + opts.workload.size / (10 << 20))),
    }
}

/// What one gdsio run printed on its result line.
#[derive(Debug, Clone, PartialEq)]
pub struct GdsioFigures {
    /// `Threads:`.
    pub threads: usize,
    /// Bytes moved: the first figure of `DataSetSize: moved/configured(KiB)`.
    pub bytes: u64,
    /// `IOSize:` (printed in KiB), bytes per request.
    pub io_size_bytes: u64,
    /// `Throughput:`, GiB/s.
    pub throughput_gibps: f64,
    /// `Avg_Latency:`, µs.
    pub avg_latency_us: f64,
    /// `ops:`: requests done.
    pub ops: u64,
    /// `total_time`, seconds.
    pub total_time_s: f64,
}

/// A line gdsio printed that says something failed, if any.
fn gdsio_error_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("fail")
    })
}

/// Reads gdsio's output (stdout and stderr): exactly one result line for direction `op` and
/// transfer `xfer`, with `threads` threads. The line's format, as NVIDIA's documentation shows
/// it (see [`gdsio_args`]; the tests' fixtures, `tests/data/gdsio-*.txt`, follow it):
///
/// `IoType: READ XferType: GPUD Threads: 4 DataSetSize: 4194304/4194304(KiB) IOSize: 1024(KiB)
/// Throughput: 3.2 GiB/sec, Avg_Latency: 1200.5 usecs ops: 4096 total_time 1.25 secs`
///
/// Any line that mentions an error or a failure makes the run a failure, even with a result
/// line: gdsio may stop its traffic on an I/O error and still print what it moved.
pub fn parse_gdsio(
    text: &str,
    op: Op,
    xfer: GdsioXfer,
    threads: usize,
) -> std::result::Result<GdsioFigures, String> {
    if let Some(l) = gdsio_error_line(text) {
        return Err(format!("reported an error: {l}"));
    }
    let results: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("IoType:"))
        .collect();
    let want_io = match op {
        Op::Read => "READ",
        Op::Write => "WRITE",
    };
    let mut parsed = Vec::new();
    for line in &results {
        let t: Vec<&str> = line.split_whitespace().collect();
        let value = |key: &str| -> std::result::Result<&str, String> {
            t.iter()
                .position(|x| *x == key)
                .and_then(|i| t.get(i + 1).copied())
                .ok_or_else(|| format!("no '{key}' in its result line: {line}"))
        };
        // The word after a figure: its unit.
        let unit = |key: &str, want: &str| -> std::result::Result<(), String> {
            let u = t
                .iter()
                .position(|x| *x == key)
                .and_then(|i| t.get(i + 2))
                .map(|u| u.trim_end_matches(','))
                .unwrap_or("");
            if u == want {
                Ok(())
            } else {
                Err(format!(
                    "'{key}' is in '{u}', not {want}, in its result line: {line}"
                ))
            }
        };
        let num = |key: &str| -> std::result::Result<f64, String> {
            let v = value(key)?;
            v.trim_end_matches(',')
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("'{key} {v}' is not a number in its result line: {line}"))
        };
        let int = |key: &str| -> std::result::Result<u64, String> {
            let v = value(key)?;
            v.parse::<u64>().map_err(|_| {
                format!("'{key} {v}' is not a whole number in its result line: {line}")
            })
        };
        let kib = |key: &str| -> std::result::Result<u64, String> {
            let v = value(key)?;
            let first = v
                .strip_suffix("(KiB)")
                .and_then(|n| n.split('/').next())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("'{key} {v}' is not N(KiB) in its result line: {line}"))?;
            Ok(first * 1024)
        };
        let io_type = value("IoType:")?;
        let xfer_type = value("XferType:")?;
        if io_type != want_io || xfer_type != xfer.label() {
            parsed.push(Err((io_type.to_string(), xfer_type.to_string())));
            continue;
        }
        let f = GdsioFigures {
            threads: int("Threads:")? as usize,
            bytes: kib("DataSetSize:")?,
            io_size_bytes: kib("IOSize:")?,
            throughput_gibps: num("Throughput:")?,
            avg_latency_us: num("Avg_Latency:")?,
            ops: int("ops:")?,
            total_time_s: num("total_time")?,
        };
        unit("Throughput:", "GiB/sec")?;
        unit("Avg_Latency:", "usecs")?;
        unit("total_time", "secs")?;
        parsed.push(Ok(f));
    }
    let mut matching: Vec<GdsioFigures> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let f = match matching.len() {
        1 => matching.remove(0),
        0 => {
            return Err(match parsed.iter().find_map(|r| r.clone().err()) {
                Some((io, x)) => format!(
                "printed a result for IoType {io} XferType {x}, not the {want_io} {} run asked for",
                xfer.label()
            ),
                None => format!(
                    "printed no result line (IoType: ... Throughput: ...); it printed: {}",
                    text.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or("nothing")
                ),
            })
        }
        n => {
            return Err(format!(
                "printed {n} result lines for IoType {want_io} XferType {}; gdswap expects one",
                xfer.label()
            ))
        }
    };
    if f.threads != threads {
        return Err(format!(
            "ran {} thread(s) (Threads: {}), not the {threads} of -w {threads}",
            f.threads, f.threads
        ));
    }
    if f.bytes == 0 || f.ops == 0 || f.throughput_gibps <= 0.0 || f.total_time_s <= 0.0 {
        return Err(format!(
            "moved nothing: {} bytes in {} ops, {} GiB/s over {} s",
            f.bytes, f.ops, f.throughput_gibps, f.total_time_s
        ));
    }
    Ok(f)
}

/// One round of a gdsio row from its measured runs: GiB/s (all bytes over the time each run's
/// throughput implies, so one run gives gdsio's own figure) and the mean latency in us (each
/// run's average weighted by its ops). `None` without runs.
pub fn gdsio_round(runs: &[GdsioFigures]) -> Option<(f64, f64)> {
    let bytes: f64 = runs.iter().map(|r| r.bytes as f64).sum();
    let gib_seconds: f64 = runs
        .iter()
        .map(|r| r.bytes as f64 / r.throughput_gibps)
        .sum();
    let ops: f64 = runs.iter().map(|r| r.ops as f64).sum();
    if runs.is_empty() || gib_seconds <= 0.0 || ops <= 0.0 {
        return None;
    }
    let lat = runs
        .iter()
        .map(|r| r.avg_latency_us * r.ops as f64)
        .sum::<f64>()
        / ops;
    Some((bytes / gib_seconds, lat))
}

/// Runs gdsio `exe` with `args` (killed after `timeout`) and reads its figures. A failure (it
/// could not start, exited with an error, printed an error, printed no readable result line,
/// or ran too long) names gdsio and what it printed.
pub fn run_gdsio(
    exe: &Path,
    args: &[String],
    op: Op,
    xfer: GdsioXfer,
    threads: usize,
    timeout: Duration,
) -> Result<GdsioFigures> {
    let peer = |message: String| Error::Peer {
        tool: "gdsio".into(),
        message: message.into(),
    };
    let ran = run_in_group(exe, args, timeout).map_err(|e| {
        peer(match e {
            RunFailure::Start(e) => format!("cannot start {}: {e}", exe.display()),
            RunFailure::TimedOut => format!(
                "did not finish within {} s and was killed (cuFile can hang where no GPU or GDS driver is usable; {GDSIO_TIMEOUT_ENV} sets the limit)",
                timeout.as_secs()
            ),
            RunFailure::Wait(e) => format!("waiting for {}: {e}", exe.display()),
        })
    })?;
    let (status, stdout, stderr) = (ran.status, ran.stdout, ran.stderr);
    let text = format!("{stdout}\n{stderr}");
    if !status.success() {
        let why = gdsio_error_line(&text)
            .or_else(|| stderr.lines().map(str::trim).rfind(|l| !l.is_empty()))
            .or_else(|| stdout.lines().map(str::trim).rfind(|l| !l.is_empty()))
            .unwrap_or("no message");
        return Err(peer(format!("exited with {status}: {why}")));
    }
    parse_gdsio(&text, op, xfer, threads).map_err(peer)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::opts;
    use super::*;
    use crate::options::{Target, Workload};

    const GDSIO_READ: &str = include_str!("../../tests/data/gdsio-read-gpud.txt");
    const GDSIO_WRITE_V: &str = include_str!("../../tests/data/gdsio-write-cpu-gpu-verify.txt");

    #[test]
    fn parses_gdsio_result_lines_in_the_documented_format() {
        let f = parse_gdsio(GDSIO_READ, Op::Read, GdsioXfer::Gpud, 4).unwrap();
        assert_eq!(
            f,
            GdsioFigures {
                threads: 4,
                bytes: 4 << 30,
                io_size_bytes: 1 << 20,
                throughput_gibps: 3.41,
                avg_latency_us: 1143.39,
                ops: 4096,
                total_time_s: 1.173021,
            }
        );
        // With -V, the write's line is read and the verifying read's is not; the moved size
        // (64512 KiB) is what counts, not the configured one (65536 KiB).
        let w = parse_gdsio(GDSIO_WRITE_V, Op::Write, GdsioXfer::CpuGpu, 2).unwrap();
        assert_eq!(
            (w.bytes, w.ops, w.throughput_gibps),
            (64512 << 10, 63, 0.85)
        );
        assert!((w.avg_latency_us - 2297.794118).abs() < 1e-9);
        // The same output asked for another transfer or direction: an error naming both.
        let e = parse_gdsio(GDSIO_READ, Op::Write, GdsioXfer::Gpud, 4).unwrap_err();
        assert_eq!(
            e,
            "printed a result for IoType READ XferType GPUD, not the WRITE GPUD run asked for"
        );
        let e = parse_gdsio(GDSIO_READ, Op::Read, GdsioXfer::CpuGpu, 4).unwrap_err();
        assert!(e.ends_with("not the READ CPU_GPU run asked for"), "{e}");
        // Threads other than -w: an error.
        let e = parse_gdsio(GDSIO_READ, Op::Read, GdsioXfer::Gpud, 2).unwrap_err();
        assert!(e.starts_with("ran 4 thread(s)"), "{e}");
    }

    #[test]
    fn unreadable_or_failed_gdsio_output_is_an_error_never_a_zero() {
        let read = |t: &str| parse_gdsio(t, Op::Read, GdsioXfer::Gpud, 4).unwrap_err();
        // An error line fails the run even when a result line follows.
        let e = read(&format!(
            "Error: IO failed stopping traffic, fd :3 ret:-5 errno:5\n{GDSIO_READ}"
        ));
        assert_eq!(
            e,
            "reported an error: Error: IO failed stopping traffic, fd :3 ret:-5 errno:5"
        );
        assert!(read("cuFile driver open failed\n").starts_with("reported an error: cuFile"));
        let e = read("usage: gdsio ...\n");
        assert_eq!(
            e,
            "printed no result line (IoType: ... Throughput: ...); it printed: usage: gdsio ..."
        );
        assert!(read("").ends_with("it printed: nothing"));
        // Another unit, a missing figure, a figure that is not a number: errors quoting the line.
        let mib = GDSIO_READ.replace("GiB/sec,", "MiB/sec,");
        assert!(
            read(&mib).starts_with("'Throughput:' is in 'MiB/sec', not GiB/sec"),
            "{}",
            read(&mib)
        );
        let no_lat = GDSIO_READ.replace("Avg_Latency: 1143.390000 usecs ", "");
        assert!(read(&no_lat).starts_with("no 'Avg_Latency:' in its result line: IoType: READ"));
        let nan = GDSIO_READ.replace("Throughput: 3.410000", "Throughput: -nan");
        assert!(read(&nan).starts_with("'Throughput: -nan' is not a number"));
        let half = GDSIO_READ.replace("ops: 4096", "ops: 40.5");
        assert!(read(&half).starts_with("'ops: 40.5' is not a whole number"));
        let bytes = GDSIO_READ.replace("4194304/4194304(KiB)", "4194304/4194304(MiB)");
        assert!(read(&bytes).starts_with("'DataSetSize: 4194304/4194304(MiB)' is not N(KiB)"));
        // Two result lines for the run asked for, or one that moved nothing.
        let twice = format!("{GDSIO_READ}{GDSIO_READ}");
        assert!(read(&twice).starts_with("printed 2 result lines for IoType READ XferType GPUD"));
        let nothing = GDSIO_READ
            .replace("4194304/4194304(KiB)", "0/4194304(KiB)")
            .replace("ops: 4096", "ops: 0");
        assert!(read(&nothing).starts_with("moved nothing: 0 bytes in 0 ops"));
    }

    #[test]
    fn gdsio_rounds_combine_runs_by_bytes_and_ops() {
        let run = |gib: u64, gibps: f64, lat: f64, ops: u64| GdsioFigures {
            threads: 1,
            bytes: gib << 30,
            io_size_bytes: 1 << 20,
            throughput_gibps: gibps,
            avg_latency_us: lat,
            ops,
            total_time_s: gib as f64 / gibps,
        };
        // One run: gdsio's own figures.
        assert_eq!(gdsio_round(&[run(1, 2.0, 500.0, 1024)]), Some((2.0, 500.0)));
        // 1 GiB at 1 GiB/s and 3 GiB at 3 GiB/s: 4 GiB in 2 s; latency weighted by ops.
        let (bw, lat) =
            gdsio_round(&[run(1, 1.0, 1000.0, 1024), run(3, 3.0, 200.0, 3072)]).unwrap();
        assert!((bw - 2.0).abs() < 1e-12);
        assert!((lat - (1000.0 * 1024.0 + 200.0 * 3072.0) / 4096.0).abs() < 1e-9);
        assert_eq!(gdsio_round(&[]), None);
    }

    #[test]
    fn gdsio_args_run_the_workload_file_gpu_threads_and_sizes() {
        let mut o = opts(2, Target::File("/d/f".into()));
        o.gpu.device = 3;
        let file = gdsio_file(&o).unwrap();
        assert_eq!(file, PathBuf::from("/d/f"));
        let (a, mode) = gdsio_args(&o, &file, GdsioXfer::Gpud);
        assert_eq!(a.join(" "), "-f /d/f -d 3 -w 2 -s 8192K -i 1024K -x 0 -I 0");
        assert!(
            mode.starts_with("gdsio -x 0 (GPUD: cuFile between the file and GPU memory), -I 0 (read), GPU 3, 2 threads sharing one file, synchronous transfers (not gdsio's async or batch modes"),
            "{mode}"
        );
        assert!(mode.contains("1 warm-up + 2 measured run(s)"), "{mode}");
        o.workload.op = Op::Write;
        let (a, mode) = gdsio_args(&o, &file, GdsioXfer::CpuGpu);
        assert!(a.join(" ").ends_with("-x 2 -I 1"), "{a:?}");
        assert!(mode.starts_with("gdsio -x 2 (CPU_GPU: through CPU memory), -I 1 (write)"));
        // --dir with one thread: its one file.
        let d = opts(1, Target::Dir("/d".into()));
        assert_eq!(gdsio_file(&d).unwrap(), PathBuf::from("/d/gdswap.0.dat"));
        assert_eq!(GdsioXfer::by_name("gdsio-cpu-gpu"), Some(GdsioXfer::CpuGpu));
        assert_eq!(GdsioXfer::by_name("gdsio"), None);
    }

    #[test]
    fn workloads_gdsio_cannot_run_alike_are_refused_with_the_reason() {
        let why = |o: RunOptions| gdsio_file(&o).unwrap_err().to_string();
        let base = opts(2, Target::File("/d/f".into()));
        assert!(why(RunOptions {
            random: true,
            ..base.clone()
        })
        .starts_with("random: "));
        assert!(why(RunOptions {
            direct: false,
            ..base.clone()
        })
        .starts_with("buffered: "));
        assert!(why(RunOptions {
            workload: Workload {
                size: (8 << 20) + 512,
                ..base.workload.clone()
            },
            ..base.clone()
        })
        .starts_with("gdsio takes sizes in whole KiB"));
        // 9 MiB over 2 threads of 1 MiB blocks: gdsio's threads would not split it as gdswap's.
        assert!(why(RunOptions {
            workload: Workload {
                size: 9 << 20,
                ..base.workload.clone()
            },
            ..base.clone()
        })
        .starts_with("size 9MiB is not a whole number of blocks per thread"));
        let e = why(opts(2, Target::Dir("/d".into())));
        assert!(e.starts_with("dir with 2 threads: "), "{e}");
    }

    #[test]
    fn gdsio_runs_are_timed_out_by_size_or_the_variable() {
        let o = opts(1, Target::File("/d/f".into()));
        assert_eq!(
            gdsio_timeout_from(None, &o).unwrap(),
            Duration::from_secs(60)
        );
        let big = RunOptions {
            workload: Workload {
                size: 10 << 30,
                ..o.workload.clone()
            },
            ..o.clone()
        };
        assert_eq!(
            gdsio_timeout_from(Some(""), &big).unwrap(),
            Duration::from_secs(60 + 1024)
        );
        assert_eq!(
            gdsio_timeout_from(Some("7"), &o).unwrap(),
            Duration::from_secs(7)
        );
        for bad in ["0", "x", "-3"] {
            let e = gdsio_timeout_from(Some(bad), &o).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{GDSIO_TIMEOUT_ENV}: '{bad}' is not a whole number of seconds above 0")
            );
        }
    }
}

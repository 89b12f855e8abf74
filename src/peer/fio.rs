//! fio: its command line for a workload, its JSON output read, one run.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tool::find_in_path;
use crate::error::{Error, Result};
use crate::io::buffer::HugePages;
use crate::options::{FixedBuffers, Op, RingOpcode, RunOptions};
use crate::plan;
use crate::size::Bytes;
use crate::stats::CDF_QUANTILES;

/// Latency quantiles asked of fio, in percent: the interior of [`CDF_QUANTILES`].
const FIO_PERCENTILES: &str = "1:5:10:20:30:40:50:60:70:80:90:95:99:99.9:99.99";
const HUGE_PAGE: u64 = 2 << 20;

/// Where fio is, or why it cannot be used.
pub fn locate_fio() -> std::result::Result<PathBuf, String> {
    find_in_path("fio").ok_or_else(|| {
        "not installed (not found in PATH); install it (apt-get install fio) to compare with it"
            .to_string()
    })
}

/// One fio job: a file, where the range starts, how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FioRange {
    /// The job's file (`filename=`).
    pub path: PathBuf,
    /// First byte of the range (`offset=`).
    pub offset: u64,
    /// Bytes in the range (`size=`).
    pub len: u64,
}

/// The ranges gdswap's plan gives its threads (with a 4 KiB alignment, which every O_DIRECT
/// filesystem accepts), so fio moves the same bytes.
pub fn fio_ranges(opts: &RunOptions) -> Result<Vec<FioRange>> {
    let align = if opts.direct { 4096 } else { 1 };
    Ok(plan::plan(opts, align)?
        .into_iter()
        .map(|p| FioRange {
            path: p.path,
            offset: p.file_offset,
            len: p.len,
        })
        .collect())
}

/// 2 MiB pages fio needs for its buffers (block size x queue depth per job, plus fio's
/// alignment slack, measured with fio 3.33), for both the warm-up and the measured group.
pub fn fio_huge_pages_needed(opts: &RunOptions) -> u64 {
    let per_job =
        (opts.workload.block_size * u64::from(opts.workload.queue_depth)).div_ceil(HUGE_PAGE) + 2;
    let groups = if opts.workload.warmup > 0 { 2 } else { 1 };
    per_job * opts.workload.threads as u64 * groups + 4
}

/// Whether fio should get huge-page buffers: asked for (`--huge-pages auto|hugetlb`) and enough
/// 2 MiB pages reserved. `free_pages` and `page_size` as in /proc/meminfo.
pub fn fio_use_huge_pages(opts: &RunOptions, free_pages: u64, page_size: u64) -> bool {
    matches!(opts.huge_pages, HugePages::Auto | HugePages::Hugetlb)
        && opts.direct
        && page_size == HUGE_PAGE
        && free_pages >= fio_huge_pages_needed(opts)
}

/// What fio's buffers are made of. gdswap's own buffers are hugetlb pages when enough are
/// reserved, else transparent huge pages (`MADV_HUGEPAGE`) where THP is `always` or `madvise`,
/// else 4 KiB pages; fio gets the same kind, so a comparison measures the I/O path and not
/// the page type (O_DIRECT into 4 KiB pages can be several times slower on a VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FioMemory {
    /// `--iomem=shmhuge`: 2 MiB hugetlb pages.
    Hugetlb,
    /// fio's malloc'd buffers with glibc's `glibc.malloc.hugetlb=1` tunable (glibc 2.35+), which
    /// aligns malloc's mappings to the THP size and asks for THP with `MADV_HUGEPAGE`, as
    /// gdswap's `thp` buffers do.
    Thp,
    /// fio's default: malloc'd memory as the system gives it.
    Default,
}

/// The glibc tunable that makes malloc ask for transparent huge pages.
const GLIBC_THP_TUNABLE: &str = "glibc.malloc.hugetlb=1";

impl FioMemory {
    /// The kind matching what gdswap's buffers get under `opts`: hugetlb when fio's pages are
    /// reserved (`free_pages`, `page_size` as in /proc/meminfo), THP when asked for and the
    /// kernel offers it (`thp_enabled`: /sys/kernel/mm/transparent_hugepage/enabled is
    /// `always` or `madvise`), else the default.
    pub fn matching(
        opts: &RunOptions,
        free_pages: u64,
        page_size: u64,
        thp_enabled: bool,
    ) -> FioMemory {
        if fio_use_huge_pages(opts, free_pages, page_size) {
            FioMemory::Hugetlb
        } else if matches!(opts.huge_pages, HugePages::Auto | HugePages::Thp) && thp_enabled {
            FioMemory::Thp
        } else {
            FioMemory::Default
        }
    }

    /// Environment fio runs with: `GLIBC_TUNABLES` for THP (after any tunables already set).
    pub fn env(self, inherited_tunables: Option<&str>) -> Vec<(String, String)> {
        match self {
            FioMemory::Thp => {
                let value = match inherited_tunables.filter(|t| !t.is_empty()) {
                    Some(t) => format!("{t}:{GLIBC_THP_TUNABLE}"),
                    None => GLIBC_THP_TUNABLE.to_string(),
                };
                vec![("GLIBC_TUNABLES".to_string(), value)]
            }
            FioMemory::Hugetlb | FioMemory::Default => Vec::new(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            FioMemory::Hugetlb => "shmhuge (2MiB hugetlb pages)",
            FioMemory::Thp => {
                "malloc with THP (glibc.malloc.hugetlb=1: MADV_HUGEPAGE, as gdswap's thp buffers)"
            }
            FioMemory::Default => "malloc (fio's default; 4KiB pages unless THP is always)",
        }
    }
}

/// `opts` with `--fixed-buffers auto` settled for fio as gdswap's host engine settles it for
/// itself: on (fio's `--fixedbufs --registerfiles`) for O_DIRECT READ/WRITE opcodes when the
/// process may lock fio's buffers (`iodepth x bs` per job, `jobs` jobs in one process:
/// CAP_IPC_LOCK, or an RLIMIT_MEMLOCK that holds them, in whole 2 MiB pages), otherwise off;
/// so the peer row registers as `host-ring` (fio's footprint) does. (The `host` row registers
/// each thread's whole range: under a limit between the two footprints it runs unregistered
/// while fio registers, and its mode line says so.)
pub fn settle_fixed_buffers(opts: &RunOptions, jobs: usize) -> RunOptions {
    let mut o = opts.clone();
    if o.fixed_buffers == FixedBuffers::Auto {
        let eligible = o.direct && o.ring.opcode == RingOpcode::Read;
        let bytes = o
            .workload
            .block_size
            .saturating_mul(u64::from(o.workload.queue_depth))
            .saturating_mul(jobs as u64)
            // Huge pages are charged whole.
            .div_ceil(2 << 20)
            .saturating_mul(2 << 20);
        let lockable = crate::io::sys::can_lock(bytes);
        o.fixed_buffers = match eligible && lockable {
            true => FixedBuffers::On,
            false => FixedBuffers::Off,
        };
    }
    o
}

/// fio's command line (without the program) for `opts` over `ranges`, and a one-line mode
/// (`--fixed-buffers` on only: settle `auto` first with [`settle_fixed_buffers`]).
pub fn fio_args(
    opts: &RunOptions,
    ranges: &[FioRange],
    memory: FioMemory,
) -> (Vec<String>, String) {
    let rw = match (opts.workload.op, opts.random) {
        (Op::Read, false) => "read",
        (Op::Read, true) => "randread",
        (Op::Write, false) => "write",
        (Op::Write, true) => "randwrite",
    };
    let mut a: Vec<String> = vec![
        "--output-format=json".into(),
        "--ioengine=io_uring".into(),
        format!("--direct={}", u8::from(opts.direct)),
        format!("--bs={}", opts.workload.block_size),
        format!("--iodepth={}", opts.workload.queue_depth),
        format!("--rw={rw}"),
        "--group_reporting".into(),
        "--lat_percentiles=1".into(),
        format!("--percentile_list={FIO_PERCENTILES}"),
    ];
    if opts.random {
        a.push(format!("--randseed={}", opts.seed));
    }
    if !opts.direct {
        // gdswap --buffered reads through the page cache as it is (it drops it only with
        // --drop-caches); fio would otherwise drop the file's cached pages first.
        a.push("--invalidate=0".into());
    }
    if opts.fixed_buffers == FixedBuffers::On {
        a.push("--fixedbufs=1".into());
        a.push("--registerfiles=1".into());
    }
    if memory == FioMemory::Hugetlb {
        a.push("--iomem=shmhuge".into());
        a.push("--hugepage-size=2M".into());
    }
    let shared = ranges.len() > 1
        && ranges
            .iter()
            .all(|r| r.path == ranges[0].path && r.len == ranges[0].len)
        && ranges
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == ranges[0].offset + i as u64 * ranges[0].len);
    let jobs_desc = if shared || ranges.len() == 1 {
        let r = &ranges[0];
        a.push(format!("--filename={}", r.path.display()));
        a.push(format!("--size={}", r.len));
        if r.offset > 0 {
            a.push(format!("--offset={}", r.offset));
        }
        if shared {
            a.push(format!("--numjobs={}", ranges.len()));
            a.push(format!("--offset_increment={}", r.len));
        }
        for (name, loops) in [
            ("warmup", opts.workload.warmup),
            ("measured", opts.workload.loops),
        ] {
            if loops == 0 {
                continue;
            }
            a.push(format!("--name={name}"));
            if name == "measured" && opts.workload.warmup > 0 {
                a.push("--stonewall".into());
            }
            a.extend(repeat_args(opts, name, loops));
        }
        if shared {
            format!(
                "numjobs {} with offset_increment {}",
                ranges.len(),
                Bytes(r.len)
            )
        } else {
            "1 job".to_string()
        }
    } else {
        for (name, loops) in [
            ("warmup", opts.workload.warmup),
            ("measured", opts.workload.loops),
        ] {
            if loops == 0 {
                continue;
            }
            for (i, r) in ranges.iter().enumerate() {
                a.push(format!("--name={name}"));
                if i == 0 && name == "measured" && opts.workload.warmup > 0 {
                    a.push("--stonewall".into());
                }
                a.push(format!("--filename={}", r.path.display()));
                a.push(format!("--offset={}", r.offset));
                a.push(format!("--size={}", r.len));
                a.extend(repeat_args(opts, name, loops));
            }
        }
        format!("{} jobs, one per thread range", ranges.len())
    };
    let jobs_desc = match opts.duration {
        Some(d) => format!("{jobs_desc}, measured time_based for {}", duration_arg(d)),
        None => jobs_desc,
    };
    let mode = format!(
        "io_uring, {}, bs {}, iodepth {}, {jobs_desc}, buffers {}{}",
        if opts.direct { "O_DIRECT" } else { "buffered" },
        Bytes(opts.workload.block_size),
        opts.workload.queue_depth,
        memory.describe(),
        if opts.fixed_buffers == FixedBuffers::On {
            ", fixedbufs + registerfiles"
        } else {
            ""
        },
    );
    (a, mode)
}

/// How often a group goes over its range: the measured group of a time-based run (`--duration`)
/// repeats it for that long (fio's `time_based` + `runtime`, as gdswap's measured loops do);
/// otherwise `loops` times.
fn repeat_args(opts: &RunOptions, group: &str, loops: u32) -> Vec<String> {
    match opts.duration {
        Some(d) if group == "measured" => {
            vec![
                "--time_based".into(),
                format!("--runtime={}", duration_arg(d)),
            ]
        }
        _ => vec![format!("--loops={loops}")],
    }
}

/// A duration as fio reads it: whole milliseconds (`1500ms`), at least 1.
fn duration_arg(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// What one fio run measured (its measured group).
#[derive(Debug, Clone, PartialEq)]
pub struct FioFigures {
    /// `fio version` from its JSON, e.g. `fio-3.33`.
    pub version: String,
    /// Bytes the measured group moved (`io_bytes`).
    pub io_bytes: u64,
    /// The group's bandwidth (`bw_bytes`), GiB/s.
    pub bandwidth_gibps: f64,
    /// Mean of `lat_ns` (absent from fio's output: `None`).
    pub latency_avg_us: Option<f64>,
    /// Median latency (`lat_ns`, else `clat_ns`), µs; 0 when fio gave none.
    pub latency_p50_us: f64,
    /// 99th percentile latency, as the median; µs.
    pub latency_p99_us: f64,
    /// CPU seconds (user + system, from fio's percentages of the run time) per GiB moved.
    pub cpu_s_per_gib: f64,
    /// The measured group's run time (`job_runtime`), seconds.
    pub runtime_s: f64,
    /// `[quantile, us]`: min, fio's percentiles, max (made non-decreasing: fio's lowest
    /// percentile, read off its histogram buckets, can sit just below the exact minimum).
    pub latency_cdf_us: Vec<[f64; 2]>,
}

/// Reads fio's JSON output (notes before the document are skipped) for direction `op`.
pub fn parse_fio(text: &str, op: Op) -> std::result::Result<FioFigures, String> {
    let start = text
        .find('{')
        .ok_or("printed no JSON document (see its output with --output-format=json)")?;
    let doc: serde_json::Value =
        serde_json::from_str(&text[start..]).map_err(|e| format!("unreadable JSON: {e}"))?;
    let jobs = doc["jobs"]
        .as_array()
        .filter(|j| !j.is_empty())
        .ok_or("reported no jobs")?;
    let job = jobs
        .iter()
        .find(|j| j["jobname"] == "measured")
        .unwrap_or(&jobs[jobs.len() - 1]);
    if let Some(e) = job["error"].as_i64().filter(|&e| e != 0) {
        return Err(format!(
            "job '{}' failed with error {e}",
            job["jobname"].as_str().unwrap_or("?")
        ));
    }
    let side = &job[op.to_string().as_str()];
    let num = |v: &serde_json::Value, what: &str| -> std::result::Result<f64, String> {
        v.as_f64().ok_or_else(|| format!("no {what} in its output"))
    };
    let io_bytes = num(&side["io_bytes"], "io_bytes")? as u64;
    let bw = num(&side["bw_bytes"], "bw_bytes")?;
    let runtime_s = num(&job["job_runtime"], "job_runtime")? / 1000.0;
    let cpu_s =
        (num(&job["usr_cpu"], "usr_cpu")? + num(&job["sys_cpu"], "sys_cpu")?) / 100.0 * runtime_s;
    let gib = io_bytes as f64 / (1u64 << 30) as f64;
    let pct = |q: &str| -> f64 {
        let lat = &side["lat_ns"]["percentile"][q];
        let v = if lat.is_null() {
            &side["clat_ns"]["percentile"][q]
        } else {
            lat
        };
        v.as_f64().unwrap_or(0.0) / 1000.0
    };
    if io_bytes == 0 {
        return Err(format!("moved no bytes in its '{op}' figures"));
    }
    let lat = if side["lat_ns"]["min"].is_null() {
        &side["clat_ns"]
    } else {
        &side["lat_ns"]
    };
    let mut cdf = Vec::new();
    if let (Some(min), Some(max)) = (lat["min"].as_f64(), lat["max"].as_f64()) {
        cdf.push([0.0, min / 1000.0]);
        for &q in &CDF_QUANTILES[1..CDF_QUANTILES.len() - 1] {
            if let Some(v) = pct_value(lat, q) {
                cdf.push([q, v / 1000.0]);
            }
        }
        cdf.push([1.0, max / 1000.0]);
        for i in (0..cdf.len() - 1).rev() {
            cdf[i][1] = cdf[i][1].min(cdf[i + 1][1]);
        }
    }
    Ok(FioFigures {
        version: doc["fio version"].as_str().unwrap_or("fio").to_string(),
        io_bytes,
        bandwidth_gibps: bw / (1u64 << 30) as f64,
        latency_avg_us: lat["mean"].as_f64().map(|v| v / 1000.0),
        latency_p50_us: pct("50.000000"),
        latency_p99_us: pct("99.000000"),
        cpu_s_per_gib: if gib > 0.0 { cpu_s / gib } else { 0.0 },
        runtime_s,
        latency_cdf_us: cdf,
    })
}

/// fio's percentile `q` (0..1) of a latency block, keyed as fio writes it (`"99.900000"`).
fn pct_value(lat: &serde_json::Value, q: f64) -> Option<f64> {
    lat["percentile"][format!("{:.6}", q * 100.0).as_str()].as_f64()
}

/// Runs fio `exe` with `args` and reads its figures. A failure names fio and its first error
/// line.
pub fn run_fio(
    exe: &Path,
    args: &[String],
    env: &[(String, String)],
    op: Op,
) -> Result<FioFigures> {
    let peer = |message: String| Error::Peer {
        tool: "fio".into(),
        message: message.into(),
    };
    let out = Command::new(exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| peer(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .chain(stdout.lines())
            .find(|l| l.contains("error") || l.contains("fio:"))
            .or_else(|| stderr.lines().last())
            .unwrap_or("no message")
            .trim()
            .to_string();
        return Err(peer(format!("exited with {}: {why}", out.status)));
    }
    parse_fio(&stdout, op).map_err(peer)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::opts;
    use super::*;
    use crate::options::{Target, Workload};

    const SAMPLE: &str = include_str!("../../tests/data/fio-3.33-read-2jobs.json");

    #[test]
    fn parses_the_measured_group_of_a_real_fio_run() {
        let f = parse_fio(SAMPLE, Op::Read).unwrap();
        assert_eq!(f.version, "fio-3.33");
        assert_eq!(f.io_bytes, 16 << 20);
        assert!((f.bandwidth_gibps - 1_198_372_571.0 / (1u64 << 30) as f64).abs() < 1e-9);
        // lat_ns (submission to completion), not clat_ns.
        assert_eq!(f.latency_avg_us, Some(5_132.981625));
        assert!((f.latency_p50_us - 4_685.824).abs() < 1e-9);
        assert!((f.latency_p99_us - 7_241.728).abs() < 1e-9);
        let cpu_s = (4.166667 + 8.333333) / 100.0 * 0.024;
        assert!((f.cpu_s_per_gib - cpu_s / (16.0 / 1024.0)).abs() < 1e-9);
        // The CDF: min, the 15 percentiles asked for, max; non-decreasing (fio's 1st
        // percentile, 2637.824 us, is below its exact minimum, 2648.675 us).
        let q: Vec<f64> = f.latency_cdf_us.iter().map(|p| p[0]).collect();
        assert_eq!(q, CDF_QUANTILES);
        assert_eq!(f.latency_cdf_us[0], [0.0, 2637.824]);
        assert_eq!(f.latency_cdf_us[16], [1.0, 7219.058]);
        assert!(f.latency_cdf_us.windows(2).all(|w| w[0][1] <= w[1][1]));
        let asked: Vec<String> = CDF_QUANTILES[1..16]
            .iter()
            .map(|q| format!("{}", (q * 1e4).round() / 100.0))
            .collect();
        assert_eq!(asked.join(":"), FIO_PERCENTILES);
        // A note before the document is skipped; the write side of a read run moved nothing.
        assert!(parse_fio(&format!("note: x\n{SAMPLE}"), Op::Read).is_ok());
        assert!(parse_fio(SAMPLE, Op::Write)
            .unwrap_err()
            .contains("moved no bytes"));
        assert!(parse_fio("fio: bad", Op::Read)
            .unwrap_err()
            .contains("no JSON"));
        let failed = SAMPLE.replacen("\"error\" : 0", "\"error\" : 5", 2);
        assert!(parse_fio(&failed, Op::Read)
            .unwrap_err()
            .contains("error 5"));
    }

    #[test]
    fn a_time_based_run_makes_the_measured_group_time_based() {
        let o = RunOptions {
            duration: Some(std::time::Duration::from_millis(1500)),
            ..opts(2, Target::File("/d/f".into()))
        };
        let (a, mode) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Default);
        let line = a.join(" ");
        assert!(
            line.ends_with(
                "--name=warmup --loops=1 --name=measured --stonewall --time_based --runtime=1500ms"
            ),
            "{line}"
        );
        assert!(mode.contains("measured time_based for 1500ms"), "{mode}");
        let o = RunOptions {
            workload: Workload {
                target: Target::Dir("/d".into()),
                ..o.workload
            },
            ..o
        };
        let line = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Default)
            .0
            .join(" ");
        assert_eq!(
            line.matches("--time_based --runtime=1500ms").count(),
            2,
            "{line}"
        );
        assert_eq!(line.matches("--loops=1").count(), 2, "{line}");
    }

    #[test]
    fn threads_of_one_file_become_numjobs_with_offset_increment() {
        let o = opts(2, Target::File("/d/f".into()));
        let (a, mode) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Default);
        let line = a.join(" ");
        assert_eq!(
            line,
            "--output-format=json --ioengine=io_uring --direct=1 --bs=1048576 --iodepth=4 --rw=read \
             --group_reporting --lat_percentiles=1 \
             --percentile_list=1:5:10:20:30:40:50:60:70:80:90:95:99:99.9:99.99 --filename=/d/f \
             --size=4194304 --numjobs=2 --offset_increment=4194304 --name=warmup --loops=1 \
             --name=measured --stonewall --loops=2"
        );
        assert!(
            mode.contains("numjobs 2 with offset_increment 4MiB"),
            "{mode}"
        );
        assert!(mode.contains("malloc"), "{mode}");
        let buffered = RunOptions { direct: false, ..o };
        let (a, mode) = fio_args(
            &buffered,
            &fio_ranges(&buffered).unwrap(),
            FioMemory::Default,
        );
        assert!(a.contains(&"--direct=0".to_string()) && a.contains(&"--invalidate=0".to_string()));
        assert!(mode.starts_with("io_uring, buffered,"), "{mode}");
    }

    #[test]
    fn auto_fixed_buffers_settle_as_gdswap_registers() {
        let o = opts(2, Target::File("/d/f".into()));
        assert_eq!(o.fixed_buffers, FixedBuffers::Auto);
        let bytes = o.workload.block_size * u64::from(o.workload.queue_depth) * 2;
        let lockable =
            crate::io::sys::has_cap_ipc_lock() || crate::io::sys::memlock_limit() >= bytes;
        let settled = settle_fixed_buffers(&o, 2);
        assert_eq!(settled.fixed_buffers == FixedBuffers::On, lockable);
        let (a, mode) = fio_args(&settled, &fio_ranges(&o).unwrap(), FioMemory::Default);
        assert_eq!(a.contains(&"--fixedbufs=1".to_string()), lockable);
        assert_eq!(mode.contains("fixedbufs + registerfiles"), lockable);
        // What takes no registered buffers settles off; an explicit choice stands.
        let buffered = RunOptions {
            direct: false,
            ..o.clone()
        };
        assert_eq!(
            settle_fixed_buffers(&buffered, 2).fixed_buffers,
            FixedBuffers::Off
        );
        let mut readv = o.clone();
        readv.ring.opcode = RingOpcode::Readv;
        assert_eq!(
            settle_fixed_buffers(&readv, 2).fixed_buffers,
            FixedBuffers::Off
        );
        for explicit in [FixedBuffers::On, FixedBuffers::Off] {
            let o = RunOptions {
                fixed_buffers: explicit,
                ..o.clone()
            };
            assert_eq!(settle_fixed_buffers(&o, 2).fixed_buffers, explicit);
        }
        // Unsettled, fio_args registers only on request.
        let (a, _) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Default);
        assert!(!a.contains(&"--fixedbufs=1".to_string()));
    }

    #[test]
    fn per_thread_files_and_uneven_ranges_get_a_job_each() {
        let mut o = opts(2, Target::Dir("/d".into()));
        o.workload.op = Op::Write;
        o.random = true;
        o.workload.warmup = 0;
        let (a, mode) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Hugetlb);
        let line = a.join(" ");
        assert!(line.contains("--rw=randwrite --group_reporting"), "{line}");
        assert!(
            line.contains("--randseed=24301 --iomem=shmhuge --hugepage-size=2M"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "--name=measured --filename=/d/gdswap.0.dat --offset=0 --size=4194304 --loops=2 \
             --name=measured --filename=/d/gdswap.1.dat --offset=0 --size=4194304 --loops=2"
            ),
            "{line}"
        );
        assert!(
            !line.contains("stonewall") && !line.contains("warmup"),
            "{line}"
        );
        assert!(mode.contains("2 jobs, one per thread range") && mode.contains("shmhuge"));
        // 9 MiB over 2 threads of one file: 5 MiB and 4 MiB, so no numjobs.
        let mut o = opts(2, Target::File("/d/f".into()));
        o.workload.size = 9 << 20;
        let (a, _) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Default);
        let line = a.join(" ");
        assert!(!line.contains("numjobs"), "{line}");
        assert!(line.contains("--name=measured --stonewall --filename=/d/f --offset=0 --size=5242880 --loops=2 --name=measured --filename=/d/f --offset=5242880 --size=4194304 --loops=2"), "{line}");
    }

    /// fio's buffers match gdswap's page kind: hugetlb when fio's pages are reserved, else THP
    /// (through glibc's malloc tunable) when gdswap would get THP, else fio's default.
    #[test]
    fn fio_memory_matches_gdswaps_pages() {
        let o = opts(1, Target::Dir("/d".into()));
        let need = fio_huge_pages_needed(&o);
        let m = |o: &RunOptions, free, thp| FioMemory::matching(o, free, 2 << 20, thp);
        assert_eq!(m(&o, need, true), FioMemory::Hugetlb);
        assert_eq!(m(&o, need - 1, true), FioMemory::Thp);
        assert_eq!(m(&o, 0, false), FioMemory::Default);
        for (pages, want) in [
            (HugePages::Thp, FioMemory::Thp),
            (HugePages::Off, FioMemory::Default),
            (HugePages::Hugetlb, FioMemory::Default),
        ] {
            let o = RunOptions {
                huge_pages: pages,
                ..o.clone()
            };
            assert_eq!(m(&o, 0, true), want, "{pages:?}");
        }
        assert_eq!(
            FioMemory::Thp.env(None),
            [(
                "GLIBC_TUNABLES".to_string(),
                "glibc.malloc.hugetlb=1".to_string()
            )]
        );
        assert_eq!(
            FioMemory::Thp.env(Some("glibc.malloc.arena_max=2"))[0].1,
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
        );
        assert!(FioMemory::Hugetlb.env(None).is_empty() && FioMemory::Default.env(None).is_empty());
        let (a, mode) = fio_args(&o, &fio_ranges(&o).unwrap(), FioMemory::Thp);
        assert!(!a.join(" ").contains("iomem"));
        assert!(mode.contains("malloc with THP"), "{mode}");
    }

    #[test]
    fn huge_pages_only_when_enough_are_reserved_and_wanted() {
        let o = opts(1, Target::Dir("/d".into()));
        let need = fio_huge_pages_needed(&o);
        assert_eq!(need, (2 + 2) * 2 + 4);
        assert!(fio_use_huge_pages(&o, need, 2 << 20));
        assert!(!fio_use_huge_pages(&o, need - 1, 2 << 20));
        assert!(!fio_use_huge_pages(&o, need, 1 << 30));
        let off = RunOptions {
            huge_pages: HugePages::Off,
            ..o
        };
        assert!(!fio_use_huge_pages(&off, need, 2 << 20));
    }
}

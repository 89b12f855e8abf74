//! Things a reader of a result should know, each with a hint that says what to do about it.

use serde::{Deserialize, Serialize};

use crate::error::{msg, Message, Setting};
use crate::io::buffer::PageBacking;
use crate::options::{GdsApi, Op};
use crate::size::Bytes;

use super::RunReport;

/// A run finishing in less time than this is dominated by start-up and timer noise.
const SHORT_RUN_S: f64 = 0.2;
/// Loops differing by more than this fraction of the median make a single figure shaky.
const SPREAD_LIMIT: f64 = 0.10;

/// Something about a run that may make its figures misleading, with what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// `--buffered`: the figures measure the page cache, not the device.
    BufferedIo,
    /// The I/O buffers did not get huge pages.
    SmallPages {
        /// The page backing obtained, as reports print it.
        backing: String,
    },
    /// The measured loops took too little time to trust.
    ShortRun {
        /// The measured loops' task time in all, s.
        seconds: f64,
    },
    /// The loops disagree with each other.
    LoopSpread {
        /// (fastest - slowest loop GiB/s) / median, in percent.
        spread_pct: f64,
    },
    /// A non-aligned size: the last bytes went through the page cache.
    UnalignedTail {
        /// Bytes of the unaligned tail.
        bytes: u64,
    },
    /// Writes without `--verify`: nothing checked that the data arrived intact.
    WritesUnverified,
    /// bounce pipelined with fewer pinned chunks than the queue depth: the chunks, not the
    /// queue depth, limit the requests in flight.
    FewBounceBuffers {
        /// `--bounce-buffers`: pinned chunks per thread.
        chunks: usize,
        /// `--queue-depth`.
        queue_depth: u32,
    },
    /// A gds run whose cuFile statistics (the library has them) gave no per-I/O evidence of
    /// the path: the verdict rests on the probe and driver properties alone.
    GdsNoStatistics {
        /// Why: the step that failed and cuFile's error (and a stale segment, when named).
        why: String,
    },
    /// A gds run whose bytes went through cuFile's compat mode, not GPUDirect.
    GdsCompat {
        /// The evidence that the bytes went through compat mode.
        reason: String,
    },
    /// A gds run with a block size that is not a multiple of 4 KiB: cuFile takes its
    /// unaligned path (staging through its own bounce buffers, read-modify-write on writes).
    GdsUnalignedBlock {
        /// The block size, bytes.
        block: u64,
    },
    /// A gds run's stream or batch API held to one operation in flight in the whole process
    /// because cuFile ran in compat mode: its figures are queue depth 1, not the one asked.
    GdsCompatOneInFlight {
        /// The API held (`stream` or `batch`).
        api: GdsApi,
        /// The queue depth per thread asked for.
        asked: u32,
        /// Why compat mode was known when the run started.
        reason: String,
    },
    /// Something about the cuFile setup the reader must know (e.g. buffers left unregistered).
    GdsNote {
        /// The note, one sentence.
        note: String,
    },
    /// The data is on a filesystem that is not a local block device (tmpfs, overlay, a
    /// network or FUSE filesystem; from statfs): the figures do not measure a disk.
    NotBlockDevice {
        /// The filesystem's kind by its statfs type, e.g. `tmpfs`.
        fs: String,
    },
    /// A run of several processes with ranks well below the median rank's bandwidth.
    Stragglers {
        /// The slow ranks, e.g. `rank 1 on node1 (23% below)`, comma-separated.
        ranks: String,
    },
}

/// A warning as it is stored in reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningRecord {
    /// Stable identifier, e.g. `short-run`.
    pub code: String,
    /// What happened (settings named when it is displayed or serialised; see [`Message`]).
    pub message: Message,
    /// What to do about it.
    pub hint: Message,
}

impl Warning {
    /// The warning's stable identifier in reports, e.g. `short-run`.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::BufferedIo => "buffered-io",
            Warning::SmallPages { .. } => "small-pages",
            Warning::ShortRun { .. } => "short-run",
            Warning::LoopSpread { .. } => "loop-spread",
            Warning::UnalignedTail { .. } => "unaligned-tail",
            Warning::WritesUnverified => "writes-unverified",
            Warning::FewBounceBuffers { .. } => "few-bounce-buffers",
            Warning::GdsCompat { .. } => "gds-compat",
            Warning::GdsNoStatistics { .. } => "gds-no-statistics",
            Warning::GdsUnalignedBlock { .. } => "gds-unaligned-block",
            Warning::GdsCompatOneInFlight { .. } => "gds-compat-one-in-flight",
            Warning::GdsNote { .. } => "gds-note",
            Warning::NotBlockDevice { .. } => "not-block-device",
            Warning::Stragglers { .. } => "stragglers",
        }
    }

    /// What happened, naming settings as [`Message`]s do (words in the library, flags under
    /// the CLI).
    pub fn message(&self) -> Message {
        match self {
            Warning::BufferedIo => msg![Setting::Buffered, ": these figures measure the page cache, not the device"],
            Warning::SmallPages { backing } => {
                format!("I/O buffers got {backing}, not huge pages: O_DIRECT is slower and costs more CPU with 4 KiB pages").into()
            }
            Warning::ShortRun { seconds } => format!("the measured loops took only {seconds:.3} s in all").into(),
            Warning::LoopSpread { spread_pct } => {
                format!("loop bandwidths spread over {spread_pct:.0}% of their median").into()
            }
            Warning::UnalignedTail { bytes } => msg![
                Setting::Size,
                format!(" is not a multiple of the O_DIRECT alignment: the last {} went through the page cache", Bytes(*bytes))
            ],
            Warning::WritesUnverified => "writes were not read back and checked".into(),
            Warning::FewBounceBuffers { chunks, queue_depth } => msg![
                Setting::BounceBuffers,
                format!(" {chunks} is below "),
                Setting::QueueDepth,
                format!(" {queue_depth}: at most {chunks} requests are in flight, fewer while chunks are being copied")
            ],
            Warning::GdsNoStatistics { why } => format!(
                "cuFile's statistics gave no per-I/O evidence of the path ({why}): the path shown rests on the probe and driver properties alone"
            ).into(),
            Warning::GdsCompat { reason } => format!(
                "GDS COMPAT MODE: these bytes did NOT take GPUDirect Storage; cuFile moved them with POSIX I/O through host memory ({reason})"
            ).into(),
            Warning::GdsUnalignedBlock { block } => msg![
                Setting::BlockSize,
                format!(" {} is not a multiple of 4 KiB: cuFile takes its unaligned path for these requests (through its own bounce buffers), not the direct one", Bytes(*block))
            ],
            Warning::GdsCompatOneInFlight { api, asked, reason } => msg![
                Setting::GdsApi,
                format!(" {api} ran one operation at a time in the whole process, not "),
                Setting::QueueDepth,
                format!(
                    " {asked} per thread: cuFile is in compat mode here ({reason}), where libcufile 1.15.1 on an H200 misplaced data with concurrent stream operations and made no progress with more than one batch entry pending (bench-results/2026-12-04-gpu-checks-h200-session8); these figures are for one request in flight"
                )
            ],
            Warning::GdsNote { note } => note.into(),
            Warning::NotBlockDevice { fs } => format!(
                "the data is on {fs}, not a local block device: these figures measure {fs}, not a disk"
            ).into(),
            Warning::Stragglers { ranks } => format!(
                "stragglers, more than {:.0}% below the median rank's bandwidth: {ranks}",
                super::STRAGGLER_PCT
            ).into(),
        }
    }

    /// What to do about it, naming settings as [`Warning::message`] does.
    pub fn hint(&self) -> Message {
        match self {
            Warning::BufferedIo => msg!["drop ", Setting::Buffered, " to measure the device with O_DIRECT"],
            Warning::SmallPages { .. } => {
                "enable THP (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled) or reserve hugetlb pages (sysctl vm.nr_hugepages=N)".into()
            }
            Warning::ShortRun { .. } => msg!["raise ", Setting::Size, " or ", Setting::Loops, " so the measured part lasts at least a second"],
            Warning::LoopSpread { .. } => msg!["raise ", Setting::Loops, ", use ", Setting::DropCaches, ", or quiet the machine"],
            Warning::UnalignedTail { .. } => msg!["use a ", Setting::Size, " that is a multiple of the alignment to keep every byte on O_DIRECT"],
            Warning::WritesUnverified => msg!["add ", Setting::Verify, " to read back and check every byte written"],
            Warning::FewBounceBuffers { .. } => {
                msg!["leave ", Setting::BounceBuffers, " at its default (twice the queue depth) unless measuring its effect"]
            }
            Warning::GdsCompat { .. } => msg![
                "run gdswap check ", Setting::Path, " FILE ", Setting::Backend,
                " gds to see why (nvidia-fs loaded? filesystem and mount options supported?); ",
                Setting::RequireGpudirect, " makes this an error"
            ],
            Warning::GdsNoStatistics { .. } => msg![
                "gdswap check ", Setting::Path,
                " DIR lists cuFile statistics segments left behind by processes that ended with cuFile open (the reason names one in this process's way, with the ipcrm that removes it); cufile.log says what else failed"
            ],
            Warning::GdsUnalignedBlock { .. } => msg!["use a ", Setting::BlockSize, " that is a multiple of 4 KiB"],
            Warning::GdsCompatOneInFlight { .. } => msg![
                "in compat mode use ", Setting::GdsApi, " sync with more ", Setting::Threads,
                " for requests in parallel (byte-exact there from several threads); queued stream or batch I/O needs GPUDirect (gdswap check ",
                Setting::Path, " FILE ", Setting::Backend, " gds says what is missing)"
            ],
            Warning::GdsNote { .. } => msg![
                "fewer ", Setting::Threads, " or a smaller ", Setting::Size,
                " per thread keeps every buffer registered; max_device_pinned_mem_size in cufile.json and the GPU's BAR1 size (nvidia-smi -q) bound what cuFile can pin"
            ],
            Warning::NotBlockDevice { .. } => msg![
                "put ", Setting::File, "/", Setting::Dir,
                " on a filesystem on the NVMe device to be measured (gdswap check ", Setting::Path,
                " DIR shows the device under a path)"
            ],
            Warning::Stragglers { .. } => msg![
                "compare the slow ranks' nodes: their disks (gdswap check ", Setting::Path,
                " DIR), GPU and NUMA binding, and what else runs there"
            ],
        }
    }

    /// The warning as reports store it.
    pub fn record(&self) -> WarningRecord {
        WarningRecord {
            code: self.code().into(),
            message: self.message(),
            hint: self.hint(),
        }
    }
}

/// The warnings a finished report deserves.
pub fn assess(r: &RunReport, pages: Option<PageBacking>) -> Vec<Warning> {
    let mut out = Vec::new();
    if !r.params.direct {
        out.push(Warning::BufferedIo);
    }
    if let Some(p) = pages {
        if r.params.direct && !p.is_huge() {
            out.push(Warning::SmallPages {
                backing: p.to_string(),
            });
        }
    }
    if r.summary.task_time_s < SHORT_RUN_S {
        out.push(Warning::ShortRun {
            seconds: r.summary.task_time_s,
        });
    }
    let s = &r.summary;
    if r.loops.len() > 1 && s.loop_gibps_median > 0.0 {
        let spread = (s.loop_gibps_max - s.loop_gibps_min) / s.loop_gibps_median;
        if spread > SPREAD_LIMIT {
            out.push(Warning::LoopSpread {
                spread_pct: spread * 100.0,
            });
        }
    }
    let tail = r.params.workload.size % r.dio_align_bytes.max(1);
    if r.params.direct && tail != 0 {
        out.push(Warning::UnalignedTail { bytes: tail });
    }
    if r.params.workload.op == Op::Write && !r.params.verify {
        out.push(Warning::WritesUnverified);
    }
    if let Some(g) = &r.params.gpu {
        if g.gds.is_none()
            && g.bounce_mode == crate::options::BounceMode::Pipelined
            && g.bounce_buffers < r.params.workload.queue_depth as usize
        {
            out.push(Warning::FewBounceBuffers {
                chunks: g.bounce_buffers,
                queue_depth: r.params.workload.queue_depth,
            });
        }
    }
    if let Some(p) = r.gds_path.as_ref().filter(|p| p.is_compat()) {
        out.push(Warning::GdsCompat {
            reason: p.reason.clone(),
        });
    }
    if r.params.backend == crate::types::BackendId::Gds && r.params.workload.block_size % 4096 != 0
    {
        out.push(Warning::GdsUnalignedBlock {
            block: r.params.workload.block_size,
        });
    }
    if let Some(p) = &r.gds_path {
        // One request at a time on one thread changes nothing a reader would misread.
        if let Some(c) = p
            .queue_clamp
            .as_ref()
            .filter(|c| c.asked > 1 || r.params.workload.threads > 1)
        {
            out.push(Warning::GdsCompatOneInFlight {
                api: c.api,
                asked: c.asked,
                reason: c.reason.clone(),
            });
        }
        out.extend(p.notes.iter().map(|n| Warning::GdsNote { note: n.clone() }));
        if let Some(why) = &p.statistics_failed {
            out.push(Warning::GdsNoStatistics { why: why.clone() });
        }
    }
    let slow: Vec<String> = r
        .ranks
        .iter()
        .filter(|k| k.straggler)
        .map(|k| {
            format!(
                "rank {} on {} ({:.0}% below)",
                k.rank, k.host, k.below_median_pct
            )
        })
        .collect();
    if !slow.is_empty() {
        out.push(Warning::Stragglers {
            ranks: slow.join(", "),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the CLI's flag names (cli/flags.rs is behind the `cli` feature).
    fn flag(s: Setting) -> &'static str {
        match s {
            Setting::BounceBuffers => "--bounce-buffers",
            Setting::QueueDepth => "--queue-depth",
            Setting::BlockSize => "--block-size",
            _ => s.name(),
        }
    }

    #[test]
    fn sample_report_is_clean_and_each_condition_warns() {
        let mut r = crate::report::tests::sample();
        assert!(assess(&r, Some(PageBacking::Hugetlb2M)).is_empty());
        r.params.direct = false;
        r.params.workload.op = Op::Write;
        r.params.verify = false;
        r.params.workload.size += 100;
        r.params.direct = true;
        r.summary.task_time_s = 0.01;
        r.summary.loop_gibps_min = 2.0;
        let codes: Vec<_> = assess(&r, Some(PageBacking::Base4K))
            .iter()
            .map(|w| w.code())
            .collect();
        assert_eq!(
            codes,
            [
                "small-pages",
                "short-run",
                "loop-spread",
                "unaligned-tail",
                "writes-unverified"
            ]
        );
        r.params.gpu = Some(crate::options::GpuOptions {
            bounce_buffers: 4,
            ..Default::default()
        });
        let last = assess(&r, Some(PageBacking::Base4K)).pop().unwrap();
        assert_eq!(last.code(), "few-bounce-buffers");
        assert_eq!(last.message().render(&flag), "--bounce-buffers 4 is below --queue-depth 8: at most 4 requests are in flight, fewer while chunks are being copied");
        r.params.gpu = Some(crate::options::GpuOptions {
            bounce_buffers: 4,
            bounce_mode: crate::options::BounceMode::Serial,
            ..Default::default()
        });
        assert_ne!(
            assess(&r, None).pop().unwrap().code(),
            "few-bounce-buffers",
            "serial mode has no chunks"
        );
        r.params.direct = false;
        assert_eq!(assess(&r, None)[0].code(), "buffered-io");
        for w in assess(&r, Some(PageBacking::Base4K)) {
            assert!(!w.message().is_empty() && !w.hint().is_empty());
        }
    }

    #[test]
    fn gds_blocks_off_4k_and_gds_notes_warn() {
        let mut r = crate::report::tests::sample();
        r.params.backend = crate::types::BackendId::Gds;
        r.params.workload.block_size = 6 * 1024;
        r.params.workload.size = 6 * 1024 * 100;
        r.gds_path = Some(crate::report::GdsVerdict {
            path: crate::report::GdsPath::NvidiaFs,
            reason: "x".into(),
            notes: vec!["a 2MiB device buffer was left unregistered".into()],
            queue_clamp: None,
            statistics_failed: None,
        });
        let w = assess(&r, Some(PageBacking::Hugetlb2M));
        let codes: Vec<_> = w.iter().map(|w| w.code()).collect();
        assert_eq!(codes, ["gds-unaligned-block", "gds-note"]);
        assert_eq!(w[0].message().render(&flag), "--block-size 6KiB is not a multiple of 4 KiB: cuFile takes its unaligned path for these requests (through its own bounce buffers), not the direct one");
        assert_eq!(
            w[1].message().to_string(),
            "a 2MiB device buffer was left unregistered"
        );
        // 4 KiB multiples, or another backend: no block warning.
        r.params.workload.block_size = 8 * 1024;
        assert_eq!(assess(&r, Some(PageBacking::Hugetlb2M)).len(), 1);
        r.params.workload.block_size = 6 * 1024;
        r.params.backend = crate::types::BackendId::Bounce;
        assert_eq!(assess(&r, Some(PageBacking::Hugetlb2M)).len(), 1);
    }

    #[test]
    fn a_queue_held_to_one_in_flight_warns_unless_nothing_changed() {
        let mut r = crate::report::tests::sample();
        r.params.backend = crate::types::BackendId::Gds;
        let mut v = crate::report::GdsVerdict::new(crate::report::GdsPath::Compat, "props");
        v.queue_clamp = Some(crate::types::QueueClamp {
            api: GdsApi::Batch,
            asked: 8,
            reason: "driver properties: nvidia-fs not loaded and no PCI P2PDMA".into(),
        });
        r.gds_path = Some(v);
        r.params.workload.threads = 1;
        let w = assess(&r, Some(PageBacking::Hugetlb2M));
        let codes: Vec<_> = w.iter().map(|w| w.code()).collect();
        assert_eq!(codes, ["gds-compat", "gds-compat-one-in-flight"]);
        let text = w[1].message().render(&|s| match s {
            Setting::GdsApi => "--gds-api",
            s => flag(s),
        });
        assert!(
            text.starts_with("--gds-api batch ran one operation at a time in the whole process, not --queue-depth 8 per thread: cuFile is in compat mode here (driver properties: nvidia-fs not loaded and no PCI P2PDMA)"),
            "{text}"
        );
        assert!(text.contains("bench-results/2026-12-04-gpu-checks-h200-session8"));
        assert!(!w[1].hint().is_empty());
        // Queue depth 1 on one thread: the run was what was asked, no warning.
        r.gds_path
            .as_mut()
            .unwrap()
            .queue_clamp
            .as_mut()
            .unwrap()
            .asked = 1;
        let codes: Vec<_> = assess(&r, Some(PageBacking::Hugetlb2M))
            .iter()
            .map(|w| w.code())
            .collect();
        assert_eq!(codes, ["gds-compat"]);
        // Queue depth 1 on two threads: they were held to one in flight together.
        r.params.workload.threads = 2;
        assert_eq!(
            assess(&r, Some(PageBacking::Hugetlb2M))
                .last()
                .unwrap()
                .code(),
            "gds-compat-one-in-flight"
        );
    }
}

//! The parameters a run record was made with ([`Params`]): its backend, its workload and
//! every option that shapes the figures, as run.

use serde::{Deserialize, Serialize};

use crate::options::{BufferMode, HugePages, RunOptions};

use super::Workload;

/// The parameters, as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The backend.
    pub backend: crate::types::BackendId,
    /// Operation, target, sizes, queue depth, threads, loops.
    #[serde(flatten)]
    pub workload: Workload,
    /// `--random`: shuffled request order.
    pub random: bool,
    /// `--seed`: of the data pattern and the shuffle.
    pub seed: u64,
    /// `--verify`: the data was checked against the pattern.
    pub verify: bool,
    /// O_DIRECT (false: `--buffered`, through the page cache).
    pub direct: bool,
    /// `--drop-caches`: the page cache was dropped before each measured loop.
    pub drop_caches: bool,
    /// `--fixed-buffers`: `auto`, `on` or `off` (reports from before `auto` hold a boolean:
    /// on/off). Whether the buffers were registered in the end is in the backend's mode line
    /// ("fixed buffers+files" or "unregistered buffers").
    #[serde(default)]
    pub fixed_buffers: crate::options::FixedBuffers,
    /// `--huge-pages`: the page backing asked for (what was obtained is `buffer_pages`).
    pub huge_pages: HugePages,
    /// `full` (the thread's whole range in memory) or `ring` (reused buffers); records from
    /// before `ring` existed have none and read as `full`.
    #[serde(default)]
    pub buffer: BufferMode,
    /// How the io_uring engine was asked to drive its ring (host, bounce); absent for the
    /// other backends and in records from before these knobs existed. What the kernel gave
    /// (`auto`'s choice) is in `backend_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<crate::options::RingOptions>,
    /// Device, pinned chunks and mode, for backends that use a GPU; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::options::GpuOptions>,
}

impl Params {
    /// The parameters of `opts`; `device`: the backend's buffers are in GPU memory (the GPU
    /// options are recorded).
    pub fn of(opts: &RunOptions, device: bool) -> Params {
        Params {
            backend: opts.backend,
            workload: opts.workload.clone(),
            random: opts.random,
            seed: opts.seed,
            verify: opts.verify,
            direct: opts.direct,
            drop_caches: opts.drop_caches,
            fixed_buffers: opts.fixed_buffers,
            huge_pages: opts.huge_pages,
            buffer: opts.buffer,
            ring: matches!(
                opts.backend,
                crate::types::BackendId::Host | crate::types::BackendId::Bounce
            )
            .then_some(opts.ring),
            gpu: device.then_some(opts.gpu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::comparison;
    use crate::report::tests::{keys_in_order, sample};

    #[test]
    fn run_and_compare_records_keep_their_json_keys_in_order() {
        let r = sample();
        assert_eq!(
            keys_in_order(&serde_json::to_string(&r.params).unwrap()),
            [
                "backend",
                "op",
                "target_kind",
                "target",
                "size_bytes",
                "block_size_bytes",
                "queue_depth",
                "threads",
                "loops",
                "warmup",
                "random",
                "seed",
                "verify",
                "direct",
                "drop_caches",
                "fixed_buffers",
                "huge_pages",
                "buffer",
            ]
        );
        let c = comparison::tests::sample();
        assert_eq!(
            keys_in_order(&serde_json::to_string(&c.params).unwrap()),
            [
                "op",
                "target_kind",
                "target",
                "size_bytes",
                "block_size_bytes",
                "queue_depth",
                "threads",
                "loops",
                "warmup",
                "rounds",
                "random",
                "direct",
                "huge_pages",
                "fixed_buffers",
            ]
        );
        // The typed fields are written as the strings they were.
        let json = serde_json::to_string(&r.params).unwrap();
        for kv in [
            r#""op":"read""#,
            r#""target_kind":"dir","target":"/data""#,
            r#""size_bytes":1073741824,"block_size_bytes":1048576"#,
            r#""huge_pages":"auto""#,
            r#""buffer":"full""#,
        ] {
            assert!(json.contains(kv), "{kv} in {json}");
        }
        // A record from before `buffer` existed reads as `full`.
        let old = json.replace(r#","buffer":"full""#, "");
        assert!(!old.contains(r#""buffer""#));
        let back: Params = serde_json::from_str(&old).unwrap();
        assert_eq!(back.buffer, BufferMode::Full);
        // And back: a saved record reads as it was written.
        let back: Params =
            serde_json::from_str(&serde_json::to_string(&r.params).unwrap()).unwrap();
        assert_eq!(back, r.params);
        let back: comparison::CompareParams =
            serde_json::from_str(&serde_json::to_string(&c.params).unwrap()).unwrap();
        assert_eq!(back, c.params);
    }
}

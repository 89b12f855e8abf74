//! Tuned settings: what `gdswap sweep` found best per backend, written as a config file that
//! `gdswap run --config F` and `gdswap compare --config F` read back, and as the `"aio"` block
//! of a DeepSpeed config.
//!
//! The config file (`gdswap.config.v1`) is JSON so people can read and edit it:
//! ```json
//! { "schema": "gdswap.config.v1", "metric": "both",
//!   "backends": { "host": { "block_size": 1048576, "queue_depth": 8, "threads": 1,
//!                           "read_gibps": 2.9, "write_gibps": 6.0, "score_gibps": 3.9 } } }
//! ```
//! The settings are `block_size`, `queue_depth` and `threads`, and, when the sweep swept them,
//! `bounce_buffers` (the `bounce` backend's `--bounce-buffers`) and `gds_api` (the `gds`
//! backend's `--gds-api`: `sync`, `stream` or `batch`); an absent knob leaves the run's own value.
//! The figures say why they won.
//!
//! The DeepSpeed mapping (the keys `deepspeed.runtime.swap_tensor` reads from `"aio"`):
//! - `block_size` <- the block size in bytes (DeepSpeed splits each tensor read/write into
//!   requests of this size, as gdswap does);
//! - `queue_depth` <- the queue depth (requests in flight per thread);
//! - `intra_op_parallelism` <- threads (DeepSpeed splits one swap operation across that many
//!   threads, each its own contiguous part, as gdswap splits `--size`);
//! - `single_submit` <- `false`: gdswap's io_uring backend submits a batch of requests per
//!   system call, which is DeepSpeed's `single_submit: false`;
//! - `overlap_events` <- `true`: gdswap refills the queue as each completion arrives instead of
//!   waiting for the whole batch, which is what `overlap_events: true` does;
//! - `use_gds` <- whether the tuned backend is `gds` (cuFile straight to GPU memory).
//!
//! The block is made from the `gds` backend's settings when the config has them, else `host`'s
//! (the io_uring path, DeepSpeed's `async_io` counterpart); `posix` (one request at a time) has
//! no DeepSpeed counterpart.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FileRole, Result, Setting};
use crate::options::{GdsApi, GdsOptions, RunOptions};
use crate::types::BackendId;

/// The `schema` a config file must carry (files with another are refused).
pub const CONFIG_SCHEMA: &str = "gdswap.config.v1";

/// The settings a sweep tunes, with the figures that chose them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// `--block-size`, in bytes.
    pub block_size: u64,
    /// `--queue-depth`: requests in flight per thread.
    pub queue_depth: u32,
    /// `--threads`.
    pub threads: usize,
    /// Read bandwidth the sweep measured with these settings, GiB/s (absent: reads not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_gibps: Option<f64>,
    /// Write bandwidth the sweep measured with these settings, GiB/s (absent: writes not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_gibps: Option<f64>,
    /// The figure the metric ranked by.
    #[serde(default)]
    pub score_gibps: f64,
    /// `--bounce-buffers` (the `bounce` backend only; absent: not swept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_buffers: Option<usize>,
    /// `--gds-api` (the `gds` backend only; absent: not swept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gds_api: Option<GdsApi>,
}

impl Tuning {
    /// Puts these settings into a run's options.
    pub fn apply(&self, opts: &mut RunOptions) {
        opts.workload.block_size = self.block_size;
        opts.workload.queue_depth = self.queue_depth;
        opts.workload.threads = self.threads;
        if let Some(k) = self.bounce_buffers {
            opts.gpu.bounce_buffers = k;
        }
        if let Some(api) = self.gds_api {
            opts.gpu.gds = Some(GdsOptions {
                api,
                ..opts.gpu.gds.unwrap_or_default()
            });
        }
    }

    /// The backend-specific knobs, for a display: `""`, or `, bounce-buffers 8, gds-api batch`.
    pub fn knobs(&self) -> String {
        let mut s = String::new();
        if let Some(k) = self.bounce_buffers {
            s.push_str(&format!(", bounce-buffers {k}"));
        }
        if let Some(api) = self.gds_api {
            s.push_str(&format!(", gds-api {api}"));
        }
        s
    }
}

/// A config file: tuned settings per backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The file format, [`CONFIG_SCHEMA`].
    pub schema: String,
    /// `read`, `write` or `both`: what the settings were chosen for.
    pub metric: String,
    /// The tuned settings, keyed by backend name (`host`, `posix`, `bounce`, `gds`).
    pub backends: BTreeMap<String, Tuning>,
}

impl Config {
    /// The config as pretty JSON with a final newline: the file's contents.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("configs are serializable");
        s.push('\n');
        s
    }

    /// Reads a config file; `setting` names the option that gave the path, for errors.
    pub fn load(path: &Path, setting: Setting) -> Result<Config> {
        let bad = |message: String| Error::BadFile {
            role: FileRole::Setting(setting),
            path: path.to_path_buf(),
            message: message.into(),
        };
        let text =
            crate::io::file::read_regular(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let c: Config = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "not a gdswap config (written by gdswap sweep): {e}"
            ))
        })?;
        if c.schema != CONFIG_SCHEMA {
            return Err(bad(format!(
                "schema is '{}', this gdswap reads '{CONFIG_SCHEMA}'",
                c.schema
            )));
        }
        if c.backends.is_empty() {
            return Err(bad("holds settings for no backend".into()));
        }
        Ok(c)
    }

    /// The settings for `backend`, or an error naming the file and what it does hold.
    pub fn for_backend(&self, backend: &str, path: &Path, setting: Setting) -> Result<&Tuning> {
        self.backends.get(backend).ok_or_else(|| Error::BadFile {
            role: FileRole::Setting(setting),
            path: path.to_path_buf(),
            message: format!(
                "holds no settings for backend '{backend}' (it has: {})",
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            )
            .into(),
        })
    }

    /// The settings as the sweep's Markdown table shows them.
    pub fn best_settings(&self) -> crate::report::markdown::BestSettings {
        crate::report::markdown::BestSettings {
            metric: self.metric.clone(),
            rows: self
                .backends
                .iter()
                .map(|(name, t)| crate::report::markdown::BestRow {
                    backend: name.clone(),
                    knobs: t.knobs().strip_prefix(", ").unwrap_or_default().to_string(),
                    block_size: t.block_size,
                    queue_depth: t.queue_depth,
                    threads: t.threads,
                    read_gibps: t.read_gibps,
                    write_gibps: t.write_gibps,
                    score_gibps: t.score_gibps,
                })
                .collect(),
        }
    }

    /// The DeepSpeed `"aio"` block (see the module docs for the mapping), or `None` when no
    /// backend in the config maps to DeepSpeed's swapper.
    pub fn aio_block(&self) -> Option<serde_json::Value> {
        let (backend, t) = [BackendId::Gds, BackendId::Host]
            .into_iter()
            .find_map(|b| self.backends.get(b.name()).map(|t| (b, t)))?;
        Some(serde_json::json!({
            "aio": {
                "block_size": t.block_size,
                "queue_depth": t.queue_depth,
                "intra_op_parallelism": t.threads,
                "single_submit": false,
                "overlap_events": true,
                "use_gds": backend == BackendId::Gds,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        let t = |bs, qd, th| Tuning {
            block_size: bs,
            queue_depth: qd,
            threads: th,
            read_gibps: Some(2.0),
            write_gibps: None,
            score_gibps: 2.0,
            bounce_buffers: None,
            gds_api: None,
        };
        Config {
            schema: CONFIG_SCHEMA.into(),
            metric: "read".into(),
            backends: [
                ("host".to_string(), t(1 << 20, 8, 2)),
                ("posix".to_string(), t(8 << 20, 1, 1)),
            ]
            .into(),
        }
    }

    #[test]
    fn aio_block_has_the_runtime_keys_as_numbers_and_booleans() {
        let v = sample().aio_block().unwrap();
        let aio = v["aio"].as_object().unwrap();
        let mut keys: Vec<&str> = aio.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "block_size",
                "intra_op_parallelism",
                "overlap_events",
                "queue_depth",
                "single_submit",
                "use_gds"
            ]
        );
        assert_eq!(aio["block_size"].as_u64(), Some(1 << 20));
        assert_eq!(aio["queue_depth"].as_u64(), Some(8));
        assert_eq!(aio["intra_op_parallelism"].as_u64(), Some(2));
        assert_eq!(aio["single_submit"].as_bool(), Some(false));
        assert_eq!(aio["overlap_events"].as_bool(), Some(true));
        assert_eq!(aio["use_gds"].as_bool(), Some(false));
        // The text has bare numbers and booleans, not strings.
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("\"block_size\":1048576"), "{text}");
        assert!(text.contains("\"use_gds\":false"), "{text}");
        // posix alone has no DeepSpeed counterpart.
        let mut only_posix = sample();
        only_posix.backends.remove("host");
        assert!(only_posix.aio_block().is_none());
    }

    #[test]
    fn best_settings_show_each_backend_with_its_knobs() {
        let mut c = sample();
        c.backends.get_mut("posix").unwrap().gds_api = Some(GdsApi::Batch);
        c.backends.get_mut("posix").unwrap().bounce_buffers = Some(8);
        let b = c.best_settings();
        assert_eq!(b.metric, "read");
        let rows: Vec<(&str, &str)> = b
            .rows
            .iter()
            .map(|r| (r.backend.as_str(), r.knobs.as_str()))
            .collect();
        assert_eq!(
            rows,
            [("host", ""), ("posix", "bounce-buffers 8, gds-api batch")]
        );
        assert_eq!(b.rows[1].block_size, 8 << 20);
    }

    #[test]
    fn config_round_trips_and_refuses_what_it_cannot_use() {
        let dir = crate::testutil::scratch_dir();
        let p = dir.path().join("c.json");
        std::fs::write(&p, sample().to_json()).unwrap();
        let c = Config::load(&p, Setting::Config).unwrap();
        assert_eq!(c, sample());
        let mut o = RunOptions::default();
        c.for_backend("host", &p, Setting::Config)
            .unwrap()
            .apply(&mut o);
        assert_eq!(
            (
                o.workload.block_size,
                o.workload.queue_depth,
                o.workload.threads
            ),
            (1 << 20, 8, 2)
        );
        let e = c
            .for_backend("gds", &p, Setting::Config)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config ")
                && e.ends_with("holds no settings for backend 'gds' (it has: host, posix)"),
            "{e}"
        );
        std::fs::write(&p, "{}").unwrap();
        let e = Config::load(&p, Setting::Config).unwrap_err().to_string();
        assert!(e.contains("not a gdswap config"), "{e}");
        let e = Config::load(&dir.path().join("nope"), Setting::Config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read it"), "{e}");
    }
}

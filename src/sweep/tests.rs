//! The best-settings pick (read, write, harmonic mean, ties), the backend knobs in the grid
//! and in the pick, the points log read back after a torn line, and refusing to resume
//! another workload.

use std::io::Write;
use std::path::Path;

use super::*;
use crate::options::{GdsApi, Op, RunOptions, Workload};
use crate::report::comparison;
use crate::report::comparison::tests::sample as sample_comparison;
use crate::types::BackendId;

fn point(op: &str, bs: u64, qd: u32, threads: usize, host: f64, posix: f64) -> Comparison {
    let mut c = sample_comparison();
    c.params.workload.op = if op == "write" { Op::Write } else { Op::Read };
    c.params.workload.block_size = bs;
    c.params.workload.queue_depth = qd;
    c.params.workload.threads = threads;
    c.contenders[0].bandwidth_gibps.median = host;
    c.contenders[1].bandwidth_gibps.median = posix;
    c
}

#[test]
fn best_per_backend_by_read_write_and_harmonic_mean() {
    let m = 1 << 20;
    let pts = vec![
        point("read", m, 8, 1, 4.0, 1.0),
        point("write", m, 8, 1, 1.0, 1.0),
        point("read", 8 * m, 8, 1, 3.0, 1.5),
        point("write", 8 * m, 8, 1, 3.0, 1.5),
        point("read", m, 32, 2, 3.0, 1.5),
    ];
    let read = best(&pts, Metric::Read);
    assert_eq!(read.metric, "read");
    let h = &read.backends["host"];
    assert_eq!((h.block_size, h.queue_depth, h.threads), (m, 8, 1));
    assert_eq!(h.score_gibps, 4.0);
    // posix ties at 1.5 twice: the first measured wins.
    let p = &read.backends["posix"];
    assert_eq!((p.block_size, p.queue_depth, p.threads), (8 * m, 8, 1));
    // The fio peer gets no settings.
    assert!(!read.backends.contains_key("fio"));
    let write = best(&pts, Metric::Write);
    assert_eq!(write.backends["host"].block_size, 8 * m);
    // both: host 4 read + 1 write (sum 5, harmonic 1.6) loses to 3 + 3 (sum 6, harmonic 3).
    let both = best(&pts, Metric::Both);
    let h = &both.backends["host"];
    assert_eq!(h.block_size, 8 * m);
    assert!((h.score_gibps - 3.0).abs() < 1e-12);
    assert_eq!((h.read_gibps, h.write_gibps), (Some(3.0), Some(3.0)));
    // A point with only one direction cannot rank for both.
    let only_read = best(&pts[4..], Metric::Both);
    assert!(only_read.backends.is_empty());
}

#[test]
fn knobs_multiply_only_their_backend_and_older_lines_load_without_them() {
    let m = 1 << 20;
    let mut spec = SweepSpec {
        base: RunOptions::default(),
        block_sizes: vec![m],
        queue_depths: vec![8],
        threads: vec![1],
        bounce_buffers: vec![4, 8],
        gds_apis: vec![GdsApi::Sync, GdsApi::Batch, GdsApi::Stream],
        backends: None,
        peers: vec![],
        rounds: 1,
        metric: Metric::Read,
    };
    let g: Vec<(String, Option<BackendId>)> = spec
        .scoped_grid()
        .into_iter()
        .map(|(k, only)| (k.to_string(), only))
        .collect();
    assert_eq!(
        g,
        [
            (
                "read bs 1MiB qd 8 threads 1 bounce-buffers 4 gds-api sync".to_string(),
                None
            ),
            (
                "read bs 1MiB qd 8 threads 1 bounce-buffers 8".to_string(),
                Some(BackendId::Bounce)
            ),
            (
                "read bs 1MiB qd 8 threads 1 gds-api batch".to_string(),
                Some(BackendId::Gds)
            ),
            (
                "read bs 1MiB qd 8 threads 1 gds-api stream".to_string(),
                Some(BackendId::Gds)
            ),
        ]
    );
    let o = spec.options_at(&spec.grid()[0]);
    assert_eq!(o.gpu.bounce_buffers, 4);
    assert_eq!(o.gpu.gds.unwrap().api, GdsApi::Sync);
    spec.bounce_buffers = vec![0];
    assert!(spec
        .resolve_all()
        .unwrap_err()
        .to_string()
        .starts_with("bounce_buffers"));

    // A line written before the knobs existed loads, with none.
    let old = serde_json::to_string(&sample_comparison()).unwrap();
    assert!(
        !old.contains("bounce_buffers") && !old.contains("gds_api"),
        "{old}"
    );
    let c = comparison::from_json(&old).unwrap();
    assert_eq!((c.params.bounce_buffers, c.params.gds_api), (None, None));

    // best: gds ran sync with host, then batch alone; batch wins and is recorded for gds
    // only; host keeps no knob.
    let mut a = point("read", m, 8, 1, 2.0, 1.0);
    a.contenders[1].name = "gds".into();
    a.params.gds_api = Some(GdsApi::Sync);
    let mut b = a.clone();
    b.contenders.remove(0);
    b.contenders[0].bandwidth_gibps.median = 3.0;
    b.params.gds_api = Some(GdsApi::Batch);
    let best = best(&[a.clone(), b], Metric::Read);
    assert_eq!(best.backends["gds"].gds_api, Some(GdsApi::Batch));
    assert_eq!(best.backends["gds"].score_gibps, 3.0);
    assert_eq!(best.backends["host"].gds_api, None);
    assert_eq!(best.aio_block().unwrap()["aio"]["use_gds"], true);
    let mut o = RunOptions::default();
    best.backends["gds"].apply(&mut o);
    assert_eq!(o.gpu.gds.unwrap().api, GdsApi::Batch);
    assert_eq!(
        point_of(&[a], "gds", &best.backends["host"], "read").map(key_of),
        Some(PointKey {
            block_size: m,
            queue_depth: 8,
            threads: 1,
            op: "read".into(),
            bounce_buffers: None,
            gds_api: Some(GdsApi::Sync)
        })
    );
}

#[test]
fn harmonic_mean_prefers_balance_where_the_sum_would_not() {
    let m = 1 << 20;
    // Sum: 10 + 1 = 11 beats 5 + 5 = 10; harmonic: 1.8 loses to 5.
    let pts = vec![
        point("read", m, 1, 1, 10.0, 1.0),
        point("write", m, 1, 1, 1.0, 1.0),
        point("read", 2 * m, 1, 1, 5.0, 1.0),
        point("write", 2 * m, 1, 1, 5.0, 1.0),
    ];
    assert_eq!(best(&pts, Metric::Both).backends["host"].block_size, 2 * m);
}

#[test]
fn the_log_appends_points_and_reads_them_back_dropping_a_torn_line() {
    let dir = crate::testutil::scratch_dir();
    let log = PointLog::new(dir.path());
    let m = 1 << 20;
    log.append_point(&point("read", m, 1, 1, 1.0, 1.0)).unwrap();
    log.append_point(&point("read", 2 * m, 1, 1, 2.0, 1.0))
        .unwrap();
    let loaded = load_points(log.jsonl_path()).unwrap();
    assert_eq!(loaded.points.len(), 2);
    assert_eq!(loaded.dropped_lines, 0);
    assert_eq!(key_of(&loaded.points[1]).block_size, 2 * m);
    // CSV: one header, then 3 rows per point.
    let csv = std::fs::read_to_string(log.csv_path()).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    assert_eq!(csv.matches("schema,").count(), 1);
    // A line cut short (a crash mid-write) is dropped, the rest kept.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log.jsonl_path())
        .unwrap();
    f.write_all(b"{\"schema\":\"gdswap.compare.v1\",\"fini")
        .unwrap();
    let loaded = load_points(log.jsonl_path()).unwrap();
    assert_eq!((loaded.points.len(), loaded.dropped_lines), (2, 1));
}

#[test]
fn resuming_refuses_another_workload_naming_the_flag() {
    let spec = SweepSpec {
        base: RunOptions {
            workload: Workload {
                target: crate::options::Target::Dir("/data".into()),
                size: 1 << 30,
                loops: 3,
                warmup: 1,
                ..RunOptions::default().workload
            },
            ..RunOptions::default()
        },
        block_sizes: vec![1 << 20],
        queue_depths: vec![8],
        threads: vec![1],
        bounce_buffers: vec![],
        gds_apis: vec![],
        backends: None,
        peers: vec![],
        rounds: 3,
        metric: Metric::Read,
    };
    let p = Path::new("/x/points.jsonl");
    let same = sample_comparison();
    check_resumable(&spec, std::slice::from_ref(&same), p).unwrap();
    let mut other = same.clone();
    other.params.workload.size = 4 << 20;
    let e = check_resumable(&spec, &[other], p).unwrap_err().to_string();
    assert_eq!(
        e,
        "resume /x/points.jsonl: was measured with size 4MiB, this sweep asks 1GiB; resume with the same options, or start a new sweep with another out"
    );
    let mut other = same.clone();
    other.params.rounds = 5;
    let e = check_resumable(&spec, &[other], p).unwrap_err().to_string();
    assert!(e.contains("rounds 5, this sweep asks 3"), "{e}");
    // A points file written before --fixed-buffers was recorded (unregistered buffers, the
    // default then) is not resumed by a sweep that registers them.
    let mut old = serde_json::to_value(&same).unwrap();
    old["params"]
        .as_object_mut()
        .unwrap()
        .remove("fixed_buffers");
    let old: Comparison = serde_json::from_value(old).unwrap();
    let e = check_resumable(&spec, &[old], p).unwrap_err().to_string();
    assert!(e.contains("fixed_buffers off, this sweep asks auto"), "{e}");
    // Grid order: block size, queue depth, threads, direction.
    let spec = SweepSpec {
        block_sizes: vec![1, 2],
        queue_depths: vec![1],
        threads: vec![1, 2],
        metric: Metric::Both,
        ..spec
    };
    let g: Vec<String> = spec.grid().iter().map(|k| k.to_string()).collect();
    assert_eq!(
        g,
        [
            "read bs 1B qd 1 threads 1",
            "write bs 1B qd 1 threads 1",
            "read bs 1B qd 1 threads 2",
            "write bs 1B qd 1 threads 2",
            "read bs 2B qd 1 threads 1",
            "write bs 2B qd 1 threads 1",
            "read bs 2B qd 1 threads 2",
            "write bs 2B qd 1 threads 2"
        ]
    );
}

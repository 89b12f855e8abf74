//! CSV export: one row per run, flat columns, stable order, for spreadsheets and pandas.

use serde::Serialize;

use crate::options::Op;

use super::comparison::{Comparison, Spread};
use super::RunReport;

#[derive(Serialize)]
struct Row<'a> {
    schema: &'a str,
    finished_at: &'a str,
    backend: &'a str,
    op: Op,
    threads: usize,
    block_size_bytes: u64,
    queue_depth: u32,
    size_bytes: u64,
    loops: u32,
    warmup: u32,
    random: bool,
    direct: bool,
    fixed_buffers: crate::options::FixedBuffers,
    verify: bool,
    backend_mode: &'a str,
    buffer_pages: &'a str,
    bytes: u64,
    task_time_s: f64,
    e2e_time_s: f64,
    bandwidth_gbps: f64,
    bandwidth_gibps: f64,
    e2e_bandwidth_gibps: f64,
    loop_gibps_median: f64,
    loop_gibps_min: f64,
    loop_gibps_max: f64,
    iops: f64,
    lat_mean_us: f64,
    lat_p50_us: f64,
    lat_p90_us: f64,
    lat_p99_us: f64,
    lat_p999_us: f64,
    lat_max_us: f64,
    cpu_user_s: f64,
    cpu_system_s: f64,
    cpu_s_per_gib: f64,
    sync_time_s: f64,
    verified: bool,
    warnings: String,
    kernel: &'a str,
    fs_type: &'a str,
    device: &'a str,
    cpu_model: &'a str,
    gdswap_version: &'a str,
    git_commit: &'a str,
    /// Processes of a run under mpirun/srun (1 alone), each rank's GiB/s (`rank:GiB/s`, space
    /// separated), and the stragglers' ranks.
    ranks: usize,
    rank_gibps: String,
    stragglers: String,
}

/// The reports as CSV text with a header line.
pub fn to_csv(reports: &[RunReport]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in reports {
        let s = &r.summary;
        let e = &r.environment;
        w.serialize(Row {
            schema: &r.schema,
            finished_at: &r.finished_at,
            backend: r.params.backend.name(),
            op: r.params.workload.op,
            threads: r.params.workload.threads,
            block_size_bytes: r.params.workload.block_size,
            queue_depth: r.params.workload.queue_depth,
            size_bytes: r.params.workload.size,
            loops: r.params.workload.loops,
            warmup: r.params.workload.warmup,
            random: r.params.random,
            direct: r.params.direct,
            fixed_buffers: r.params.fixed_buffers,
            verify: r.params.verify,
            backend_mode: &r.backend_mode,
            buffer_pages: &r.buffer_pages,
            bytes: s.bytes,
            task_time_s: s.task_time_s,
            e2e_time_s: s.e2e_time_s,
            bandwidth_gbps: s.bandwidth_gbps,
            bandwidth_gibps: s.bandwidth_gibps,
            e2e_bandwidth_gibps: s.e2e_bandwidth_gibps,
            loop_gibps_median: s.loop_gibps_median,
            loop_gibps_min: s.loop_gibps_min,
            loop_gibps_max: s.loop_gibps_max,
            iops: s.iops,
            lat_mean_us: s.latency.mean_us,
            lat_p50_us: s.latency.p50_us,
            lat_p90_us: s.latency.p90_us,
            lat_p99_us: s.latency.p99_us,
            lat_p999_us: s.latency.p999_us,
            lat_max_us: s.latency.max_us,
            cpu_user_s: s.cpu_user_s,
            cpu_system_s: s.cpu_system_s,
            cpu_s_per_gib: s.cpu_s_per_gib,
            sync_time_s: s.sync_time_s,
            verified: s.verified,
            warnings: r
                .warnings
                .iter()
                .map(|w| w.code.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            kernel: &e.kernel,
            fs_type: &e.filesystem.fs_type,
            device: &e.filesystem.device,
            cpu_model: &e.cpu_model,
            gdswap_version: &e.gdswap_version,
            git_commit: &e.git_commit,
            ranks: r.ranks.len().max(1),
            rank_gibps: r
                .ranks
                .iter()
                .map(|k| format!("{}:{:.3}", k.rank, k.bandwidth_gibps))
                .collect::<Vec<_>>()
                .join(" "),
            stragglers: r
                .ranks
                .iter()
                .filter(|k| k.straggler)
                .map(|k| k.rank.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        })
        .expect("writing CSV to memory cannot fail");
    }
    String::from_utf8(w.into_inner().expect("in-memory writer"))
        .expect("CSV of UTF-8 fields is UTF-8")
}

/// One CSV row per contender: its figures, and its ratio to the first (1 for the first).
pub fn comparison(c: &Comparison) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "schema",
        "finished_at",
        "name",
        "kind",
        "op",
        "block_size_bytes",
        "queue_depth",
        "threads",
        "size_bytes",
        "rounds",
        "gibps_median",
        "gibps_min",
        "gibps_max",
        "lat_avg_us",
        "lat_p50_us",
        "lat_p99_us",
        "cpu_s_per_gib",
        "ratio_reference",
        "ratio_median",
        "ratio_min",
        "ratio_max",
        "cpu_ratio_median",
        "mode",
    ]);
    let p = &c.params;
    // A figure the contender does not report is an empty field.
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for (i, k) in c.contenders.iter().enumerate() {
        let (reference, ratio, cpu) = match i.checked_sub(1).and_then(|j| c.ratios.get(j)) {
            Some(r) => (r.reference.clone(), r.bandwidth, r.cpu_s_per_gib.median),
            None => (
                k.name.clone(),
                Spread {
                    median: 1.0,
                    min: 1.0,
                    max: 1.0,
                },
                1.0,
            ),
        };
        let _ = w.write_record([
            c.schema.clone(),
            c.finished_at.clone(),
            k.name.clone(),
            k.kind.to_string(),
            p.workload.op.to_string(),
            p.workload.block_size.to_string(),
            p.workload.queue_depth.to_string(),
            p.workload.threads.to_string(),
            p.workload.size.to_string(),
            k.rounds.len().to_string(),
            k.bandwidth_gibps.median.to_string(),
            k.bandwidth_gibps.min.to_string(),
            k.bandwidth_gibps.max.to_string(),
            opt(k.latency_avg_us),
            opt(k.latency_p50_us),
            opt(k.latency_p99_us),
            opt(k.cpu_s_per_gib),
            reference,
            ratio.median.to_string(),
            ratio.min.to_string(),
            ratio.max.to_string(),
            cpu.to_string(),
            k.mode.clone(),
        ]);
    }
    String::from_utf8(w.into_inner().expect("in-memory writer")).expect("UTF-8 fields")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_quoted_row() {
        let r = crate::report::tests::sample();
        let text = to_csv(&[r.clone(), r]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("schema,finished_at,backend,op,threads,block_size_bytes"));
        assert!(lines[1]
            .starts_with("gdswap.run.v1,2026-11-24T12:00:00Z,host,read,2,1048576,8,1073741824,"));
        // The CPU model has a comma and quotes: it must be quoted and escaped.
        assert!(lines[1].contains("\"CPU, \"\"quoted\"\"\""));
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let headers = rd.headers().unwrap().clone();
        let row = rd.records().next().unwrap().unwrap();
        assert_eq!(headers.len(), row.len());
        let col = |name: &str| {
            row.get(headers.iter().position(|h| h == name).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(col("bandwidth_gibps"), "4.0");
        assert_eq!(col("lat_p99_us"), "3100.0");
    }
}

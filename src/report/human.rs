//! Text for people: a one-line summary, then a small table. Pure functions of the report;
//! the CLI decides where they go (stdout) and prints warnings separately (stderr).

use std::fmt::Write as _;

use crate::options::Op;
use crate::size::Bytes;
use crate::stats::Percentiles;

use super::comparison::{CompareParams, Comparison};
use super::RunReport;

/// Formats a latency in microseconds with a unit that keeps 3-4 significant digits.
pub fn latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

/// The one-line summary.
pub fn summary_line(r: &RunReport) -> String {
    let p = &r.params;
    let s = &r.summary;
    let ranks = match r.ranks.len() {
        0 => String::new(),
        n => format!("{n} ranks x "),
    };
    format!(
        "{} {}: {ranks}{} thread{}, bs {}, qd {}, size {}{}, {} loop{}: {:.2} GiB/s ({:.2} GB/s), {:.0} IOPS, lat p50 {} p99 {}, {:.3} CPU-s/GiB{} [{}; {}]",
        p.backend,
        p.workload.op,
        p.workload.threads,
        if p.workload.threads == 1 { "" } else { "s" },
        Bytes(p.workload.block_size),
        p.workload.queue_depth,
        Bytes(p.workload.size),
        if r.ranks.is_empty() { "" } else { " per rank" },
        p.workload.loops,
        if p.workload.loops == 1 { "" } else { "s" },
        s.bandwidth_gibps,
        s.bandwidth_gbps,
        s.iops,
        latency(s.latency.p50_us),
        latency(s.latency.p99_us),
        s.cpu_s_per_gib,
        if s.verified { ", verified" } else { "" },
        r.backend_mode,
        r.buffer_pages,
    ) + &r
        .gds_path
        .as_ref()
        .map(|g| format!(" path: {}", g.path))
        .unwrap_or_default()
}

fn row(
    out: &mut String,
    name: &str,
    gibps: f64,
    iops: f64,
    l: &Percentiles,
    cpu_per_gib: Option<f64>,
) {
    let ms = |us: f64| us / 1000.0;
    let cpu = cpu_per_gib
        .map(|c| format!("{c:>10.3}"))
        .unwrap_or_else(|| format!("{:>10}", "-"));
    let _ = writeln!(
        out,
        "{name:<10} {gibps:>8.2} {:>8.2} {iops:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {cpu}",
        gibps * (1u64 << 30) as f64 / 1e9,
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
    );
}

/// The table: the run, each thread, then per-loop bandwidth and timing.
pub fn table(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "",
        "GiB/s",
        "GB/s",
        "IOPS",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "CPU-s/GiB"
    );
    let s = &r.summary;
    row(
        &mut out,
        "all",
        s.bandwidth_gibps,
        s.iops,
        &s.latency,
        Some(s.cpu_s_per_gib),
    );
    if !r.ranks.is_empty() {
        for k in &r.ranks {
            row(
                &mut out,
                &format!("rank {}", k.rank),
                k.bandwidth_gibps,
                k.iops,
                &k.latency,
                None,
            );
        }
        let mut hosts: Vec<&str> = r.ranks.iter().map(|k| k.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let slow: Vec<String> = r
            .ranks
            .iter()
            .filter(|k| k.straggler)
            .map(|k| {
                format!(
                    "rank {} ({:.0}% below the median)",
                    k.rank, k.below_median_pct
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "({} ranks on {}: 'all' is every rank's bytes over the earliest start to the latest end of each loop, latencies from the merged histograms, CPU summed; stragglers (>{:.0}% below the median rank): {})",
            r.ranks.len(),
            hosts.join(", "),
            super::STRAGGLER_PCT,
            if slow.is_empty() { "none".to_string() } else { slow.join(", ") }
        );
    } else if r.threads.len() > 1 {
        for t in &r.threads {
            let gib = t.bytes as f64 / (1u64 << 30) as f64;
            let cpu = if gib > 0.0 {
                Some((t.cpu_user_s + t.cpu_system_s) / gib)
            } else {
                None
            };
            row(
                &mut out,
                &format!("thread {}", t.tid),
                t.bandwidth_gibps,
                t.iops,
                &t.latency,
                cpu,
            );
        }
        let _ = writeln!(
            out,
            "(CPU-s/GiB: 'all' counts the whole process, io_uring kernel workers included; a thread row counts that thread alone)"
        );
    }
    let loops: Vec<String> = r
        .loops
        .iter()
        .map(|l| format!("{:.2}", l.bandwidth_gibps))
        .collect();
    let _ = writeln!(
        out,
        "loops GiB/s: {} (median {:.2}); task {:.3} s, end-to-end {:.3} s ({:.2} GiB/s); CPU user {:.3} s, system {:.3} s",
        loops.join(" "),
        s.loop_gibps_median,
        s.task_time_s,
        s.e2e_time_s,
        s.e2e_bandwidth_gibps,
        s.cpu_user_s,
        s.cpu_system_s,
    );
    if r.params.workload.op == Op::Write {
        let _ = writeln!(
            out,
            "fdatasync after the loops: {:.3} s (not in the bandwidth)",
            s.sync_time_s
        );
    }
    if let Some(p) = &r.pipeline {
        let _ = writeln!(
            out,
            "pipeline (all threads): I/O {:.3} s, copies {:.3} s, in transfers {:.3} s; overlap {:.3} s ({:.0}% of the shorter stage hidden)",
            p.io_time_s,
            p.copy_time_s,
            p.transfer_time_s,
            p.overlap_s,
            100.0 * p.overlap_fraction
        );
    }
    let fs = &r.environment.filesystem;
    let _ = writeln!(
        out,
        "data: {} on {} ({}, {}), O_DIRECT {}",
        r.params.workload.target.path().display(),
        fs.device,
        fs.fs_type,
        fs.mount_point,
        if r.params.direct {
            format!("alignment {}", Bytes(r.dio_align_bytes))
        } else {
            "off".into()
        },
    );
    if let Some(p) = &r.numa {
        let _ = writeln!(out, "numa: {p}");
    }
    out
}

/// The workload in one line: `read, bs 1MiB, qd 8, 1 thread, size 1GiB, ...`.
pub fn workload_line(p: &CompareParams) -> String {
    format!(
        "{}{}, bs {}, qd {}, {} thread{}, size {}, {} loop{} + {} warm-up per run, {} round{} interleaved{}",
        if p.random { "random " } else { "" },
        p.workload.op,
        Bytes(p.workload.block_size),
        p.workload.queue_depth,
        p.workload.threads,
        if p.workload.threads == 1 { "" } else { "s" },
        Bytes(p.workload.size),
        p.workload.loops,
        if p.workload.loops == 1 { "" } else { "s" },
        p.workload.warmup,
        p.rounds,
        if p.rounds == 1 { "" } else { "s" },
        if p.direct { "" } else { ", buffered" },
    )
}

/// A latency for a table, `-` when the contender does not report it.
pub fn latency_or_dash(us: Option<f64>) -> String {
    us.map(latency).unwrap_or_else(|| "-".into())
}

/// CPU-s/GiB with three decimals, or `-` when the contender does not report it.
pub fn cpu_or_dash(cpu_s_per_gib: Option<f64>) -> String {
    cpu_s_per_gib
        .map(|c| format!("{c:.3}"))
        .unwrap_or_else(|| "-".into())
}

/// The comparison as text for a terminal: the workload, one row per contender, the names of
/// the skipped ones.
/// A figure a contender does not report (gdsio: percentiles, CPU) is `-`.
/// Warnings are left to the caller (they go to stderr).
pub fn comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "compare {}", workload_line(&c.params));
    let reference = c.contenders.first().map(|k| k.name.as_str()).unwrap_or("-");
    let w = c
        .contenders
        .iter()
        .map(|k| k.name.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let _ = writeln!(
        out,
        "{:<w$} {:<7} {:>8} {:>13} {:>9} {:>9} {:>9} {:>9}  {}",
        "",
        "",
        "GiB/s",
        "min-max",
        "avg",
        "p50",
        "p99",
        "CPU-s/GiB",
        format_args!("vs {reference}: median (range)")
    );
    for (i, k) in c.contenders.iter().enumerate() {
        let vs = match i.checked_sub(1).and_then(|j| c.ratios.get(j)) {
            Some(r) => format!(
                "{:.2}x ({:.2}-{:.2})",
                r.bandwidth.median, r.bandwidth.min, r.bandwidth.max
            ),
            None => "1.00x (reference)".into(),
        };
        let _ = writeln!(
            out,
            "{:<w$} {:<7} {:>8.2} {:>13} {:>9} {:>9} {:>9} {:>9}  {vs}",
            k.name,
            k.kind.to_string(),
            k.bandwidth_gibps.median,
            format!("{:.2}-{:.2}", k.bandwidth_gibps.min, k.bandwidth_gibps.max),
            latency_or_dash(k.latency_avg_us),
            latency_or_dash(k.latency_p50_us),
            latency_or_dash(k.latency_p99_us),
            cpu_or_dash(k.cpu_s_per_gib),
        );
    }
    for k in &c.contenders {
        let _ = writeln!(out, "{}: {}", k.name, k.mode);
    }
    // Names only: each reason is printed once, as a note, by the command that skipped it
    // (and kept in the JSON, CSV and Markdown).
    if !c.skipped.is_empty() {
        let names: Vec<String> = c
            .skipped
            .iter()
            .map(|s| format!("{} {}", s.kind, s.name))
            .collect();
        let _ = writeln!(out, "skipped (the notes say why): {}", names.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_table_of_a_fixed_report() {
        let r = crate::report::tests::sample();
        let line = summary_line(&r);
        assert_eq!(
            line,
            "host read: 2 threads, bs 1MiB, qd 8, size 1GiB, 2 loops: 4.00 GiB/s (4.29 GB/s), 4096 IOPS, lat p50 1.80 ms p99 3.10 ms, 0.050 CPU-s/GiB, verified [io_uring defer-taskrun, O_DIRECT; THP 2MiB pages]"
        );
        let t = table(&r);
        assert!(t.lines().next().unwrap().contains("GiB/s"));
        assert!(t.contains("all            4.00     4.29      4096    1.800    2.500    3.100     4.000    5.000      0.050"), "{t}");
        assert!(t.contains("thread 0"), "{t}");
        assert!(t.contains("a thread row counts that thread alone"), "{t}");
        assert!(t.contains("loops GiB/s: 4.00 4.00 (median 4.00)"), "{t}");
        assert!(t.contains("alignment 512B"), "{t}");
        assert!(!t.contains("pipeline"), "{t}");
        let mut b = r.clone();
        b.pipeline = Some(crate::report::PipelineFigures {
            io_time_s: 0.5,
            copy_time_s: 0.2,
            transfer_time_s: 0.55,
            overlap_s: 0.15,
            overlap_fraction: 0.75,
        });
        assert!(
            table(&b).contains("pipeline (all threads): I/O 0.500 s, copies 0.200 s, in transfers 0.550 s; overlap 0.150 s (75% of the shorter stage hidden)"),
            "{}",
            table(&b)
        );
        assert_eq!(latency(850.0), "850 us");
        assert_eq!(latency(1500.0), "1.50 ms");
    }
}

//! `gdswap report`: results saved by `run --json`, `compare --json` and a sweep's points.jsonl
//! turned back into report.md and SVG plots; `compare --svg`; unusable inputs named in one-line
//! errors.

#[macro_use]
mod common;

use common::*;

#[test]
fn saved_results_become_markdown_and_plots_again() {
    let dir = scratch();
    let d = dir.path().join("d");
    let small = || {
        argv![
            "--size",
            "2M",
            "--loops",
            "1",
            "--warmup",
            "0",
            "--create-dir",
            "--dir",
            &d
        ]
    };
    let run_json = dir.path().join("run.json");
    ok(with(
        argv!["run", "--backend", "posix", "--json", &run_json],
        small(),
    ));
    let cmp_json = dir.path().join("cmp.json");
    let cdf = dir.path().join("cdf.svg");
    ok(with(
        argv![
            "compare",
            "--backends",
            "posix",
            "--peers",
            "none",
            "--rounds",
            "2",
            "--json",
            &cmp_json,
            "--svg",
            &cdf
        ],
        small(),
    ));
    let svg = std::fs::read_to_string(&cdf).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("latency CDF: read bs 1MiB"),
        "{svg}"
    );
    assert_eq!(svg.matches("<polyline").count(), 1);
    let sweep_out = dir.path().join("sweep");
    ok(with(
        argv![
            "sweep",
            "--backends",
            "posix",
            "--block-size",
            "256K,1M",
            "--queue-depth",
            "1",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--out",
            &sweep_out
        ],
        small(),
    ));
    for f in [
        "sweep.md",
        "bandwidth-posix-read-1t.svg",
        "latency-cdf-posix-best-read.svg",
    ] {
        assert!(sweep_out.join(f).is_file(), "sweep wrote no {f}");
    }

    let out = dir.path().join("rep");
    let o = ok(argv![
        "report",
        &run_json,
        &cmp_json,
        sweep_out.join("points.jsonl"),
        "--out",
        &out
    ]);
    assert!(o.stdout.starts_with("wrote "), "{}", o.stdout);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let sections: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(sections.len(), 3, "{md}");
    assert!(sections[0].starts_with("## gdswap run results"));
    assert!(sections[1].starts_with("## gdswap compare: read, bs 1MiB"));
    assert!(sections[2].starts_with("## gdswap sweep: size 2MiB"));
    for f in [
        "2-latency-cdf.svg",
        "3-bandwidth-posix-read-1t.svg",
        "3-latency-cdf-posix-best-read.svg",
        "1-latency-cdf-runs.svg",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.starts_with("<svg") && text.ends_with("</svg>\n"));
        assert!(md.contains(&format!("![{f}]({f})")), "{f} is not linked");
    }
    // The rebuilt sweep section is the one the sweep wrote, but for its plots' prefixes.
    let original = std::fs::read_to_string(sweep_out.join("sweep.md")).unwrap();
    let table = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("| read"))
            .map(String::from)
            .collect()
    };
    assert_eq!(table(&original), table(&md));
    assert_eq!(table(&md).len(), 2);
}

#[test]
fn unusable_inputs_are_named() {
    let dir = scratch();
    let missing = dir.path().join("missing.json");
    let e = fail(argv!["report", &missing, "--out", dir.path().join("o")]);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let cfg = dir.path().join("best.json");
    std::fs::write(
        &cfg,
        r#"{"schema":"gdswap.config.v1","metric":"read","backends":{}}"#,
    )
    .unwrap();
    let e = fail(argv!["report", &cfg, "--out", dir.path().join("o")]);
    assert!(
        e.starts_with(&format!(
            "gdswap report {}: is a config file",
            cfg.display()
        )),
        "{e}"
    );
    let o = outcome(&mut gdswap(argv!["report"]));
    assert_eq!(o.code, Some(2), "RESULTS are required");
    assert!(
        !dir.path().join("o").exists(),
        "a failed report created its output"
    );
}

//! `gdswap qualify --spec FILE`: real runs of the binary on scratch directories, with the fake
//! libcuda for the GPU lines and fixture sysfs trees (GDSWAP_SYSFS_ROOT) for NUMA and PCIe.
//! Every outcome leaves a record (JSON and Markdown) in `--out`, failed or not.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cuda::{system_has_libcuda, with_fake_cuda, without_cuda};
use common::*;
use serde_json::Value;

/// A scratch area: `out` for records, `a` and `b` as two targets.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let b = Bench { dir: scratch() };
        for d in ["a", "b", "out"] {
            std::fs::create_dir(b.dir.path().join(d)).unwrap();
        }
        b
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn spec(&self, text: &str) -> PathBuf {
        let p = self.path("spec.toml");
        let text = text
            .replace("@A", &self.path("a").display().to_string())
            .replace("@B", &self.path("b").display().to_string());
        std::fs::write(&p, text).unwrap();
        p
    }
    fn command(&self, spec: &Path) -> Command {
        let mut cmd = gdswap(argv![
            "qualify",
            "--spec",
            spec,
            "--out",
            self.path("out"),
            "--node",
            "node-under-test"
        ]);
        without_cuda(&mut cmd);
        cmd.env("GDSWAP_SYSFS_ROOT", self.path("no-sysfs"));
        cmd
    }
    /// The one record in `out`: its JSON and Markdown.
    fn record(&self) -> (Value, String) {
        let names = dir_names(&self.path("out"));
        let json: Vec<_> = names.iter().filter(|n| n.ends_with(".json")).collect();
        assert_eq!(json.len(), 1, "{names:?}");
        assert!(json[0].starts_with("qualify-node-under-test-"), "{names:?}");
        let md = json[0].replace(".json", ".md");
        assert!(names.contains(&md), "{names:?}");
        let text = std::fs::read_to_string(self.path("out").join(json[0])).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], "gdswap.qualify.v1");
        assert_eq!(v["node"], "node-under-test");
        assert!(v["command_line"].as_array().unwrap().len() >= 3, "{v}");
        for key in ["started_at", "finished_at", "gdswap_version", "git_commit"] {
            assert!(!v[key].as_str().unwrap().is_empty(), "{key}: {v}");
        }
        assert!(v["environment"]["kernel"].is_string(), "{v}");
        (
            v,
            std::fs::read_to_string(self.path("out").join(md)).unwrap(),
        )
    }
}

const LOOSE: &str = r#"
name = "loose"
[checks]
io_uring = true
o_direct = true
memlock = "4K"

[[test]]
name = "seq-read"
backend = "host"
op = "read"
block_size = "256K"
queue_depth = 4
threads = 2
targets = ["@A", "@B"]
size = "4M"
loops = 2
[test.thresholds]
min_gbps = 0.001
min_gbps_per_target = 0.0005
min_iops = 1
max_p99 = "10s"
max_p999 = "10s"
max_cpu_s_per_gib = 1000
max_verify_errors = 0
"#;

fn lines(v: &Value) -> &Vec<Value> {
    v["lines"].as_array().unwrap()
}

#[test]
fn a_loose_spec_passes_with_figures_per_target_and_aggregate() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(LOOSE);
    let out = outcome(&mut b.command(&spec)).expect_ok();
    assert!(out.stdout.contains("\nverdict: PASS ("), "{}", out.stdout);
    // One printed line per check row and threshold: 3 checks, 2 per-target lines, 5
    // aggregate thresholds and the verify line.
    let printed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("check") || l.starts_with("test"))
        .collect();
    assert_eq!(printed.len(), 11, "{}", out.stdout);
    assert!(
        printed.iter().all(|l| l.ends_with("PASS")),
        "{}",
        out.stdout
    );
    let (v, md) = b.record();
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["exit_status"], 0);
    assert!(v["error"].is_null());
    assert!(v["check"]["io_uring"]["works"].as_bool().unwrap());
    assert!(v["spec_text"].as_str().unwrap().contains("seq-read"));
    assert_eq!(v["spec"]["test"][0]["name"], "seq-read");
    let t = &v["tests"][0];
    let targets = t["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    let mut sum = 0u64;
    for (tr, dir) in targets.iter().zip(["a", "b"]) {
        assert_eq!(tr["target"], b.path(dir).display().to_string());
        // Each target moved its own 4 MiB per loop, two loops, in its own files.
        assert_eq!(tr["figures"]["bytes"], 8u64 << 20, "{tr}");
        assert!(tr["figures"]["gbps"].as_f64().unwrap() > 0.0);
        assert_eq!(tr["report"]["params"]["threads"], 2);
        assert!(b.path(dir).join("gdswap.1.dat").exists());
        sum += tr["figures"]["bytes"].as_u64().unwrap();
    }
    assert_eq!(t["aggregate"]["bytes"].as_u64().unwrap(), sum);
    let per_target: Vec<_> = lines(&v)
        .iter()
        .filter(|l| l["metric"] == "gbps_per_target")
        .collect();
    assert_eq!(per_target.len(), 2);
    assert!(md.contains("Verdict: **PASS**"), "{md}");
    assert!(md.contains("| all targets |"), "{md}");
}

#[test]
fn duration_makes_every_test_time_based() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(LOOSE);
    let mut cmd = b.command(&spec);
    cmd.args(["--duration", "1s"]);
    outcome(&mut cmd).expect_ok();
    let (v, _) = b.record();
    for tr in v["tests"][0]["targets"].as_array().unwrap() {
        let soak = &tr["report"]["soak"];
        assert_eq!(soak["duration_s"], 1.0, "{soak}");
        // The verify threshold made it a soak: every loop verified, none wrong.
        assert_eq!(soak["verified_every_loop"], true, "{soak}");
        assert_eq!(soak["verify_errors"], 0, "{soak}");
        assert_eq!(
            soak["loops"],
            tr["report"]["loops"].as_array().unwrap().len()
        );
    }
}

#[test]
fn an_impossible_spec_fails_with_the_failed_line_in_json_and_markdown() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(&LOOSE.replace("min_gbps = 0.001", "min_gbps = 1000000"));
    let out = outcome(&mut b.command(&spec));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("\nverdict: FAIL (1 of 11 lines failed)"),
        "{}",
        out.stdout
    );
    let failed = out
        .stdout
        .lines()
        .find(|l| l.contains("seq-read gbps ") && l.ends_with("FAIL"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(failed.contains(">= 1000000.00 GB/s"), "{failed}");
    let (v, md) = b.record();
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exit_status"], 1);
    let bad: Vec<_> = lines(&v).iter().filter(|l| l["pass"] == false).collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["metric"], "gbps");
    assert!(bad[0]["measured"].as_f64().unwrap() < 1e6);
    assert!(md.contains("Verdict: **FAIL**"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.starts_with("| test | seq-read gbps |") && l.ends_with("| **FAIL** |")),
        "{md}"
    );
}

/// Runs a qualification that cannot run: exit 2, one error line, and still a record.
fn cannot_run(b: &Bench, spec: &Path) -> (String, Value) {
    let out = outcome(&mut b.command(spec));
    assert_eq!(out.code, Some(2), "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    let message = errors[0].strip_prefix(ERROR_PREFIX).unwrap().to_string();
    let (v, md) = b.record();
    assert_eq!(v["verdict"], "error");
    assert_eq!(v["exit_status"], 2);
    assert_eq!(v["error"], message.as_str());
    assert!(md.contains("could not run"), "{md}");
    std::fs::remove_dir_all(b.path("out")).unwrap();
    (message, v)
}

#[test]
fn bad_input_is_one_line_exit_2_and_still_a_record() {
    let b = Bench::new();
    let (e, v) = cannot_run(&b, &b.path("missing.toml"));
    assert!(
        e.starts_with("--spec ") && e.contains("missing.toml: cannot read it"),
        "{e}"
    );
    assert!(v["spec_text"].is_null());

    let (e, v) = cannot_run(&b, &b.spec(&LOOSE.replace("\"host\"", "\"nvme-of\"")));
    assert!(e.contains("line 10: unknown backend 'nvme-of'"), "{e}");
    assert!(v["spec_text"].as_str().unwrap().contains("nvme-of"));

    let zero = LOOSE.replace("size = \"4M\"", "duration = \"0s\"");
    let (e, _) = cannot_run(&b, &b.spec(&zero));
    assert!(
        e.contains("line 16:") && e.contains("more than zero"),
        "{e}"
    );

    let gone = LOOSE.replace("@B", "@B/not-there");
    let (e, _) = cannot_run(&b, &b.spec(&gone));
    assert!(
        e.contains("test 'seq-read': target ") && e.contains("not-there cannot be reached"),
        "{e}"
    );

    let (e, _) = cannot_run(&b, &b.spec(&LOOSE.replace("min_iops", "min_iop")));
    assert!(e.contains("line 21: unknown field `min_iop`"), "{e}");

    let (e, _) = cannot_run(&b, &b.spec(&LOOSE.replace("\"4K\"", "\"4 lots\"")));
    assert!(
        e.contains("line 6:") && e.contains("'4 lots' is not a size"),
        "{e}"
    );

    let (e, _) = cannot_run(
        &b,
        &b.spec(&LOOSE.replace("min_iops = 1", "min_iops = \"many\"")),
    );
    assert!(e.contains("line 21: invalid type: string \"many\""), "{e}");

    // A workload gdswap refuses (more threads than blocks) is named with its test.
    let (e, _) = cannot_run(&b, &b.spec(&LOOSE.replace("threads = 2", "threads = 64")));
    assert!(
        e.starts_with("test 'seq-read': ") && e.contains("threads"),
        "{e}"
    );
}

const BOUNCE: &str = r#"
[[test]]
name = "to-gpu"
backend = "bounce"
op = "read"
block_size = "256K"
targets = ["@A"]
size = "2M"
[test.thresholds]
min_gbps = 0.0001
max_verify_errors = 0
"#;

#[test]
fn a_backend_this_node_cannot_run_fails_its_line_with_the_reason() {
    if system_has_libcuda() {
        eprintln!("skipped: this machine has a libcuda");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(BOUNCE);
    let out = outcome(&mut b.command(&spec));
    assert_eq!(out.code, Some(1), "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("test   to-gpu run"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.contains("FAIL: this node cannot run the bounce backend: libcuda"),
        "{line}"
    );
    let (v, _) = b.record();
    assert_eq!(lines(&v).len(), 1, "{v}");
    assert!(v["tests"][0]["unavailable"]
        .as_str()
        .unwrap()
        .contains("libcuda"));
}

#[test]
fn a_gpu_backend_passes_on_the_fake_libcuda() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(BOUNCE);
    let mut cmd = b.command(&spec);
    with_fake_cuda(&mut cmd);
    let out = outcome(&mut cmd).expect_ok();
    assert!(out.stdout.contains("test   to-gpu gbps"), "{}", out.stdout);
    let (v, _) = b.record();
    assert_eq!(
        v["tests"][0]["targets"][0]["report"]["destination"],
        "device"
    );
}

#[test]
fn a_corrupt_block_is_a_verify_error_with_its_offset() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    // The data file, then one byte of its second MiB flipped.
    ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        b.path("a"),
        "--size",
        "4M",
        "--block-size",
        "1M",
        "--loops",
        "1",
        "--warmup",
        "0"
    ]);
    let file = b.path("a").join("gdswap.0.dat");
    let offset = (1 << 20) + 4096 + 100;
    flip_byte(&file, offset);
    let spec = b.spec(
        &BOUNCE
            .replace("\"bounce\"", "\"host\"")
            .replace("\"256K\"", "\"1M\"")
            .replace("\"2M\"", "\"4M\""),
    );
    let out = outcome(&mut b.command(&spec));
    assert_eq!(out.code, Some(1), "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("to-gpu verify_errors"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains(&format!("offset {offset}")), "{line}");
    let (v, md) = b.record();
    let errors = &v["tests"][0]["targets"][0]["verify_errors"];
    assert_eq!(errors[0]["offset"], offset, "{v}");
    assert_eq!(errors[0]["path"], file.display().to_string());
    assert!(md.contains(&format!("offset {offset}")), "{md}");
}

#[test]
fn checks_read_nvidia_fs_and_pcie_links_from_sysfs() {
    use std::os::unix::fs::MetadataExt;
    let b = Bench::new();
    let sysfs = b.path("sysfs");
    // Two NUMA nodes; the fake GPUs (0000:18:00.0, 0000:29:00.0) at their max link; the
    // target's drive behind an NVMe controller whose link trained at half speed, on node 0
    // (the workers' memory binds to the drive's node: one this machine has).
    common::sysfs::node(&sysfs, 0, &allowed_cpus());
    common::sysfs::node(&sysfs, 1, &allowed_cpus());
    common::sysfs::pci(
        &sysfs,
        "0000:18:00.0",
        0,
        ("16.0 GT/s", 16, "16.0 GT/s", 16),
    );
    common::sysfs::pci(
        &sysfs,
        "0000:29:00.0",
        1,
        ("32.0 GT/s", 16, "32.0 GT/s", 16),
    );
    common::sysfs::pci(&sysfs, "0000:5e:00.0", 0, ("8.0 GT/s", 4, "16.0 GT/s", 4));
    let dev = std::fs::metadata(b.path("a")).unwrap().dev();
    common::sysfs::drive(
        &sysfs,
        "0000:5e:00.0",
        "nvme0n1",
        libc::major(dev),
        libc::minor(dev),
    );
    std::fs::create_dir_all(sysfs.join("module/nvidia_fs")).unwrap();
    let spec = b.spec(
        "[checks]\npath = \"@A\"\nnvidia_fs = true\npcie_link = true\n\n[[test]]\nname = \"t\"\nbackend = \"posix\"\nop = \"write\"\nblock_size = \"64K\"\ntargets = [\"@A\"]\nsize = \"256K\"\nloops = 1\n",
    );
    let mut cmd = b.command(&spec);
    with_fake_cuda(&mut cmd)
        .env("FAKE_CUDA_DEVICES", "2")
        .env("GDSWAP_SYSFS_ROOT", &sysfs);
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    let text = &out.stdout;
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}:\n{text}"))
    };
    assert!(find("check  nvidia_fs").ends_with("PASS"), "{text}");
    assert!(find("check  pcie_link gpu0").contains("16.0 GT/s x16 (max 16.0 GT/s x16)"));
    assert!(find("check  pcie_link gpu1").ends_with("PASS"), "{text}");
    let drive = find(&format!("check  pcie_link {}", b.path("a").display()));
    assert!(
        drive.contains("8.0 GT/s x4 (max 16.0 GT/s x4)")
            && drive.contains("FAIL: 0000:5e:00.0 runs below its maximum"),
        "{drive}"
    );
    assert!(find("test   t run").ends_with("PASS"), "{text}");
    let (v, _) = b.record();
    assert_eq!(v["verdict"], "fail");
}

fn fleet_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fleet")
}

#[test]
fn the_fleet_report_flags_the_node_below_the_median() {
    let b = Bench::new();
    let out = ok(argv![
        "report",
        fleet_dir(),
        "--out",
        b.path("fleet"),
        "--outlier-pct",
        "26"
    ]);
    let text = &out.stdout;
    let row = |node: &str| {
        text.lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("no row {node}:\n{text}"))
            .to_string()
    };
    assert!(
        text.starts_with("node          verdict  seq-read-host (GB/s)  rand-read-4k (IOPS)\n"),
        "{text}"
    );
    assert!(row("gpu-node-03").contains("8.90 LOW"), "{text}");
    assert!(!row("gpu-node-04").contains("LOW"), "{text}");
    assert!(row("fleet median").contains("12.25") && row("fleet median").contains("797500"));
    let outliers: Vec<&str> = text.lines().filter(|l| l.starts_with("outlier:")).collect();
    assert_eq!(
        outliers,
        ["outlier: gpu-node-03 seq-read-host: 8.90 GB/s, 27% below the fleet median 12.25 (more than 26%)"],
        "{text}"
    );
    assert!(
        text.contains("4 nodes: 2 pass, 2 fail, 0 could not run"),
        "{text}"
    );
    let md = std::fs::read_to_string(b.path("fleet/fleet.md")).unwrap();
    assert_eq!(md.matches("(outlier)").count(), 1, "{md}");
    assert!(
        md.contains("| gpu-node-03 | **FAIL** | **8.90 (outlier)** | 805000 |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(b.path("fleet/fleet-seq-read-host.svg")).unwrap();
    assert_eq!(svg.matches("fill=\"#d62728\"").count(), 1, "{svg}");
    assert!(svg.contains("<title>gpu-node-03: 8.90</title>"), "{svg}");
    assert!(b.path("fleet/fleet-rand-read-4k.svg").exists());

    // The default threshold, 10%, flags gpu-node-04's IOPS too.
    let out = ok(argv!["report", fleet_dir(), "--out", b.path("fleet10")]);
    assert_eq!(
        out.stdout.matches("\noutlier: ").count(),
        2,
        "{}",
        out.stdout
    );
}

#[test]
fn the_fleet_report_takes_a_glob_and_real_records() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(LOOSE);
    outcome(&mut b.command(&spec)).expect_ok();
    for f in dir_names(&fleet_dir()) {
        std::fs::copy(fleet_dir().join(&f), b.path("out").join(&f)).unwrap();
    }
    std::fs::write(b.path("out/notes.txt"), "not a record").unwrap();
    let glob = b.path("out").join("qualify-*.json");
    let out = ok(argv!["report", &glob, "--out", b.path("fleet")]);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("node-under-test"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(row.contains("PASS"), "{row}");
    assert!(out.stdout.contains("seq-read (GB/s)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("5 nodes: 3 pass, 2 fail"),
        "{}",
        out.stdout
    );
    // A run report among the records is refused, naming it.
    let run_json = b.path("out/qualify-zz-run.json");
    std::fs::write(&run_json, "{\"schema\": \"gdswap.run.v1\"}").unwrap();
    let msg = fail(argv!["report", &glob, "--out", b.path("fleet")]);
    assert!(
        msg.contains("qualify-zz-run.json: is not a qualify record"),
        "{msg}"
    );
}

#[test]
fn each_target_moves_data_to_the_gpu_the_map_gives_it() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let spec = b.spec(&BOUNCE.replace(
        "targets = [\"@A\"]",
        "targets = [\"@A\", \"@B\"]\ngpus = [1, 0]",
    ));
    let mut cmd = b.command(&spec);
    with_fake_cuda(&mut cmd).env("FAKE_CUDA_DEVICES", "2");
    outcome(&mut cmd).expect_ok();
    let (v, _) = b.record();
    let devices: Vec<&Value> = v["tests"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["report"]["params"]["gpu"]["device"])
        .collect();
    assert_eq!(devices, [1, 0], "{v}");
}

/// The CPUs this process may run on, as a cpulist (`0-1`).
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The qualify command of `BOUNCE`'s spec on the host backend, with a fake sysfs at `sysfs`
/// in which the data file's drive is an NVMe drive on PCIe 0000:5e:00.0, NUMA node 0 (the
/// caller writes the nodes).
fn host_qualify_on_node0_drive(b: &Bench, sysfs: &Path) -> Command {
    use std::os::unix::fs::MetadataExt;
    common::sysfs::pci(sysfs, "0000:5e:00.0", 0, ("16.0 GT/s", 4, "16.0 GT/s", 4));
    let dev = std::fs::metadata(b.path("a")).unwrap().dev();
    common::sysfs::drive(
        sysfs,
        "0000:5e:00.0",
        "nvme0n1",
        libc::major(dev),
        libc::minor(dev),
    );
    let spec = b.spec(&BOUNCE.replace("\"bounce\"", "\"host\""));
    let mut cmd = b.command(&spec);
    cmd.env("GDSWAP_SYSFS_ROOT", sysfs);
    cmd
}

#[test]
fn worker_threads_are_bound_to_their_drives_numa_node() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let b = Bench::new();
    let sysfs = b.path("sysfs");
    let first: String = allowed_cpus().split([',', '-']).next().unwrap().to_string();
    // Two nodes: the drive's node 0 (a node this machine has, so memory binds to it) has
    // only this process's first CPU; node 1 one that cannot be used.
    common::sysfs::node(&sysfs, 0, &first);
    common::sysfs::node(&sysfs, 1, "1000");
    let mut cmd = host_qualify_on_node0_drive(&b, &sysfs);
    let out = outcome(&mut cmd).expect_ok();
    let line = format!(
        "bind   to-gpu {}: NUMA node 0 (the drive's), CPUs [{first}]",
        b.path("a").display()
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    let (v, md) = b.record();
    let tr = &v["tests"][0]["targets"][0];
    assert_eq!(
        tr["bound_cpus"],
        serde_json::json!([first.parse::<u64>().unwrap()]),
        "{tr}"
    );
    assert!(md.contains("NUMA node 0 (the drive's)"), "{md}");

    // A node none of whose CPUs this process may run on is not bound, saying why.
    std::fs::remove_dir_all(b.path("out")).unwrap();
    common::sysfs::pci(&sysfs, "0000:5e:00.0", 1, ("16.0 GT/s", 4, "16.0 GT/s", 4));
    let out = outcome(&mut cmd).expect_ok();
    let line = format!(
        "bind   to-gpu {}: not bound: none of NUMA node 1's CPUs (1000) is one this process may run on ({}; a launcher's or taskset's binding) (the drive's)",
        b.path("a").display(),
        allowed_cpus()
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);

    // The binding is real: a node this machine does not have fails the run, saying so (its
    // memory cannot be bound there).
    std::fs::remove_dir_all(b.path("out")).unwrap();
    common::sysfs::node(&sysfs, 1000, &first);
    common::sysfs::pci(
        &sysfs,
        "0000:5e:00.0",
        1000,
        ("16.0 GT/s", 4, "16.0 GT/s", 4),
    );
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("binding worker thread 0's memory to NUMA node 1000: Invalid argument"),
        "{}",
        out.stdout
    );
}

/// qualify started with a narrower CPU set than the node's (taskset, `mpirun --bind-to`)
/// binds its workers to the node's CPUs within that set, as `run` does, and says which.
#[test]
fn bindings_stay_within_the_cpus_the_process_inherited() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let all = gdswap::topology::parse_cpulist(&allowed_cpus()).unwrap();
    if all.len() < 2 {
        eprintln!("skipped: this process may run on one CPU only ({all:?})");
        return;
    }
    let last = *all.last().unwrap();
    let b = Bench::new();
    let sysfs = b.path("sysfs");
    // The drive's node 0 (a node this machine has) lists every CPU this process may use.
    common::sysfs::node(&sysfs, 0, &allowed_cpus());
    let mut cmd = host_qualify_on_node0_drive(&b, &sysfs);
    // Started on the last CPU only, as `taskset -c <last>` would.
    with_cpu_affinity(&mut cmd, &[last]);
    let out = outcome(&mut cmd).expect_ok();
    let line = format!(
        "bind   to-gpu {}: NUMA node 0 (the drive's), CPUs [{last}] (node 0's CPUs {} within this process's affinity {last})\n",
        b.path("a").display(),
        allowed_cpus()
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    let (v, md) = b.record();
    let tr = &v["tests"][0]["targets"][0];
    assert_eq!(tr["bound_cpus"], serde_json::json!([last]), "{tr}");
    // The run itself was placed there.
    assert_eq!(
        tr["report"]["numa"],
        serde_json::json!({"node": 0, "cpus": [last], "reason": "the drive's"}),
        "{tr}"
    );
    assert!(
        md.contains(&format!("CPUs [{last}] (node 0's CPUs")),
        "{md}"
    );
}

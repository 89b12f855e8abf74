//! The qualification spec: which `check` rows must hold, and which workloads must reach which
//! figures. Read from TOML (or JSON, by the `.json` extension) with every key known: an
//! unknown key, a value of the wrong type or a bad unit is an error naming the line.
//!
//! Units: sizes as `gdswap run` takes them (`1M`, `4GiB`, `1GB`: [`crate::size::SIZE_RULE`]);
//! durations and latencies as a whole number with `us`, `ms`, `s`, `m` or `h` (`500us`,
//! `2ms`, `10m`); bandwidth in GB/s (1e9 bytes), IOPS and CPU-s/GiB as plain numbers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::size::parse_size;
use crate::types::BackendId;

/// A whole qualification spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// A name for the spec, shown in reports (`h100-rack-v2`).
    #[serde(default)]
    pub name: Option<String>,
    /// The `[checks]` table: the node rows that must hold.
    #[serde(default)]
    pub checks: Checks,
    /// The workloads, in order (`[[test]]` tables).
    #[serde(default, rename = "test")]
    pub tests: Vec<TestSpec>,
}

/// `check` rows that must hold; a row left out (or `false`) is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// The data path the filesystem rows are about (default: the first test's first target).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// io_uring works (some kernels and containers disable it).
    #[serde(default)]
    pub io_uring: bool,
    /// O_DIRECT works on the data path.
    #[serde(default)]
    pub o_direct: bool,
    /// RLIMIT_MEMLOCK at least this many bytes (`"unlimited"`: no limit at all).
    #[serde(default)]
    pub memlock: Option<Memlock>,
    /// The nvidia-fs kernel module is loaded (`/sys/module/nvidia_fs`).
    #[serde(default)]
    pub nvidia_fs: bool,
    /// A gds transfer on the data path would take GPUDirect, not cuFile's compat mode.
    #[serde(default)]
    pub gpudirect: bool,
    /// Every GPU and every target drive runs its PCIe link at its maximum speed and width.
    #[serde(default)]
    pub pcie_link: bool,
}

/// The memlock a spec requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Memlock {
    /// `"unlimited"`: no limit at all.
    Unlimited,
    /// At least this many bytes (a number or a size such as `"64M"`).
    AtLeast(u64),
}

impl<'de> Deserialize<'de> for Memlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SizeOrText::deserialize(d)? {
            SizeOrText::Number(n) => Ok(Memlock::AtLeast(n)),
            SizeOrText::Text(t) if t.trim().eq_ignore_ascii_case("unlimited") => {
                Ok(Memlock::Unlimited)
            }
            SizeOrText::Text(t) => parse_size(&t)
                .map(Memlock::AtLeast)
                .map_err(|e| serde::de::Error::custom(format!("memlock: {e}, or \"unlimited\""))),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeOrText {
    Number(u64),
    Text(String),
}

/// A byte count written as a size (`"4G"`) or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SizeOrText::deserialize(d)? {
            SizeOrText::Number(n) => Ok(Size(n)),
            SizeOrText::Text(t) => parse_size(&t).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written with its unit (`"10m"`); never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Span)
            .map_err(serde::de::Error::custom)
    }
}

/// The rule of [`parse_duration`], for help texts and errors.
pub const DURATION_RULE: &str =
    "durations: a whole number with a unit: us, ms, s, m or h (500us, 2ms, 30s, 10m, 1h)";

/// Parses `500us`, `2ms`, `30s`, `10m`, `1h` (a bare number is refused: the unit is never
/// guessed). Zero is refused: a run of no time measures nothing.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let bad = |why: &str| format!("'{input}' is not a duration: {why} ({DURATION_RULE})");
    if number.is_empty() {
        return Err(bad("it does not start with a whole number"));
    }
    let n: u64 = number.parse().map_err(|_| bad("the number is too large"))?;
    let micros_per: u64 = match unit.trim() {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "" => return Err(bad("the unit is missing")),
        _ => return Err(bad("unknown unit")),
    };
    let micros = n
        .checked_mul(micros_per)
        .ok_or_else(|| bad("it overflows"))?;
    if micros == 0 {
        return Err(bad("it must be more than zero"));
    }
    Ok(Duration::from_micros(micros))
}

/// `10m`, `30s`, `1500ms`: the largest unit that divides the duration exactly.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    for (unit, per) in [
        ("h", 3_600_000_000u128),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us >= per && us % per == 0 {
            return format!("{}{unit}", us / per);
        }
    }
    format!("{us}us")
}

/// Direction, as the spec spells it.
fn op<'de, D: Deserializer<'de>>(d: D) -> Result<crate::options::Op, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "read" => Ok(crate::options::Op::Read),
        "write" => Ok(crate::options::Op::Write),
        _ => Err(serde::de::Error::custom(format!(
            "op '{text}': expected read or write"
        ))),
    }
}

/// A backend gdswap knows (whether this node can run it is the run's business, not the
/// spec's: a known backend that cannot run here fails its test's line with the reason).
fn backend<'de, D: Deserializer<'de>>(d: D) -> Result<BackendId, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<BackendId>()
        .map_err(|e| serde::de::Error::custom(e.to_string()))
}

fn default_queue_depth() -> u32 {
    8
}
fn default_threads() -> usize {
    1
}
fn default_loops() -> u32 {
    3
}
fn default_warmup() -> u32 {
    1
}

/// One workload and the figures it must reach. `threads` and `size` are per target: every
/// target (drive) runs the same workload at the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The test's name, in lines and reports.
    pub name: String,
    /// The backend that moves the data.
    #[serde(deserialize_with = "backend")]
    pub backend: BackendId,
    /// `read` or `write`.
    #[serde(deserialize_with = "op")]
    pub op: crate::options::Op,
    /// Bytes per request.
    pub block_size: Size,
    /// Requests in flight per thread.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
    /// Worker threads per target.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Shuffled request order.
    #[serde(default)]
    pub random: bool,
    /// Directories, one per drive; each must exist. Files `gdswap.<tid>.dat` are created in
    /// them (and filled with the pattern for reads) as `gdswap run --dir` does.
    pub targets: Vec<PathBuf>,
    /// Bytes per loop per target (default 1G).
    #[serde(default)]
    pub size: Option<Size>,
    /// Run for this long (loops repeated until it has passed) instead of a number of loops.
    #[serde(default)]
    pub duration: Option<Span>,
    /// Measured loops (without `duration`).
    #[serde(default = "default_loops")]
    pub loops: u32,
    /// Unmeasured loops run first.
    #[serde(default = "default_warmup")]
    pub warmup: u32,
    /// Check every byte (turned on by a `max_verify_errors` threshold too).
    #[serde(default)]
    pub verify: bool,
    /// CUDA device of the GPU backends.
    #[serde(default)]
    pub gpu: usize,
    /// The drive-to-GPU map of the GPU backends: target i moves its data to and from GPU
    /// `gpus[i]` (as DeepSpeed's folder_to_device_mapping, gdsio's per-job -d); one entry per
    /// target. Without it every target uses `gpu`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<usize>,
    /// The figures the test must reach.
    #[serde(default)]
    pub thresholds: Thresholds,
}

impl TestSpec {
    /// Bytes per loop per target.
    pub fn size(&self) -> u64 {
        self.size.map_or(1 << 30, |s| s.0)
    }

    /// Whether the run checks every byte.
    pub fn verifies(&self) -> bool {
        self.verify || self.thresholds.max_verify_errors.is_some()
    }
}

/// What a test must reach. Every threshold given is one line of the output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// All targets together, GB/s (1e9 bytes per second), at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gbps: Option<f64>,
    /// Each target, GB/s, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gbps_per_target: Option<f64>,
    /// All targets together, requests per second, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_iops: Option<f64>,
    /// 99th percentile latency of a request (the worst target's), at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99: Option<Span>,
    /// 99.9th percentile latency (the worst target's), at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p999: Option<Span>,
    /// Process CPU seconds per GiB moved, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_s_per_gib: Option<f64>,
    /// Bytes found wrong by verification, counted as blocks, at most (usually 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_verify_errors: Option<u64>,
}

/// Why a spec could not be used: one line, naming the file and (where known) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 1-based line holding byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses a spec from `text`; `path` names it in errors and picks the format (`.json`: JSON,
/// anything else: TOML).
pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let shown = path.display();
    let spec: Spec = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| {
            SpecError(format!(
                "spec {shown} line {}: {}",
                e.line(),
                strip_json_position(&e.to_string())
            ))
        })?
    } else {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => SpecError(format!(
                    "spec {shown} line {}: {message}",
                    line_of(text, span.start)
                )),
                None => SpecError(format!("spec {shown}: {message}")),
            }
        })?
    };
    validate(&spec, text).map_err(|(line, why)| match line {
        Some(l) => SpecError(format!("spec {shown} line {l}: {why}")),
        None => SpecError(format!("spec {shown}: {why}")),
    })?;
    Ok(spec)
}

/// serde_json ends its messages with " at line L column C"; the line is said up front.
fn strip_json_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// The line of the `name = "..."` of test `name`, to point cross-field errors at it.
fn line_of_test(text: &str, name: &str) -> Option<usize> {
    let quoted = format!("\"{name}\"");
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            (l.starts_with("name") || l.starts_with("\"name\"")) && l.contains(&quoted)
        })
        .map(|i| i + 1)
}

/// What serde cannot see: at least one test or check, unique test names, targets given, no
/// target twice in a test, and `duration` with `loops` left alone.
fn validate(spec: &Spec, text: &str) -> Result<(), (Option<usize>, String)> {
    let c = &spec.checks;
    let any_check = c.io_uring
        || c.o_direct
        || c.memlock.is_some()
        || c.nvidia_fs
        || c.gpudirect
        || c.pcie_link;
    if spec.tests.is_empty() && !any_check {
        return Err((
            None,
            "has no [[test]] and no [checks] row: nothing to qualify".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &spec.tests {
        let at = line_of_test(text, &t.name);
        if t.name.trim().is_empty() {
            return Err((at, "a test's name is empty".into()));
        }
        if !names.insert(t.name.as_str()) {
            return Err((at, format!("two tests are named '{}'", t.name)));
        }
        if t.targets.is_empty() {
            return Err((
                at,
                format!(
                    "test '{}': targets is empty; name at least one directory",
                    t.name
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &t.targets {
            if !seen.insert(p) {
                return Err((
                    at,
                    format!("test '{}': target {} is listed twice", t.name, p.display()),
                ));
            }
        }
        if !t.gpus.is_empty() && t.gpus.len() != t.targets.len() {
            return Err((
                at,
                format!(
                    "test '{}': gpus maps targets to GPUs: give one per target ({} targets, {} gpus)",
                    t.name,
                    t.targets.len(),
                    t.gpus.len()
                ),
            ));
        }
        for (name, v) in [
            ("min_gbps", t.thresholds.min_gbps),
            ("min_gbps_per_target", t.thresholds.min_gbps_per_target),
            ("min_iops", t.thresholds.min_iops),
            ("max_cpu_s_per_gib", t.thresholds.max_cpu_s_per_gib),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err((
                    at,
                    format!("test '{}': {name} must be a number of at least 0", t.name),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "unit"
[checks]
io_uring = true
memlock = "64K"

[[test]]
name = "seq"
backend = "host"
op = "read"
block_size = "1M"
queue_depth = 4
threads = 2
targets = ["/a", "/b"]
size = "8M"
[test.thresholds]
min_gbps = 1
max_p99 = "20ms"
max_verify_errors = 0
"#;

    fn toml_err(text: &str) -> String {
        parse(Path::new("s.toml"), text).unwrap_err().0
    }

    #[test]
    fn a_good_spec_parses_with_units() {
        let s = parse(Path::new("s.toml"), GOOD).unwrap();
        assert_eq!(s.checks.memlock, Some(Memlock::AtLeast(64 << 10)));
        let t = &s.tests[0];
        assert_eq!(t.block_size, Size(1 << 20));
        assert_eq!(t.size(), 8 << 20);
        assert_eq!(t.thresholds.min_gbps, Some(1.0));
        assert_eq!(t.thresholds.max_p99, Some(Span(Duration::from_millis(20))));
        assert!(t.verifies());
        assert_eq!(t.loops, 3);
    }

    #[test]
    fn errors_name_the_line() {
        let unknown = GOOD.replace("min_gbps = 1", "min_gbs = 1");
        let e = toml_err(&unknown);
        assert!(
            e.starts_with("spec s.toml line 17: unknown field `min_gbs`"),
            "{e}"
        );
        let bad_unit = GOOD.replace("\"1M\"", "\"1Q\"");
        let e = toml_err(&bad_unit);
        assert!(
            e.starts_with("spec s.toml line 11: '1Q' is not a size"),
            "{e}"
        );
        let bad_latency = GOOD.replace("\"20ms\"", "\"20 fortnights\"");
        let e = toml_err(&bad_latency);
        assert!(e.contains("line 18:") && e.contains("unknown unit"), "{e}");
        let wrong_type = GOOD.replace("min_gbps = 1", "min_gbps = \"fast\"");
        let e = toml_err(&wrong_type);
        assert!(
            e.starts_with("spec s.toml line 17: invalid type: string \"fast\""),
            "{e}"
        );
        let backend = GOOD.replace("\"host\"", "\"nvme-of\"");
        let e = toml_err(&backend);
        assert!(
            e.starts_with("spec s.toml line 9: unknown backend 'nvme-of'"),
            "{e}"
        );
        let dup = format!("{GOOD}\n[[test]]\nname = \"seq\"\nbackend = \"host\"\nop = \"read\"\nblock_size = \"1M\"\ntargets = [\"/c\"]\n");
        let e = toml_err(&dup);
        assert!(e.contains("two tests are named 'seq'"), "{e}");
        assert!(e.starts_with("spec s.toml line 8:"), "{e}");
    }

    #[test]
    fn zero_and_unitless_durations_are_refused() {
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("10")
            .unwrap_err()
            .contains("unit is missing"));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        let zero = GOOD.replace("size = \"8M\"", "duration = \"0s\"");
        let e = toml_err(&zero);
        assert!(
            e.starts_with("spec s.toml line 15:") && e.contains("more than zero"),
            "{e}"
        );
    }

    #[test]
    fn json_specs_parse_and_errors_name_the_line() {
        let json = r#"{
  "test": [
    {"name": "j", "backend": "posix", "op": "write", "block_size": 4096,
     "targets": ["/x"], "thresholds": {"min_iops": 10}}
  ]
}"#;
        let s = parse(Path::new("s.json"), json).unwrap();
        assert_eq!(s.tests[0].block_size, Size(4096));
        let bad = json.replace("min_iops", "min_iop");
        let e = parse(Path::new("s.json"), &bad).unwrap_err().0;
        assert!(
            e.starts_with("spec s.json line 4: unknown field `min_iop`"),
            "{e}"
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/qualify-example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let s = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.tests.len(), 3);
        assert_eq!(s.checks.memlock, Some(Memlock::Unlimited));
        assert_eq!(s.tests[2].backend, BackendId::Gds);
    }

    #[test]
    fn an_empty_spec_is_refused() {
        assert!(toml_err("").contains("nothing to qualify"));
    }

    #[test]
    fn the_gpu_map_has_one_gpu_per_target() {
        let s = parse(
            Path::new("s.toml"),
            &GOOD.replace("size = \"8M\"", "gpus = [1, 0]"),
        )
        .unwrap();
        assert_eq!(s.tests[0].gpus, [1, 0]);
        let e = toml_err(&GOOD.replace("size = \"8M\"", "gpus = [1]"));
        assert!(e.contains("line 8: test 'seq': gpus maps targets to GPUs: give one per target (2 targets, 1 gpus)"), "{e}");
    }
}

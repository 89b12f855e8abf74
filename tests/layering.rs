//! The layers of `docs/architecture.md`, checked: a top-level module of `src/` may use a module
//! of its own layer or below, never one above. The layers are listed once, here (`LAYERS`),
//! lowest first, and match the architecture document.
//!
//! `KNOWN_UPWARD` listed the upward edges that stood when this test was written; issue 14's
//! restructuring removed them all, and it is empty. The test fails on any upward edge not in
//! that list, and on any listed edge that is gone, so the list only shrinks.
//!
//! An edge is a `crate::<module>` path (in a `use` or inline) or a name in `use crate::{...}`,
//! in code; comments, doc comments and `#[cfg(test)]` helpers (`testutil`) are left out.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. Modules of one layer may use each other.
const LAYERS: &[&[&str]] = &[
    // core: sizes, figures, errors, options, the verify pattern
    &[
        "size", "stats", "error", "options", "pattern", "request", "types",
    ],
    // the operating system: buffers, files, io_uring, limits; the environment report
    &["io", "env", "topology"],
    // the CUDA driver
    &["cuda"],
    // cuFile (its driver probe uses a CUDA context)
    &["cufile"],
    // how a run is cut into requests, data files, the backends
    &["plan", "datafiles", "backend"],
    // the harness, the swap store, the node check
    &["harness", "numa", "ranks", "rank_merge", "swap", "check"],
    // reports and exporters
    &["report"],
    // orchestration over the harness
    &["compare", "peer", "tuning", "optim_sim", "qualify"],
    &["sweep", "rebuild"],
    &["cli"],
];

/// Upward edges of today's code, (from, to): none left; never to be added to.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Removes `//` comments (doc comments included) line by line; string contents are kept,
/// which is harmless here (no string of the code names `crate::...`).
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn used_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            for part in inner[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_use_only_their_layer_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward: BTreeSet<(String, String)> = BTreeSet::new();
    let mut unlisted = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(from) = layer_of(&top) else {
            unlisted.insert(top);
            continue;
        };
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for used in used_modules(&code) {
            if used == top || used == "testutil" || used == "Error" || used == "Result" {
                continue;
            }
            let Some(to) = layer_of(&used) else {
                unlisted.insert(used);
                continue;
            };
            if to > from {
                upward.insert((top.clone(), used));
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules missing from LAYERS in tests/layering.rs (add each to its layer, and to docs/architecture.md): {unlisted:?}"
    );
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(
        new.is_empty(),
        "modules using a layer above their own (move the shared type down, or the code up): {new:?}"
    );
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "upward edges no longer in the code: remove them from KNOWN_UPWARD in tests/layering.rs: {gone:?}"
    );
}

#[test]
fn the_parser_sees_use_lists_and_inline_paths_but_not_comments() {
    let code = code_only(
        "use crate::{io::sys, plan::Request};\n// crate::cli\nlet x = crate::report::GdsPath::X;\n/// [`crate::sweep`]\n",
    );
    let got: Vec<String> = used_modules(&code).into_iter().collect();
    assert_eq!(got, ["io", "plan", "report"]);
}

/// The layers allowed to hold `unsafe` (in code, not comments): the operating system, the
/// CUDA driver and cuFile (`ffi/` is its own crate). Everything above composes their safe
/// types; the bounce backend's stagers, for one, are safe code over `cuda::copy`.
const UNSAFE_LAYERS: &[&str] = &["io", "cuda", "cufile"];

fn has_unsafe(code: &str) -> bool {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == "unsafe")
}

#[test]
fn unsafe_lives_only_in_io_cuda_and_cufile() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut outside: Vec<String> = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        if UNSAFE_LAYERS.contains(&top) {
            continue;
        }
        if has_unsafe(&code_only(&std::fs::read_to_string(f).unwrap())) {
            outside.push(rel.display().to_string());
        }
    }
    assert!(
        outside.is_empty(),
        "`unsafe` outside io/, cuda/, cufile/ (move it into a safe type there): {outside:?}"
    );
    assert!(has_unsafe("unsafe impl Stager for X {}"));
    assert!(!has_unsafe("fn is_unsafe_path() {}"));
}

/// Flag-like tokens (`--word`) that library strings may hold because they are not gdswap's
/// flags: (file under src/, token). fio's own options (`--bs=...`) are allowed in
/// `peer/fio.rs` as `--name=` tokens; gdsio takes single-dash options.
const FLAG_TEXT_ALLOWED: &[(&str, &str)] = &[
    // the arguments of gdswap's own hidden `cufile-probe` command, run as a child process
    ("cufile/probe.rs", "--path"),
    ("cufile/probe.rs", "--cufile"),
    ("cufile/probe.rs", "--strict"),
    // udevadm's option in the hints for cuFile's 5027 (udev properties missing)
    ("types/cufile_error.rs", "--subsystem-match"),
    ("check/udev.rs", "--subsystem-match"),
    // cargo's options in the how-to-build hint
    ("ranks.rs", "--release"),
    ("ranks.rs", "--features"),
    // fio's options without a value
    ("peer/fio.rs", "--group_reporting"),
    ("peer/fio.rs", "--stonewall"),
    ("peer/fio.rs", "--time_based"),
];

/// The string literals of `code` (comments already removed): "..." and r#"..."#.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\'' {
            // a char literal such as '"' (lifetimes have no closing quote within 3 bytes)
            if b.get(i + 2) == Some(&b'\'')
                || (b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\''))
            {
                i += if b[i + 1] == b'\\' { 4 } else { 3 };
                continue;
            }
        }
        if b[i] == b'r' && b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') {
            let end = code[i + 3..].find("\"#").map_or(b.len(), |e| i + 3 + e);
            out.push(code[i + 3..end].to_string());
            i = end + 2;
            continue;
        }
        if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push(code[i + 1..j.min(b.len())].to_string());
            i = j + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// `--word` tokens in `text`, with whether a `=` follows.
fn flag_tokens(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let word: String = rest[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let after = rest[i + 2 + word.len()..].starts_with('=');
        if before_ok && word.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push((format!("--{word}"), after));
        }
        rest = &rest[i + 2 + word.len()..];
    }
    out
}

/// The code of a file before its `#[cfg(test)]` module (tests may spell flags).
fn without_tests(code: &str) -> &str {
    match code.find("#[cfg(test)]\nmod tests") {
        Some(i) => &code[..i],
        None => code,
    }
}

/// Library text names settings (`error::Setting`), never gdswap's flags: the CLI renders a
/// setting as its flag when it prints (cli/flags.rs). Only `cli/` spells flags.
#[test]
fn library_strings_spell_no_flag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        if rel.starts_with("cli/") || rel == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = code_only(without_tests(&text));
        for s in string_literals(&code) {
            for (token, with_value) in flag_tokens(&s) {
                let fio_style = rel == "peer/fio.rs" && with_value;
                let allowed = FLAG_TEXT_ALLOWED
                    .iter()
                    .any(|(file, t)| rel == *file && token == *t);
                if !fio_style && !allowed {
                    found.push(format!("{rel}: {token} in {s:?}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "library strings spelling a flag (name the error::Setting in a Message instead; the CLI renders it as a flag):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_flag_scanner_sees_flags_in_strings_only() {
    let code = code_only("let a = \"use --size\"; // \"--loops\"\nlet c = '\"'; let b = r#\"x --dir y\"#; let d = \"a--b --x=1\";");
    let got: Vec<(String, bool)> = string_literals(&code)
        .iter()
        .flat_map(|s| flag_tokens(s))
        .collect();
    assert_eq!(
        got,
        [
            ("--size".to_string(), false),
            ("--dir".to_string(), false),
            ("--x".to_string(), true)
        ]
    );
}

//! What the command line says about itself: every default `--help` shows is one the parser
//! takes back, no value is offered that the parser refuses, each flag states one default, and
//! a default `compare` says why a backend is unavailable once, briefly, without the list of
//! every libcuda name looked for (that list is `gdswap backends -v`'s).

#[macro_use]
mod common;

use common::cuda::{system_has_libcuda, without_cuda};
use common::*;

/// `gdswap <command> --help`, as a user sees it on a pipe.
fn help(command: &str) -> String {
    ok(argv![command, "--help"]).stdout
}

/// Each option's paragraph in a help text: `(flag, text)`, the text's lines joined by single
/// spaces (clap wraps long lines, even inside `[default: ...]`).
fn options(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        let starts_option = line.starts_with("  ") && (t.starts_with("--") || t.starts_with("-"));
        if starts_option && line.len() - t.len() <= 6 {
            let flag = t
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or(t)
                .to_string();
            out.push((flag, t.to_string()));
        } else if let Some((_, text)) = out.last_mut() {
            if t.is_empty() {
                continue;
            }
            // Lines after the options (after_help) start at column 0: not part of a paragraph.
            if !line.starts_with(' ') {
                break;
            }
            text.push(' ');
            text.push_str(t);
        }
    }
    out
}

/// The `[default: X]` of each option that shows one.
fn defaults(help: &str) -> Vec<(String, String)> {
    options(help)
        .into_iter()
        .filter_map(|(flag, text)| {
            let start = text.find("[default: ")? + "[default: ".len();
            let end = start + text[start..].find(']')?;
            Some((flag, text[start..end].to_string()))
        })
        .collect()
}

/// Passes every default of `command --help` back explicitly, plus one value that the command
/// refuses after parsing (`breaker`): the parser must take every default (exit status 1 with
/// the breaker's own error, not 2 with a usage error).
fn defaults_parse(command: &str, extra: Vec<std::ffi::OsString>, breaker: [&str; 2]) {
    let h = help(command);
    let found = defaults(&h);
    assert!(
        found.len() >= 3,
        "too few defaults found in `{command} --help`: {found:?}\n{h}"
    );
    let mut args = argv![command];
    for (flag, value) in &found {
        if flag != breaker[0] && !extra.iter().any(|a| a == flag.as_str()) {
            args.push(flag.into());
            args.push(value.into());
        }
    }
    args.extend(extra);
    args.push(breaker[0].into());
    args.push(breaker[1].into());
    let msg = outcome(&mut gdswap(args)).expect_error();
    assert!(
        msg.starts_with(&format!("{}: ", breaker[0])),
        "`{command}` with its help's defaults {found:?} failed otherwise: {msg}"
    );
}

#[test]
fn sweep_help_shows_defaults_the_parser_takes() {
    let d = scratch();
    defaults_parse(
        "sweep",
        argv!["--dir", d.path().join("d"), "--out", d.path().join("out")],
        ["--rounds", "0"],
    );
    // The grid's lists in the form the flags take them.
    let h = help("sweep");
    for want in [
        "[default: 128K,1M,8M]",
        "[default: 1,8,32]",
        "[default: 1,2]",
    ] {
        assert!(h.contains(want), "no {want} in:\n{h}");
    }
    assert!(!d.path().join("out").exists(), "a refused sweep made --out");
}

#[test]
fn run_compare_and_optim_sim_help_show_defaults_the_parser_takes() {
    let d = scratch();
    defaults_parse("run", argv!["--dir", d.path().join("d")], ["--size", "0"]);
    defaults_parse(
        "compare",
        argv!["--dir", d.path().join("d")],
        ["--size", "0"],
    );
    defaults_parse(
        "optim-sim",
        argv!["--dir", d.path().join("o")],
        ["--buffers", "0"],
    );
    assert!(!d.path().join("d").exists() && !d.path().join("o").exists());
}

#[test]
fn optim_sim_help_offers_only_modes_it_takes() {
    let h = help("optim-sim");
    let (_, mode) = options(&h)
        .into_iter()
        .find(|(f, _)| f == "--mode")
        .unwrap_or_else(|| panic!("no --mode in:\n{h}"));
    assert!(
        mode.contains("[possible values: serial, pipelined]"),
        "{mode}"
    );
    // `both` is not a value of --mode (the parser refuses it), so the help must not offer it.
    assert!(!mode.contains("both"), "{mode}");
    let d = scratch();
    let out = outcome(&mut gdswap(argv![
        "optim-sim",
        "--dir",
        d.path(),
        "--mode",
        "both"
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn every_option_states_at_most_one_default() {
    for command in ["run", "compare", "sweep", "optim-sim", "check", "report"] {
        let h = help(command);
        for (flag, text) in options(&h) {
            let n = text.to_lowercase().matches("default:").count();
            assert!(
                n <= 1,
                "`{command} --help` states {n} defaults for {flag}: {text}"
            );
        }
    }
}

#[test]
fn compare_help_names_both_default_peers() {
    let h = help("compare");
    let line = h
        .lines()
        .find(|l| l.starts_with("With no options:"))
        .unwrap_or_else(|| panic!("no 'With no options' line in:\n{h}"));
    assert!(line.contains("fio") && line.contains("gdsio"), "{line}");
    let (_, peers) = options(&h)
        .into_iter()
        .find(|(f, _)| f == "--peers")
        .unwrap();
    assert!(peers.contains("[default: fio,gdsio]"), "{peers}");
}

/// A default compare on a machine without libcuda: one short note per GPU backend, and the
/// libcuda search list nowhere; the table names the skipped backends without repeating why.
#[test]
fn compare_without_libcuda_says_why_once_and_briefly() {
    if system_has_libcuda() {
        eprintln!("note: skipping: this machine has a real libcuda");
        return;
    }
    let d = scratch();
    let mut cmd = gdswap(argv![
        "compare",
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--peers",
        "none",
        "--create-dir",
        "--dir",
        d.path().join("d")
    ]);
    without_cuda(&mut cmd);
    let out = outcome(&mut cmd).expect_ok();
    let all = format!("{}{}", out.stderr, out.stdout);
    let list = gdswap::cuda::driver::search_names().join(", ");
    assert!(
        !all.contains(&list),
        "the libcuda search list printed:\n{all}"
    );
    for b in ["bounce", "gds"] {
        let prefix = format!("note: skipping backend {b}: ");
        let notes: Vec<&str> = all.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(notes.len(), 1, "{all}");
        assert!(notes[0].len() <= 200, "a long note: {}", notes[0]);
        assert!(notes[0].contains("libcuda"), "{}", notes[0]);
        assert!(notes[0].contains("gdswap backends -v"), "{}", notes[0]);
        assert_eq!(all.matches(&format!("backend {b}:")).count(), 1, "{all}");
    }
    assert!(
        out.stdout
            .contains("skipped (the notes say why): backend bounce, backend gds\n"),
        "{}",
        out.stdout
    );
}

//! How the command line names the library's settings: each [`Setting`] is a flag (or an
//! environment variable), and an error prints with the flags in it ([`render`]), plus the
//! hints only a command line can give (which command writes a missing file, ...).

use crate::error::{Error, FileRole, Setting};

/// The flag (or environment variable) that sets `s`, as typed on the command line.
pub fn flag(s: Setting) -> &'static str {
    match s {
        Setting::Backend => "--backend",
        Setting::Backends => "--backends",
        Setting::Peers => "--peers",
        Setting::Op => "--op",
        Setting::File => "--file",
        Setting::Dir => "--dir",
        Setting::CreateDir => "--create-dir",
        Setting::Size => "--size",
        Setting::BlockSize => "--block-size",
        Setting::QueueDepth => "--queue-depth",
        Setting::Threads => "--threads",
        Setting::Loops => "--loops",
        Setting::Warmup => "--warmup",
        Setting::Rounds => "--rounds",
        Setting::Random => "--random",
        Setting::Seed => "--seed",
        Setting::Verify => "--verify",
        Setting::Buffered => "--buffered",
        Setting::DropCaches => "--drop-caches",
        Setting::FixedBuffers => "--fixed-buffers",
        Setting::RingSetup => "--ring-setup",
        Setting::RingSubmit => "--ring-submit",
        Setting::RingWait => "--ring-wait",
        Setting::RegisterFiles => "--register-files",
        Setting::RingOpcode => "--ring-opcode",
        Setting::HugePages => "--huge-pages",
        Setting::Buffer => "--buffer",
        Setting::Config => "--config",
        Setting::Gpu => "--gpu",
        Setting::BounceBuffers => "--bounce-buffers",
        Setting::BounceMode => "--bounce-mode",
        Setting::GdsApi => "--gds-api",
        Setting::NoRegister => "--no-register",
        Setting::RequireGpudirect => "--require-gpudirect",
        Setting::Resume => "--resume",
        Setting::Out => "--out",
        Setting::Params => "--params",
        Setting::SubGroupSize => "--sub-group-size",
        Setting::Steps => "--steps",
        Setting::WarmupSteps => "--warmup-steps",
        Setting::Buffers => "--buffers",
        Setting::IoThreads => "--io-threads",
        Setting::Path => "--path",
        Setting::Json => "--json",
        Setting::Csv => "--csv",
        Setting::Markdown => "--markdown",
        Setting::Svg => "--svg",
        Setting::Duration => "--duration",
        Setting::MaxErrors => "--max-errors",
        Setting::OpenDriver => "--open-driver",
        Setting::Spec => "--spec",
        Setting::Numa => "--numa",
        Setting::Gpus => "--gpus",
        Setting::Env(var) => var,
    }
}

/// An error's one line as the command line prints it: settings as flags, and the hints that
/// name commands.
pub fn render(e: &Error) -> String {
    match e {
        Error::Within { context, source } => {
            format!("{}: {}", context.render(&flag), render(source))
        }
        Error::FileTooSmall {
            path,
            actual,
            needed,
        } => format!(
            "{}: file holds {actual} bytes but the run reads up to byte {needed}; lower --size or write the file first (gdswap run --op write --file ...)",
            path.display()
        ),
        Error::BadFile {
            role: FileRole::SavedResult,
            path,
            message,
        } => format!("gdswap report {}: {}", path.display(), message.render(&flag)),
        e => e.render(&flag),
    }
}

/// `compare::resolve` skips a backend that refuses the workload, with the refusal's text as
/// the reason; the command line gives that text with flags, as it prints every error.
pub(crate) fn skip_reasons_with_flags(spec: &mut crate::compare::CompareSpec) {
    use crate::report::comparison::ContenderKind;
    for k in &mut spec.skipped {
        if !matches!(k.kind, ContenderKind::Backend) {
            continue;
        }
        let Ok(backend) = k.name.parse() else {
            continue;
        };
        let opts = crate::options::RunOptions {
            backend,
            ..spec.base.clone()
        };
        if let Err(e) = opts.validate() {
            if e.to_string() == k.reason.to_string() {
                k.reason = render(&e).into();
            }
        }
    }
}

/// The text of an error at the binary's edge: the context chain anyhow carries, each gdswap
/// error in it printed with flags (its own causes are in its text already, so the chain stops
/// there).
pub fn report(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(lib) = cause.downcast_ref::<Error>() {
            parts.push(render(lib));
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Message;

    /// Every setting has a flag of its own, spelled as clap spells it (`--` and kebab case,
    /// from the library name), and no two settings share one.
    #[test]
    fn each_setting_has_its_own_flag() {
        let all = [
            Setting::Backend,
            Setting::Backends,
            Setting::Peers,
            Setting::Op,
            Setting::File,
            Setting::Dir,
            Setting::CreateDir,
            Setting::Size,
            Setting::BlockSize,
            Setting::QueueDepth,
            Setting::Threads,
            Setting::Loops,
            Setting::Warmup,
            Setting::Rounds,
            Setting::Random,
            Setting::Seed,
            Setting::Verify,
            Setting::Buffered,
            Setting::DropCaches,
            Setting::FixedBuffers,
            Setting::RingSetup,
            Setting::RingSubmit,
            Setting::RingWait,
            Setting::RegisterFiles,
            Setting::RingOpcode,
            Setting::HugePages,
            Setting::Buffer,
            Setting::Config,
            Setting::Gpu,
            Setting::BounceBuffers,
            Setting::BounceMode,
            Setting::GdsApi,
            Setting::RequireGpudirect,
            Setting::Resume,
            Setting::Out,
            Setting::Params,
            Setting::SubGroupSize,
            Setting::Steps,
            Setting::WarmupSteps,
            Setting::Buffers,
            Setting::IoThreads,
            Setting::Path,
            Setting::NoRegister,
            Setting::Json,
            Setting::Csv,
            Setting::Markdown,
            Setting::Svg,
            Setting::Duration,
            Setting::MaxErrors,
            Setting::OpenDriver,
            Setting::Spec,
        ];
        let mut seen = std::collections::HashSet::new();
        for s in all {
            let f = flag(s);
            assert_eq!(f, format!("--{}", s.name().replace('_', "-")), "{s:?}");
            assert!(seen.insert(f), "{f} twice");
        }
        assert_eq!(flag(Setting::Env("GDSWAP_DATA_DIR")), "GDSWAP_DATA_DIR");
    }

    /// The library names settings by field, the command line by flag, in the same error,
    /// nested errors included.
    #[test]
    fn errors_print_with_flags_on_the_command_line_only() {
        let e = Error::Within {
            context: "host (round 1 of 3)".into(),
            source: Box::new(Error::invalid(
                Setting::BlockSize,
                crate::error::msg!["6KiB is larger than ", Setting::Size, " 4KiB"],
            )),
        };
        assert_eq!(
            e.to_string(),
            "host (round 1 of 3): block_size: 6KiB is larger than size 4KiB"
        );
        assert_eq!(
            render(&e),
            "host (round 1 of 3): --block-size: 6KiB is larger than --size 4KiB"
        );
        let chained = anyhow::Error::new(e).context("gdswap compare");
        assert_eq!(
            report(&chained),
            "gdswap compare: host (round 1 of 3): --block-size: 6KiB is larger than --size 4KiB"
        );
        let plain: Message = "no settings here".into();
        assert_eq!(plain.render(&flag), plain.to_string());
    }
}

//! The library's error type.
//!
//! Every error says what was being done, to which path, and where: an I/O error carries the
//! operation, the file, the offset and the length (as glommio does), so a failed run points at
//! the request that failed. Limits that need an administrator (memlock, io_uring disabled) get
//! variants of their own with the fix in the message. Nothing below the CLI prints or exits.
//!
//! Errors speak of settings, not of command-line flags: a value that cannot work is an
//! [`Error::InvalidOption`] naming its [`Setting`], and a message that mentions settings holds
//! them typed ([`Message`]). `Display` names a setting by its field name (`block_size`); the
//! command line prints the same error with its flags (`--block-size`) through
//! [`Error::render`].

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::size::Bytes;

/// A transfer direction or file operation, for error messages and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Opening an existing file.
    Open,
    /// Creating a file.
    Create,
    /// Changing a file's length (or removing it).
    Resize,
    /// fdatasync.
    Sync,
    /// stat or statfs.
    Stat,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::Read => "read",
            FileOp::Write => "write",
            FileOp::Open => "open",
            FileOp::Create => "create",
            FileOp::Resize => "resize",
            FileOp::Sync => "fdatasync",
            FileOp::Stat => "stat",
        })
    }
}

/// A setting an error can name: a field of the run, compare, sweep or swap-store options, or
/// the environment. The library prints it by [`Setting::name`]; the command line by its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// The backend of a run or swap store.
    Backend,
    /// The backends a compare or sweep measures.
    Backends,
    /// The peer tools a compare measures (fio, gdsio).
    Peers,
    /// Read or write.
    Op,
    /// One data file shared by the threads.
    File,
    /// A data directory, one file per thread.
    Dir,
    /// Whether a missing data directory is created.
    CreateDir,
    /// Bytes per loop, all threads together.
    Size,
    /// Bytes per request.
    BlockSize,
    /// Requests in flight per thread.
    QueueDepth,
    /// Worker threads.
    Threads,
    /// Measured loops.
    Loops,
    /// Unmeasured loops first.
    Warmup,
    /// Rounds of a compare or sweep.
    Rounds,
    /// Random block order.
    Random,
    /// Seed of the data pattern.
    Seed,
    /// Read back and check every byte.
    Verify,
    /// Through the page cache instead of O_DIRECT.
    Buffered,
    /// Drop the page cache before each loop.
    DropCaches,
    /// io_uring registered buffers and files.
    FixedBuffers,
    /// io_uring setup flags (host engine).
    RingSetup,
    /// When queued requests are submitted (host engine).
    RingSubmit,
    /// Completions waited for per wake-up (host engine).
    RingWait,
    /// io_uring registered files (host engine).
    RegisterFiles,
    /// READ vs READV opcodes (host engine).
    RingOpcode,
    /// Page backing of the I/O buffers.
    HugePages,
    /// Full-range or ring buffers.
    Buffer,
    /// A tuning config file.
    Config,
    /// The CUDA device.
    Gpu,
    /// Pinned chunks per thread (bounce).
    BounceBuffers,
    /// Pipelined or serial staging (bounce).
    BounceMode,
    /// How cuFile is called (gds).
    GdsApi,
    /// Device buffers not registered with cuFile (gds).
    NoRegister,
    /// Fail on cuFile's compat mode (gds).
    RequireGpudirect,
    /// A sweep's points file to resume.
    Resume,
    /// An output directory.
    Out,
    /// Parameters of the simulated model (optim-sim).
    Params,
    /// Parameters per swapped group (optim-sim).
    SubGroupSize,
    /// Optimizer steps (optim-sim).
    Steps,
    /// Unmeasured optimizer steps (optim-sim).
    WarmupSteps,
    /// Swap buffers in flight (optim-sim).
    Buffers,
    /// A swap store's I/O threads.
    IoThreads,
    /// The path `check` examines.
    Path,
    /// Where the JSON result goes.
    Json,
    /// Where the CSV result goes.
    Csv,
    /// Where the Markdown report goes.
    Markdown,
    /// Where the SVG plots go.
    Svg,
    /// How long a time-based run's measured loops go on.
    Duration,
    /// How many wrong blocks a soak tolerates.
    MaxErrors,
    /// Whether `check` opens the cuFile driver without a CUDA driver.
    OpenDriver,
    /// A qualification spec file.
    Spec,
    /// NUMA placement of the worker threads.
    Numa,
    /// The GPU of each target.
    Gpus,
    /// An environment variable (`GDSWAP_DATA_DIR`, ...), by name.
    Env(&'static str),
}

impl Setting {
    /// The setting's name in the library: the options field that holds it (`block_size`), or
    /// the environment variable.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Backend => "backend",
            Setting::Backends => "backends",
            Setting::Peers => "peers",
            Setting::Op => "op",
            Setting::File => "file",
            Setting::Dir => "dir",
            Setting::CreateDir => "create_dir",
            Setting::Size => "size",
            Setting::BlockSize => "block_size",
            Setting::QueueDepth => "queue_depth",
            Setting::Threads => "threads",
            Setting::Loops => "loops",
            Setting::Warmup => "warmup",
            Setting::Rounds => "rounds",
            Setting::Random => "random",
            Setting::Seed => "seed",
            Setting::Verify => "verify",
            Setting::Buffered => "buffered",
            Setting::DropCaches => "drop_caches",
            Setting::FixedBuffers => "fixed_buffers",
            Setting::RingSetup => "ring_setup",
            Setting::RingSubmit => "ring_submit",
            Setting::RingWait => "ring_wait",
            Setting::RegisterFiles => "register_files",
            Setting::RingOpcode => "ring_opcode",
            Setting::HugePages => "huge_pages",
            Setting::Buffer => "buffer",
            Setting::Config => "config",
            Setting::Gpu => "gpu",
            Setting::BounceBuffers => "bounce_buffers",
            Setting::BounceMode => "bounce_mode",
            Setting::GdsApi => "gds_api",
            Setting::NoRegister => "no_register",
            Setting::RequireGpudirect => "require_gpudirect",
            Setting::Resume => "resume",
            Setting::Out => "out",
            Setting::Params => "params",
            Setting::SubGroupSize => "sub_group_size",
            Setting::Steps => "steps",
            Setting::WarmupSteps => "warmup_steps",
            Setting::Buffers => "buffers",
            Setting::IoThreads => "io_threads",
            Setting::Path => "path",
            Setting::Json => "json",
            Setting::Csv => "csv",
            Setting::Markdown => "markdown",
            Setting::Svg => "svg",
            Setting::Duration => "duration",
            Setting::MaxErrors => "max_errors",
            Setting::OpenDriver => "open_driver",
            Setting::Spec => "spec",
            Setting::Numa => "numa",
            Setting::Gpus => "gpus",
            Setting::Env(var) => var,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One part of a [`Message`]: text, or a setting printed by whoever prints the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A setting: its name in the library, its flag on the command line.
    Setting(Setting),
}

impl From<Setting> for Piece {
    fn from(s: Setting) -> Piece {
        Piece::Setting(s)
    }
}

impl From<String> for Piece {
    fn from(s: String) -> Piece {
        Piece::Text(s)
    }
}

impl From<&str> for Piece {
    fn from(s: &str) -> Piece {
        Piece::Text(s.to_string())
    }
}

/// An error's text that may mention settings, kept typed so that each printer names them its
/// own way. Inside gdswap, `error::msg![Setting::Size, " is not a multiple of ",
/// Setting::BlockSize]` builds one; plain text converts with `into()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message(pub Vec<Piece>);

impl Message {
    /// The text with each setting named by `name`.
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Setting(s) => out.push_str(name(*s)),
            }
        }
        out
    }

    /// This message followed by `other`'s pieces.
    pub fn join(mut self, other: &Message) -> Message {
        self.0.extend(other.0.iter().cloned());
        self
    }

    /// Appends pieces.
    pub fn push(&mut self, piece: impl Into<Piece>) {
        self.0.push(piece.into());
    }

    /// Whether a text piece contains `needle`.
    pub fn contains_text(&self, needle: &str) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::Text(t) if t.contains(needle)))
    }

    /// Whether it holds no text and no setting.
    pub fn is_empty(&self) -> bool {
        self.0
            .iter()
            .all(|p| matches!(p, Piece::Text(t) if t.is_empty()))
    }
}

impl fmt::Display for Message {
    /// Names each setting as the current [`SettingNames`] scope does: by its field
    /// (`block_size`) in the library, by its flag (`--block-size`) under the CLI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&setting_name))
    }
}

/// Written as its text, each setting named as [`Display`](fmt::Display) names it.
impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A saved message reads back as text (its settings were named when it was written).
impl<'de> serde::Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Message, D::Error> {
        String::deserialize(d).map(Message::from)
    }
}

thread_local! {
    static SETTING_NAMES: std::cell::Cell<fn(Setting) -> &'static str> =
        const { std::cell::Cell::new(Setting::name) };
}

/// How a setting is named on this thread when a [`Message`] is displayed or serialised:
/// [`Setting::name`] unless a [`SettingNames`] scope says otherwise.
pub fn setting_name(s: Setting) -> &'static str {
    SETTING_NAMES.with(|n| n.get())(s)
}

/// A scope in which messages on this thread name settings with another function: the CLI
/// opens one around a command with its setting-to-flag map, so the text users see (errors,
/// warnings and hints, skip reasons, check rows, JSON and Markdown) names the flags they
/// type, while a library user's messages name the settings. The previous naming comes back
/// when the scope is dropped.
pub struct SettingNames {
    previous: fn(Setting) -> &'static str,
}

impl SettingNames {
    /// Names settings with `name` on this thread until the returned scope is dropped.
    pub fn scope(name: fn(Setting) -> &'static str) -> SettingNames {
        SettingNames {
            previous: SETTING_NAMES.with(|n| n.replace(name)),
        }
    }
}

impl Drop for SettingNames {
    fn drop(&mut self) {
        let previous = self.previous;
        SETTING_NAMES.with(|n| n.set(previous));
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message(vec![Piece::Text(s)])
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message(vec![Piece::Text(s.to_string())])
    }
}

impl From<&String> for Message {
    fn from(s: &String) -> Message {
        Message(vec![Piece::Text(s.clone())])
    }
}

impl From<Setting> for Message {
    fn from(s: Setting) -> Message {
        Message(vec![Piece::Setting(s)])
    }
}

/// A [`Message`] from pieces: strings (`&str`, `String`, `format!(...)`) and [`Setting`]s.
macro_rules! msg {
    ($($piece:expr),* $(,)?) => {
        $crate::error::Message(vec![$($crate::error::Piece::from($piece)),*])
    };
}
pub(crate) use msg;

/// Where a verification found the first wrong byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The file the bytes came from.
    pub path: PathBuf,
    /// Offset in the file of the first byte that differs.
    pub offset: u64,
    /// The pattern's byte there.
    pub expected: u8,
    /// The byte read.
    pub found: u8,
    /// What the block header at that place says, decoded, when it could be (a [`Message`]:
    /// it may name the seed setting).
    pub header_note: Message,
}

impl VerifyFailure {
    fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        format!(
            "{} at offset {}: expected byte 0x{:02x}, found 0x{:02x}{}",
            self.path.display(),
            self.offset,
            self.expected,
            self.found,
            self.header_note.render(name)
        )
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Setting::name))
    }
}

/// A file gdswap read and cannot use, by the role it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The file of a setting (a config, a sweep's points to resume).
    Setting(Setting),
    /// A file of a swap store (its manifest, data file or lock).
    SwapStore,
    /// A saved result given to be rebuilt into a report.
    SavedResult,
}

impl FileRole {
    fn render(self, name: &dyn Fn(Setting) -> &'static str) -> &'static str {
        match self {
            FileRole::Setting(s) => name(s),
            FileRole::SwapStore => "swap store",
            FileRole::SavedResult => "saved result",
        }
    }
}

/// Everything that can go wrong in the library, as values: each names the operation, the path
/// and offset, or the setting involved. `Display` names settings by their field names; the
/// command line prints with flags ([`Error::render`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A request failed or came back short where that is an error.
    Io {
        /// What the request did.
        op: FileOp,
        /// The file.
        path: PathBuf,
        /// Byte offset of the request in the file.
        offset: u64,
        /// Its length.
        len: u64,
        /// What the kernel said.
        source: io::Error,
    },
    /// A whole-file operation failed (open, create, fdatasync, ...).
    File {
        /// What was done.
        op: FileOp,
        /// The file.
        path: PathBuf,
        /// What to do about it, when the errno says (may name settings).
        hint: Message,
        /// What the kernel said.
        source: io::Error,
    },
    /// A setting has a value gdswap cannot run with.
    InvalidOption {
        /// The setting refused.
        setting: Setting,
        /// Why, and what would work.
        message: Message,
    },
    /// The file exists but is shorter than the range the run reads.
    FileTooSmall {
        /// The file.
        path: PathBuf,
        /// Its length.
        actual: u64,
        /// The end of the range the run reads.
        needed: u64,
    },
    /// RLIMIT_MEMLOCK is below what locked or registered memory needs.
    Memlock {
        /// What needs the locked memory (may name settings).
        what: Message,
        /// Bytes needed.
        needed: u64,
        /// RLIMIT_MEMLOCK.
        limit: u64,
        /// The other way out besides raising the limit (may name settings).
        hint: Message,
    },
    /// Memory for what was asked cannot be had (or is known not to be there).
    OutOfMemory(Message),
    /// The filesystem has too little free space for what a run must write.
    NoSpace {
        /// The directory whose filesystem was asked.
        dir: PathBuf,
        /// Bytes free there.
        free: u64,
        /// Bytes the run must write.
        needed: u64,
    },
    /// Huge pages were asked for and cannot be had as asked.
    HugePages(Message),
    /// io_uring refused a registration or submission.
    IoUring {
        /// What was asked of it (may name settings).
        what: Message,
        /// What the kernel said.
        source: io::Error,
    },
    /// A thread (a run's worker, a swap store's I/O thread) could not be started.
    Thread {
        /// Which thread (may name settings).
        what: Message,
        /// What the system said.
        source: io::Error,
    },
    /// The CUDA driver library cannot be loaded or initialised; the reason says why.
    CudaUnavailable(String),
    /// A library (CUDA, cuFile) returned something its documentation rules out.
    DriverContract(String),
    /// cuFile cannot do what was asked as it is set up: another libcufile already open, a
    /// file registered through another, an API this libcufile lacks.
    CuFileSetup(String),
    /// A tensor used in a way its type or layout does not allow (a typed view of the wrong
    /// element size, a shape whose bytes overflow, a host view of device memory).
    Tensor(String),
    /// A swap store whose manifest contradicts itself (overlapping extents, sizes past 64
    /// bits).
    CorruptStore(String),
    /// Results that should agree do not (`optim-sim`'s swapped state against the same steps in
    /// memory).
    Mismatch(String),
    /// A report or probe outcome could not be serialised.
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// serde's error.
        source: serde_json::Error,
    },
    /// A signal handler could not be installed.
    Signal(io::Error),
    /// A bug in gdswap: a state that cannot happen did (the message says which).
    Internal(String),
    /// A backend cannot run on this machine; `reason` says why and how to fix it.
    Unavailable {
        /// The backend.
        backend: String,
        /// Why, and how to fix it (may name settings).
        reason: Message,
    },
    /// A CUDA driver call failed, with the driver's `CUresult`.
    Cuda {
        /// The call and what it was for (`cuMemAlloc of 1 MiB on device 0`; may name settings).
        op: Message,
        /// The `CUresult` number.
        code: u32,
        /// Its name (`CUDA_ERROR_OUT_OF_MEMORY`), when the driver knows the code.
        name: Option<String>,
        /// Its description (`out of memory`), when the driver gives one.
        description: Option<String>,
    },
    /// Data read back differs from the pattern.
    Verify(Box<VerifyFailure>),
    /// Dropping the page cache was asked for and is not permitted.
    DropCaches(io::Error),
    /// Another worker failed first; this one stopped at a barrier.
    Aborted,
    /// A cuFile call failed: the call, file, offset and the code's name and number.
    CuFile(Box<crate::types::CuFileError>),
    /// A worker thread panicked: a bug in gdswap.
    WorkerPanicked(usize),
    /// Running as one rank of a parallel job (MPI) is not possible, or the ranks disagree.
    Ranks(String),
    /// An error inside one step of a larger job (a compare round, a sweep point), saying which.
    Within {
        /// The step (may name settings).
        context: Message,
        /// What went wrong in it.
        source: Box<Error>,
    },
    /// A peer tool (fio, gdsio) failed, or printed something gdswap cannot read.
    Peer {
        /// The tool.
        tool: String,
        /// What went wrong (it may name settings).
        message: Message,
    },
    /// Stopped on request (Ctrl-C) between two measurements.
    Interrupted,
    /// A swap store operation on one tensor failed or was refused; the message says why.
    Swap {
        /// The tensor's name.
        tensor: String,
        /// Why (may name settings).
        message: Message,
    },
    /// A path gdswap refuses to open as a data or result file: a symbolic link, not a regular
    /// file, or (to be written) a file this user does not own; `reason` says which.
    UnsafeFile {
        /// The path.
        path: PathBuf,
        /// Why it is refused (may name settings).
        reason: Message,
    },
    /// A saved results, config or store file gdswap cannot use.
    BadFile {
        /// What the file is to gdswap (the setting that named it, a store's file, ...).
        role: FileRole,
        /// The file.
        path: PathBuf,
        /// What is wrong with it (may name settings).
        message: Message,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error's one-line text, naming each setting by `name`: [`Setting::name`] for
    /// `Display`, the flag for the command line.
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        match self {
            Error::Io {
                op,
                path,
                offset,
                len,
                source,
            } => format!(
                "{op} failed: {} at offset {offset} (length {len}): {source}",
                path.display()
            ),
            Error::File {
                op,
                path,
                hint,
                source,
            } => format!(
                "{op} failed: {}: {source}{}",
                path.display(),
                hint.render(name)
            ),
            Error::InvalidOption { setting, message } => {
                format!("{}: {}", name(*setting), message.render(name))
            }
            Error::FileTooSmall {
                path,
                actual,
                needed,
            } => format!(
                "{}: file holds {actual} bytes but the run reads up to byte {needed}; lower {} or write the file first (with op write)",
                path.display(),
                name(Setting::Size),
            ),
            Error::Memlock {
                what,
                needed,
                limit,
                hint,
            } => format!(
                "memlock limit too low: {} needs {} locked, RLIMIT_MEMLOCK is {}; raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf) or {}",
                what.render(name),
                Bytes(*needed),
                Bytes(*limit),
                hint.render(name)
            ),
            Error::OutOfMemory(m) | Error::HugePages(m) => m.render(name),
            Error::NoSpace { dir, free, needed } => format!(
                "no space: {} has {} free, the run must write {}; lower {} or free space",
                dir.display(),
                Bytes(*free),
                Bytes(*needed),
                name(Setting::Size)
            ),
            Error::IoUring { what, source } | Error::Thread { what, source } => {
                format!("{}: {source}", what.render(name))
            }
            Error::CudaUnavailable(reason) => format!("CUDA unavailable: {reason}"),
            Error::DriverContract(m)
            | Error::CuFileSetup(m)
            | Error::Tensor(m)
            | Error::CorruptStore(m)
            | Error::Mismatch(m)
            | Error::Internal(m) => m.clone(),
            Error::Serialize { what, source } => format!("serialising {what}: {source}"),
            Error::Signal(e) => format!("cannot install the Ctrl-C handler: {e}"),
            Error::Unavailable { backend, reason } => {
                format!("backend '{backend}' unavailable: {}", reason.render(name))
            }
            Error::Cuda {
                op,
                code,
                name: code_name,
                description,
            } => {
                let op = op.render(name);
                match (code_name, description) {
                    (Some(n), Some(d)) => format!("{op} failed: {n} ({code}): {d}"),
                    (Some(n), None) => format!("{op} failed: {n} ({code})"),
                    _ => format!(
                        "{op} failed: CUDA error {code} (a code this driver does not describe)"
                    ),
                }
            }
            Error::Verify(v) => format!("verify failed: {}", v.render(name)),
            Error::DropCaches(e) => format!(
                "{0}: cannot write /proc/sys/vm/drop_caches: {e} (needs root; run without {0}, or as root)",
                name(Setting::DropCaches)
            ),
            Error::Aborted => "stopped because another worker failed".into(),
            Error::Ranks(m) => m.clone(),
            Error::CuFile(e) => e.to_string(),
            Error::WorkerPanicked(tid) => {
                format!("worker thread {tid} panicked (a bug in gdswap; please report it)")
            }
            Error::Within { context, source } => {
                format!("{}: {}", context.render(name), source.render(name))
            }
            Error::Peer { tool, message } => format!("peer {tool}: {}", message.render(name)),
            Error::Interrupted => "interrupted".into(),
            Error::Swap { tensor, message } => {
                format!("tensor '{tensor}': {}", message.render(name))
            }
            Error::UnsafeFile { path, reason } => {
                format!("refusing {}: {}", path.display(), reason.render(name))
            }
            Error::BadFile {
                role,
                path,
                message,
            } => format!(
                "{} {}: {}",
                role.render(name),
                path.display(),
                message.render(name)
            ),
        }
    }

    /// The setting an error is about, when it is about one: what the command line turns into
    /// a flag, and a caller into the field to fix.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Error::InvalidOption { setting, .. } => Some(*setting),
            Error::BadFile {
                role: FileRole::Setting(s),
                ..
            } => Some(*s),
            Error::DropCaches(_) => Some(Setting::DropCaches),
            Error::Within { source, .. } => source.setting(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Setting::name))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. }
            | Error::File { source, .. }
            | Error::IoUring { source, .. }
            | Error::Thread { source, .. } => Some(source),
            Error::DropCaches(e) | Error::Signal(e) => Some(e),
            Error::Serialize { source, .. } => Some(source),
            Error::CuFile(e) => Some(e.as_ref()),
            Error::Within { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl Error {
    /// A failed or short request: the operation, file, offset and length.
    pub fn io(
        op: FileOp,
        path: impl Into<PathBuf>,
        offset: u64,
        len: u64,
        source: io::Error,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            offset,
            len,
            source,
        }
    }

    /// A failed whole-file operation, with a hint for the errnos a user can act on.
    pub fn file(op: FileOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => crate::error::msg![
                " (not writable or readable by this user: pick another ",
                Setting::Dir,
                "/",
                Setting::File,
                ")"
            ],
            Some(libc::ENOENT) => " (no such file: check the path)".into(),
            Some(libc::ENOSPC) => crate::error::msg![
                " (no space left on the filesystem: free space or lower ",
                Setting::Size,
                ")"
            ],
            Some(libc::EINVAL) if op == FileOp::Open => crate::error::msg![
                " (this filesystem refuses O_DIRECT: use another path, or ",
                Setting::Buffered,
                " to measure the page cache)"
            ],
            _ => Message::default(),
        };
        Error::File {
            op,
            path: path.into(),
            hint,
            source,
        }
    }

    /// The error for a request that moved zero bytes: the end of the file on a read, a device
    /// that accepted nothing on a write.
    pub fn nothing_moved(
        op: impl Into<FileOp>,
        path: &std::path::Path,
        offset: u64,
        remaining: usize,
    ) -> Self {
        let op = op.into();
        let source = match op {
            FileOp::Read => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of file: the file is shorter than the range",
            ),
            _ => io::Error::new(io::ErrorKind::WriteZero, "wrote zero bytes"),
        };
        Error::io(op, path, offset, remaining as u64, source)
    }

    /// A stable class of the error, for records (`ErrorRecord::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::File { .. } => "io",
            Error::InvalidOption { .. }
            | Error::FileTooSmall { .. }
            | Error::Memlock { .. }
            | Error::DropCaches(_)
            | Error::BadFile { .. }
            | Error::UnsafeFile { .. } => "refused",
            Error::OutOfMemory(_)
            | Error::NoSpace { .. }
            | Error::HugePages(_)
            | Error::IoUring { .. }
            | Error::Thread { .. }
            | Error::CudaUnavailable(_)
            | Error::DriverContract(_)
            | Error::CuFileSetup(_)
            | Error::Tensor(_)
            | Error::CorruptStore(_)
            | Error::Serialize { .. }
            | Error::Signal(_) => "resources",
            Error::Unavailable { .. } => "unavailable",
            Error::Cuda { .. } => "cuda",
            Error::Verify(_) | Error::Mismatch(_) => "verify",
            Error::CuFile(_) => "cufile",
            Error::Peer { .. } => "peer",
            Error::Interrupted => "interrupted",
            Error::Swap { .. } => "swap",
            Error::Ranks(_) => "ranks",
            Error::Aborted | Error::WorkerPanicked(_) | Error::Internal(_) => "internal",
            Error::Within { source, .. } => source.kind(),
        }
    }

    /// A setting whose value cannot work, and why.
    pub fn invalid(setting: Setting, message: impl Into<Message>) -> Self {
        Error::InvalidOption {
            setting,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashed(s: Setting) -> &'static str {
        match s {
            Setting::Size => "--size",
            s => s.name(),
        }
    }

    /// A library user reads settings by name; inside the CLI's scope (and only there, and
    /// only until it ends) the same message names flags, in text and in JSON.
    #[test]
    fn messages_name_settings_unless_a_scope_names_them_otherwise() {
        let m = msg!["raise ", Setting::Size];
        assert_eq!(m.to_string(), "raise size");
        {
            let _flags = SettingNames::scope(dashed);
            assert_eq!(m.to_string(), "raise --size");
            assert_eq!(serde_json::to_string(&m).unwrap(), r#""raise --size""#);
            // Other threads keep their own naming.
            let other = std::thread::spawn(move || m.to_string()).join().unwrap();
            assert_eq!(other, "raise size");
        }
        let m = msg!["raise ", Setting::Size];
        assert_eq!(serde_json::to_string(&m).unwrap(), r#""raise size""#);
        // A saved message reads back as its text.
        let back: Message = serde_json::from_str(r#""raise --size""#).unwrap();
        assert_eq!(back, Message::from("raise --size"));
    }
}

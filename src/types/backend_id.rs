//! Which backend: a closed set, named once. The command line, config files and reports spell
//! each one as its [`BackendId::name`] (`host`, `posix`, `bounce`, `gds`); serde writes the
//! same strings, so JSON output is unchanged from the days the backend was a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A backend of gdswap.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendId {
    /// io_uring into host memory.
    #[default]
    Host,
    /// pread/pwrite into host memory.
    Posix,
    /// io_uring into pinned host memory, then asynchronous copies to or from the GPU.
    Bounce,
    /// NVIDIA cuFile (GPUDirect Storage) straight into GPU memory.
    Gds,
}

/// Where a backend's destination buffer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Ordinary (pageable) host memory.
    Host,
    /// Page-locked host memory that a GPU can DMA from.
    PinnedHost,
    /// GPU memory.
    Device,
}

impl BackendId {
    /// Every backend, in the order help texts, `compare` and `check` list them.
    pub const ALL: [BackendId; 4] = [
        BackendId::Host,
        BackendId::Posix,
        BackendId::Bounce,
        BackendId::Gds,
    ];

    /// The name on the command line, in config files and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendId::Host => "host",
            BackendId::Posix => "posix",
            BackendId::Bounce => "bounce",
            BackendId::Gds => "gds",
        }
    }

    /// The names of [`BackendId::ALL`], for help texts and errors.
    pub fn names() -> [&'static str; 4] {
        BackendId::ALL.map(BackendId::name)
    }

    /// Where the backend's destination buffers live.
    pub fn memory(self) -> MemoryKind {
        match self {
            BackendId::Host | BackendId::Posix => MemoryKind::Host,
            BackendId::Bounce | BackendId::Gds => MemoryKind::Device,
        }
    }

    /// Whether the backend can register its buffers with io_uring (`--fixed-buffers`).
    pub fn takes_fixed_buffers(self) -> bool {
        matches!(self, BackendId::Host | BackendId::Bounce)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is no backend of gdswap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBackend(pub String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown backend '{}'; known: {}",
            self.0,
            BackendId::names().join(", ")
        )
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for BackendId {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<BackendId, UnknownBackend> {
        BackendId::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialize_as_before() {
        assert_eq!(BackendId::names(), ["host", "posix", "bounce", "gds"]);
        for b in BackendId::ALL {
            assert_eq!(b.name().parse::<BackendId>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.name())
            );
            assert_eq!(
                serde_json::from_str::<BackendId>(&format!("\"{b}\"")).unwrap(),
                b
            );
        }
        assert_eq!(
            "nope".parse::<BackendId>().unwrap_err().to_string(),
            "unknown backend 'nope'; known: host, posix, bounce, gds"
        );
        assert!("GDS".parse::<BackendId>().is_err());
    }

    #[test]
    fn memory_and_fixed_buffers_follow_the_backend() {
        assert_eq!(BackendId::Host.memory(), MemoryKind::Host);
        assert_eq!(BackendId::Posix.memory(), MemoryKind::Host);
        assert_eq!(BackendId::Bounce.memory(), MemoryKind::Device);
        assert_eq!(BackendId::Gds.memory(), MemoryKind::Device);
        let fixed: Vec<_> = BackendId::ALL
            .into_iter()
            .filter(|b| b.takes_fixed_buffers())
            .collect();
        assert_eq!(fixed, [BackendId::Host, BackendId::Bounce]);
    }
}

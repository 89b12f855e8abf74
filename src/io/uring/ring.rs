//! Making rings: [`new_ring`] with the cheapest completion mode the kernel offers, and
//! [`make_ring`] with the flags `--ring-setup` asks for, where `auto` falls back and says so
//! and an explicit choice the kernel refuses is an error naming what it needs; and
//! [`unavailable_reason`], why io_uring cannot be used here at all. Apart from the engine
//! because `check` and the backends ask these questions before (or without) making one.

use io_uring::IoUring;

use crate::error::{Error, Result, Setting};
use crate::types::ring_options::RingSetup;

/// Creates a ring with the cheapest completion mode the kernel offers: DEFER_TASKRUN (6.1+),
/// then COOP_TASKRUN (5.19+), then the default. Returns the ring and the mode's name.
pub fn new_ring(entries: u32) -> std::io::Result<(IoUring, &'static str)> {
    if let Ok(r) = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        return Ok((r, "defer-taskrun"));
    }
    if let Ok(r) = IoUring::builder().setup_coop_taskrun().build(entries) {
        return Ok((r, "coop-taskrun"));
    }
    IoUring::new(entries).map(|r| (r, "default"))
}

/// A ring made for a [`RingSetup`], and what was used: `flags` as reports print them, and
/// `fallback` when `auto` had to give up a flag the kernel refused.
pub struct MadeRing {
    /// The ring.
    pub ring: IoUring,
    /// The setup flags the ring was made with, e.g. `defer-taskrun` or `default`.
    pub flags: &'static str,
    /// Why `auto` gave up a flag the kernel refused; `None` when nothing was given up.
    pub fallback: Option<String>,
}

/// Milliseconds of idleness after which an SQPOLL thread sleeps (and needs a wake-up).
const SQPOLL_IDLE_MS: u32 = 1000;

/// Makes a ring of `entries` with `setup`'s flags and a completion queue of the same size
/// (fio's IORING_SETUP_CQSIZE). `auto` falls back from DEFER_TASKRUN to COOP_TASKRUN to none
/// and says so; an explicit choice the kernel refuses is an error naming `--ring-setup`.
pub fn make_ring(entries: u32, setup: RingSetup) -> Result<MadeRing> {
    fn build(
        entries: u32,
        setup: RingSetup,
        cqsize: bool,
    ) -> std::io::Result<(IoUring, &'static str)> {
        let mut b = IoUring::builder();
        if cqsize {
            b.setup_cqsize(entries);
        }
        let name = match setup {
            RingSetup::Auto | RingSetup::Defer => {
                b.setup_single_issuer().setup_defer_taskrun();
                "defer_taskrun+single_issuer"
            }
            RingSetup::Coop => {
                b.setup_coop_taskrun();
                "coop_taskrun"
            }
            RingSetup::None => "none",
            RingSetup::Sqpoll => {
                b.setup_sqpoll(SQPOLL_IDLE_MS);
                "sqpoll"
            }
        };
        b.build(entries).map(|r| (r, name))
    }
    // CQSIZE is 5.5+; where it is refused, the default completion queue (twice the
    // submission queue) works just as well.
    let try_build =
        |setup: RingSetup| build(entries, setup, true).or_else(|_| build(entries, setup, false));
    let refused = |setup: RingSetup, e: std::io::Error| setup_refused(setup, entries, e);
    match setup {
        RingSetup::Auto => {
            let defer = match try_build(RingSetup::Defer) {
                Ok((ring, flags)) => {
                    return Ok(MadeRing {
                        ring,
                        flags,
                        fallback: None,
                    })
                }
                Err(e) => e,
            };
            match try_build(RingSetup::Coop) {
                Ok((ring, flags)) => Ok(MadeRing {
                    ring,
                    flags,
                    fallback: Some(format!("defer_taskrun refused: {defer}")),
                }),
                Err(coop) => match try_build(RingSetup::None) {
                    Ok((ring, flags)) => Ok(MadeRing {
                        ring,
                        flags,
                        fallback: Some(format!(
                            "defer_taskrun refused: {defer}; coop_taskrun refused: {coop}"
                        )),
                    }),
                    Err(e) => Err(Error::Unavailable {
                        backend: "host".into(),
                        reason: crate::error::msg![
                            format!("io_uring_setup with {entries} entries failed ({e}); use "),
                            Setting::Backend,
                            " posix"
                        ],
                    }),
                },
            }
        }
        s => try_build(s)
            .map(|(ring, flags)| MadeRing {
                ring,
                flags,
                fallback: None,
            })
            .map_err(|e| refused(s, e)),
    }
}

/// An explicit `--ring-setup` the kernel refused: one line naming the flag, the choice and
/// what it needs.
fn setup_refused(setup: RingSetup, entries: u32, e: std::io::Error) -> Error {
    let needs = match setup {
        RingSetup::Defer | RingSetup::Auto => "DEFER_TASKRUN needs Linux 6.1+",
        RingSetup::Coop => "COOP_TASKRUN needs Linux 5.19+",
        RingSetup::Sqpoll => "SQPOLL may need privileges or be blocked here",
        RingSetup::None => "io_uring may be disabled here",
    };
    Error::invalid(
        Setting::RingSetup,
        format!("{setup}: the kernel refused io_uring_setup with {entries} entries ({e}); {needs}"),
    )
}

/// Why io_uring cannot be used here, or None when a ring can be made.
pub fn unavailable_reason() -> Option<crate::error::Message> {
    match IoUring::new(2) {
        Ok(_) => None,
        Err(e) => Some(crate::error::msg![format!("io_uring_setup failed ({e}): the kernel has io_uring disabled (sysctl kernel.io_uring_disabled) or a seccomp filter blocks it (common in containers); use "), crate::error::Setting::Backend, " posix"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_setup_names_the_setting_and_what_it_needs() {
        let e = setup_refused(
            RingSetup::Defer,
            8,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(
            e.to_string().starts_with(
                "ring_setup: defer: the kernel refused io_uring_setup with 8 entries ("
            ),
            "{e}"
        );
        assert!(
            e.to_string().ends_with("); DEFER_TASKRUN needs Linux 6.1+"),
            "{e}"
        );
    }
}

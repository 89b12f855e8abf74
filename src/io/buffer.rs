//! Page-aligned I/O buffers, backed by 2 MiB huge pages where the machine allows.
//!
//! Where a buffer sits in physical memory changes O_DIRECT speed by up to 2x on the reference
//! machine: the kernel pins and maps every page of every request, so 2 MiB pages mean 512x fewer
//! page lookups and far less kernel CPU than 4 KiB pages. The policy:
//! - `hugetlb`: explicit huge pages (`MAP_HUGETLB`), when the administrator reserved enough
//!   (`/proc/sys/vm/nr_hugepages`);
//! - `thp`: 2 MiB-aligned anonymous memory with `MADV_HUGEPAGE`, which works without root when
//!   transparent huge pages are `always` or `madvise`;
//! - `off`: ordinary 4 KiB pages.
//!   `auto` tries them in that order. The buffer reports what it really got, read back from
//!   `/proc/self/smaps`, because THP is a request, not a promise.
//!
//! Buffers are faulted in when made, so page faults never land in a timed loop.

use std::fmt;
use std::ptr::NonNull;

use serde::Serialize;

use crate::error::{Error, Result, Setting};
use crate::size::Bytes;

const HUGE: usize = 2 << 20;
/// Size of the inaccessible guard page on each side of an anonymous buffer.
const GUARD: usize = 4096;

/// Which pages to ask for (a setting, defined with the options).
pub use crate::options::HugePages;

/// What a buffer really got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageBacking {
    /// Explicit hugetlb pages.
    Hugetlb2M,
    /// Transparent huge pages covering `huge_bytes` of the buffer; the rest 4 KiB pages.
    Thp {
        /// Bytes backed by huge pages (`AnonHugePages` of the mapping in /proc/self/smaps).
        huge_bytes: u64,
        /// Bytes in the mapping.
        total_bytes: u64,
    },
    /// Ordinary pages.
    Base4K,
}

impl fmt::Display for PageBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PageBacking::Hugetlb2M => write!(f, "hugetlb 2MiB pages"),
            PageBacking::Thp {
                huge_bytes,
                total_bytes,
            } => write!(
                f,
                "THP 2MiB pages ({} of {}, {:.0}%)",
                Bytes(huge_bytes),
                Bytes(total_bytes),
                100.0 * huge_bytes as f64 / total_bytes.max(1) as f64
            ),
            PageBacking::Base4K => write!(f, "4KiB pages"),
        }
    }
}

impl PageBacking {
    /// Thousandths of the buffer in huge pages, to rank backings from worst to best.
    pub fn huge_bytes_ratio_permille(&self) -> u64 {
        match *self {
            PageBacking::Hugetlb2M => 1000,
            PageBacking::Thp {
                huge_bytes,
                total_bytes,
            } => huge_bytes * 1000 / total_bytes.max(1),
            PageBacking::Base4K => 0,
        }
    }

    /// True when at least nine tenths of the buffer sits in huge pages.
    pub fn is_huge(&self) -> bool {
        match *self {
            PageBacking::Hugetlb2M => true,
            PageBacking::Thp {
                huge_bytes,
                total_bytes,
            } => huge_bytes * 10 >= total_bytes * 9,
            PageBacking::Base4K => false,
        }
    }
}

/// An anonymous, page-aligned, zero-initialised, faulted-in buffer, unmapped on drop.
pub struct HostBuffer {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
    /// Bytes of guard page before and after the buffer (0 for hugetlb mappings).
    guard: usize,
    backing: PageBacking,
}

// SAFETY: the buffer is plain memory owned by this value; moving it between threads is as safe
// as moving a Vec<u8>. Shared access goes through &self / &mut self like any slice.
unsafe impl Send for HostBuffer {}
// SAFETY: &HostBuffer only hands out shared slices.
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    /// Allocates `len` bytes (at least one page) following `policy`.
    pub fn new(len: usize, policy: HugePages) -> Result<HostBuffer> {
        let len = len.max(1);
        let try_hugetlb = match policy {
            HugePages::Hugetlb => true,
            HugePages::Auto => {
                let (free, size) = crate::io::sys::free_hugetlb_pages();
                size == HUGE as u64 && free * size >= len.next_multiple_of(HUGE) as u64
            }
            _ => false,
        };
        if policy == HugePages::Hugetlb {
            let (_, size) = crate::io::sys::free_hugetlb_pages();
            if size != HUGE as u64 {
                return Err(Error::HugePages(crate::error::msg![Setting::HugePages, format!(" hugetlb: the default huge page size here is {}, gdswap maps 2MiB hugetlb pages only; use ", Bytes(size)), Setting::HugePages, " auto or thp"]));
            }
        }
        if try_hugetlb {
            match Self::map_hugetlb(len) {
                Ok(b) => return Ok(b),
                Err(e) if policy == HugePages::Hugetlb => {
                    let (free, _) = crate::io::sys::free_hugetlb_pages();
                    return Err(Error::HugePages(crate::error::msg![Setting::HugePages, format!(" hugetlb: cannot map {} of hugetlb pages ({e}); {free} free 2MiB pages are reserved (raise /proc/sys/vm/nr_hugepages, or use ", Bytes(len.next_multiple_of(HUGE) as u64)), Setting::HugePages, " auto)"]));
                }
                Err(_) => {}
            }
        }
        let thp = matches!(policy, HugePages::Auto | HugePages::Thp);
        Self::map_anonymous(len, thp)
    }

    fn map_hugetlb(len: usize) -> std::io::Result<HostBuffer> {
        let map_len = len.next_multiple_of(HUGE);
        let ptr = mmap(map_len, libc::MAP_HUGETLB)?;
        let mut buf = HostBuffer {
            ptr,
            len,
            map_len,
            guard: 0,
            backing: PageBacking::Hugetlb2M,
        };
        buf.touch();
        Ok(buf)
    }

    fn map_anonymous(len: usize, thp: bool) -> Result<HostBuffer> {
        let page = 4096;
        let map_len = if thp {
            len.next_multiple_of(HUGE)
        } else {
            len.next_multiple_of(page)
        };
        // Over-map so that a 2 MiB-aligned start exists with a page to spare on each side,
        // then give back the edges but one page each, kept as PROT_NONE guards. The guards stop
        // the kernel from merging this mapping with a neighbour, so the AnonHugePages that
        // /proc/self/smaps reports for it are this buffer's alone (and an overrun faults).
        let over = if thp {
            map_len + HUGE + 2 * GUARD
        } else {
            map_len + 2 * GUARD
        };
        let raw = mmap(over, 0).map_err(|e| {
            Error::OutOfMemory(
                format!("cannot allocate a {} I/O buffer: {e}", Bytes(over as u64)).into(),
            )
        })?;
        let base = raw.as_ptr() as usize;
        let start = if thp {
            (base + GUARD).next_multiple_of(HUGE)
        } else {
            base + GUARD
        };
        let head = start - GUARD - base;
        let tail = over - head - 2 * GUARD - map_len;
        // SAFETY: every range below lies inside the mapping we just made, which nobody else
        // uses: the excess edges are unmapped, the two pages around the buffer made
        // inaccessible. Neither call can fail for such arguments.
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((start + map_len + GUARD) as *mut libc::c_void, tail);
            }
            libc::mprotect((start - GUARD) as *mut libc::c_void, GUARD, libc::PROT_NONE);
            libc::mprotect(
                (start + map_len) as *mut libc::c_void,
                GUARD,
                libc::PROT_NONE,
            );
        }
        if thp {
            // SAFETY: [start, start+map_len) is our mapping; MADV_HUGEPAGE only changes how it
            // is backed. Failure (THP disabled) just leaves 4 KiB pages, which we report.
            unsafe { libc::madvise(start as *mut libc::c_void, map_len, libc::MADV_HUGEPAGE) };
        }
        let ptr = NonNull::new(start as *mut u8).expect("mmap never returns address 0 here");
        let mut buf = HostBuffer {
            ptr,
            len,
            map_len,
            guard: GUARD,
            backing: PageBacking::Base4K,
        };
        buf.touch();
        if thp {
            let huge = anon_huge_bytes(start).unwrap_or(0).min(map_len as u64);
            if huge > 0 {
                buf.backing = PageBacking::Thp {
                    huge_bytes: huge,
                    total_bytes: map_len as u64,
                };
            }
        }
        Ok(buf)
    }

    /// Writes one byte per 4 KiB page so every page is present before any timed I/O.
    fn touch(&mut self) {
        let s = self.as_mut_slice_full();
        for i in (0..s.len()).step_by(4096) {
            s[i] = 0;
        }
    }

    fn as_mut_slice_full(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is map_len bytes long, readable and writable, and owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.map_len) }
    }

    /// Bytes asked for (at most [`HostBuffer::capacity`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes mapped (the length rounded up to the page size), all usable for I/O padding.
    pub fn capacity(&self) -> usize {
        self.map_len
    }

    /// Which pages the buffer really got.
    pub fn backing(&self) -> PageBacking {
        self.backing
    }

    /// The first byte (page aligned).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The first byte (page aligned), for writing.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The buffer's `len` bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: len <= map_len bytes of initialised (zero-filled) memory owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The buffer's `len` bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        let start = self.ptr.as_ptr() as usize - self.guard;
        // SAFETY: [start, start + map_len + 2 guards) is exactly the mapping this value owns
        // (the buffer and its guard pages); no slice into it can outlive self.
        unsafe { libc::munmap(start as *mut libc::c_void, self.map_len + 2 * self.guard) };
    }
}

fn mmap(len: usize, extra_flags: libc::c_int) -> std::io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NonNull::new(p as *mut u8).expect("mmap success is never NULL"))
}

/// AnonHugePages of the mapping that starts at `addr`, from /proc/self/smaps.
fn anon_huge_bytes(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut in_mapping = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    in_mapping = lo <= addr && addr < hi;
                    continue;
                }
            }
        }
        if in_mapping {
            if let Some(v) = line.strip_prefix("AnonHugePages:") {
                let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
                return Some(kib * 1024);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_writable() {
        for policy in [HugePages::Off, HugePages::Thp, HugePages::Auto] {
            let mut b = HostBuffer::new(3 << 20, policy).unwrap();
            assert_eq!(b.as_ptr() as usize % 4096, 0);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice()[12345] = 7;
            assert_eq!(b.as_slice()[12345], 7);
            assert!(b.capacity() >= b.len());
        }
        let off = HostBuffer::new(1 << 20, HugePages::Off).unwrap();
        assert_eq!(off.backing(), PageBacking::Base4K);
    }

    #[test]
    fn thp_request_reports_what_it_got() {
        let b = HostBuffer::new(8 << 20, HugePages::Thp).unwrap();
        assert_eq!(b.as_ptr() as usize % HUGE, 0);
        let thp_on = crate::io::sys::thp_enabled();
        // Where THP is enabled the backing must say THP (coverage depends on free memory).
        if thp_on {
            assert!(matches!(
                b.backing(),
                PageBacking::Thp { .. } | PageBacking::Base4K
            ));
        } else {
            assert_eq!(b.backing(), PageBacking::Base4K);
        }
        assert!(!b.backing().to_string().is_empty());
    }
}

//! The verifiable data pattern written to and expected from every data file.
//!
//! The file is cut into 4 KiB granules, independent of the I/O block size, so a file written
//! with one block size verifies when read with any other. Each granule starts with a 32-byte
//! header (magic, its own file offset, the seed, a check word) followed by pseudo-random bytes
//! from a splitmix64 stream keyed by (seed, offset). So a wrong byte is found exactly, and the
//! header found at that place says whose data it is: another offset (misdirected I/O), another
//! seed (a stale file), or no gdswap data at all (zeroes, a foreign file). This is fio's
//! verify-header idea, with the body tied to the offset as well.
//!
//! A partial last granule (a file whose length is not a multiple of 4 KiB) holds the prefix of
//! the full granule, so unaligned tails are checked like everything else.

use std::path::Path;

use bytemuck::{Pod, Zeroable};

use crate::error::{Message, Setting, VerifyFailure};

/// Bytes per pattern granule.
pub const GRANULE: usize = 4096;
const MAGIC: [u8; 8] = *b"GDSWAP01";
const HEADER_LEN: usize = std::mem::size_of::<Header>();

/// The header at the start of every granule (stored little-endian).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
struct Header {
    magic: [u8; 8],
    offset: u64,
    seed: u64,
    check: u64,
}

impl Header {
    fn new(offset: u64, seed: u64) -> Self {
        Header {
            magic: MAGIC,
            offset: offset.to_le(),
            seed: seed.to_le(),
            check: header_check(offset, seed).to_le(),
        }
    }
}

fn header_check(offset: u64, seed: u64) -> u64 {
    mix(offset ^ mix(seed ^ 0x6764_7377_6170_0001))
}

/// splitmix64's output function: a strong 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes the full granule that starts at `offset` (a multiple of [`GRANULE`]) into `out`.
fn granule(out: &mut [u8; GRANULE], offset: u64, seed: u64) {
    out[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&Header::new(offset, seed)));
    let mut state = mix(seed ^ mix(offset));
    for word in out[HEADER_LEN..].chunks_exact_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        word.copy_from_slice(&mix(state).to_le_bytes());
    }
}

/// Visits the granules covering `[start, start + len)`: (offset of granule, range inside it,
/// range inside the caller's buffer).
fn for_each_granule(
    start: u64,
    len: usize,
    mut f: impl FnMut(u64, std::ops::Range<usize>, std::ops::Range<usize>) -> bool,
) {
    let mut done = 0usize;
    while done < len {
        let pos = start + done as u64;
        let g_off = pos - pos % GRANULE as u64;
        let inner = (pos - g_off) as usize;
        let take = (GRANULE - inner).min(len - done);
        if !f(g_off, inner..inner + take, done..done + take) {
            return;
        }
        done += take;
    }
}

/// Fills `buf` with the pattern bytes of file range `[file_offset, file_offset + buf.len())`.
pub fn fill(buf: &mut [u8], file_offset: u64, seed: u64) {
    let mut scratch = Box::new([0u8; GRANULE]);
    for_each_granule(file_offset, buf.len(), |g_off, inner, outer| {
        granule(&mut scratch, g_off, seed);
        buf[outer].copy_from_slice(&scratch[inner]);
        true
    });
}

/// Checks that `buf` holds the pattern of file range `[file_offset, ..)` of `path`; the first
/// differing byte is reported with its file offset and what the header there says.
pub fn verify(
    buf: &[u8],
    file_offset: u64,
    seed: u64,
    path: &Path,
) -> Result<(), Box<VerifyFailure>> {
    let mut scratch = Box::new([0u8; GRANULE]);
    let mut failure = None;
    for_each_granule(file_offset, buf.len(), |g_off, inner, outer| {
        granule(&mut scratch, g_off, seed);
        let expected = &scratch[inner.clone()];
        let found = &buf[outer.clone()];
        if expected == found {
            return true;
        }
        let i = expected
            .iter()
            .zip(found)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        // The header of the granule as found, when the buffer holds it.
        let header_note = if inner.start == 0 && found.len() >= HEADER_LEN {
            describe_header(&found[..HEADER_LEN], g_off, seed)
        } else {
            Message::default()
        };
        failure = Some(Box::new(VerifyFailure {
            path: path.to_path_buf(),
            offset: g_off + (inner.start + i) as u64,
            expected: expected[i],
            found: found[i],
            header_note,
        }));
        false
    });
    match failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// Like [`verify`], but goes on past the first difference: every 4 KiB granule of the range
/// that differs from the pattern counts once (its first wrong byte reported), and the first
/// `keep` of them are kept. Returns how many granules differ.
pub fn verify_all(
    buf: &[u8],
    file_offset: u64,
    seed: u64,
    path: &Path,
    keep: usize,
    out: &mut Vec<VerifyFailure>,
) -> u64 {
    let mut scratch = Box::new([0u8; GRANULE]);
    let mut count = 0u64;
    for_each_granule(file_offset, buf.len(), |g_off, inner, outer| {
        granule(&mut scratch, g_off, seed);
        let expected = &scratch[inner.clone()];
        let found = &buf[outer.clone()];
        if let Some(i) = expected.iter().zip(found).position(|(a, b)| a != b) {
            count += 1;
            if out.len() < keep {
                let header_note = if inner.start == 0 && found.len() >= HEADER_LEN {
                    describe_header(&found[..HEADER_LEN], g_off, seed)
                } else {
                    Message::default()
                };
                out.push(VerifyFailure {
                    path: path.to_path_buf(),
                    offset: g_off + (inner.start + i) as u64,
                    expected: expected[i],
                    found: found[i],
                    header_note,
                });
            }
        }
        true
    });
    count
}

/// Says what a found header means, relative to what was expected there.
fn describe_header(bytes: &[u8], expected_offset: u64, expected_seed: u64) -> Message {
    let h: Header = bytemuck::pod_read_unaligned(bytes);
    let (offset, seed) = (u64::from_le(h.offset), u64::from_le(h.seed));
    if h.magic != MAGIC {
        return "; the 4 KiB block there has no gdswap header (zeroes, or data not written by gdswap)".into();
    }
    if u64::from_le(h.check) != header_check(offset, seed) {
        return "; the block header there is itself corrupt".into();
    }
    if offset != expected_offset {
        return format!("; the block there belongs at offset {offset} (misplaced data)").into();
    }
    if seed != expected_seed {
        return crate::error::msg![
            format!(
                "; the block there was written with seed {seed}, not {expected_seed} (rerun with "
            ),
            Setting::Seed,
            format!(" {seed}, or rewrite the file)")
        ];
    }
    "; the block header there is intact, its contents are not".into()
}

/// Reads the seed recorded in a pattern granule header, if `bytes` starts with a valid one
/// for `offset`.
pub fn header_seed(bytes: &[u8], offset: u64) -> Option<u64> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let h: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
    let (off, seed) = (u64::from_le(h.offset), u64::from_le(h.seed));
    (h.magic == MAGIC && off == offset && u64::from_le(h.check) == header_check(off, seed))
        .then_some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_position_independent() {
        // Filling a range in one go or in odd pieces gives the same bytes.
        let mut whole = vec![0u8; 3 * GRANULE + 100];
        fill(&mut whole, 8192, 7);
        let mut pieces = vec![0u8; whole.len()];
        let cuts = [0, 1, 511, 4095, 4097, 9000, whole.len()];
        for w in cuts.windows(2) {
            fill(&mut pieces[w[0]..w[1]], 8192 + w[0] as u64, 7);
        }
        assert_eq!(whole, pieces);
        assert!(verify(&whole, 8192, 7, Path::new("f")).is_ok());
        assert!(verify(&whole[5..], 8197, 7, Path::new("f")).is_ok());
    }

    #[test]
    fn verify_all_counts_every_wrong_granule_and_keeps_the_first() {
        let mut buf = vec![0u8; 4 * GRANULE];
        fill(&mut buf, 8192, 3);
        let mut out = Vec::new();
        assert_eq!(verify_all(&buf, 8192, 3, Path::new("f"), 10, &mut out), 0);
        buf[100] ^= 1;
        buf[GRANULE * 2 + 40] ^= 1;
        buf[GRANULE * 2 + 50] ^= 1; // the same granule: counted once
        buf[GRANULE * 3 + 4000] ^= 1;
        assert_eq!(verify_all(&buf, 8192, 3, Path::new("f"), 2, &mut out), 3);
        let offsets: Vec<u64> = out.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [8192 + 100, 8192 + 2 * GRANULE as u64 + 40]);
        assert!(
            out[1].header_note.contains_text("intact"),
            "{}",
            out[1].header_note
        );
    }

    #[test]
    fn header_and_body_depend_on_offset_and_seed() {
        let mut a = vec![0u8; GRANULE];
        let mut b = vec![0u8; GRANULE];
        fill(&mut a, 0, 1);
        fill(&mut b, GRANULE as u64, 1);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        fill(&mut b, 0, 2);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_eq!(header_seed(&a, 0), Some(1));
        assert_eq!(header_seed(&a, 4096), None);
    }

    #[test]
    fn corruption_reports_exact_offset_and_bytes() {
        let mut buf = vec![0u8; 4 * GRANULE];
        fill(&mut buf, 1 << 20, 9);
        buf[2 * GRANULE + 77] ^= 0x5a;
        let f = verify(&buf, 1 << 20, 9, Path::new("/x")).unwrap_err();
        assert_eq!(f.offset, (1 << 20) + 2 * GRANULE as u64 + 77);
        assert_eq!(f.found, f.expected ^ 0x5a);
        assert!(
            f.header_note.to_string().contains("intact"),
            "{}",
            f.header_note
        );
    }

    #[test]
    fn misplaced_stale_and_foreign_blocks_are_named() {
        let mut buf = vec![0u8; 2 * GRANULE];
        fill(&mut buf, 0, 3);
        // Block 1 holds block 0's data: misdirected write.
        let (first, second) = buf.split_at_mut(GRANULE);
        second.copy_from_slice(first);
        let f = verify(&buf, 0, 3, Path::new("p")).unwrap_err();
        // The header's offset field differs first at its second byte (0x1000 little-endian).
        assert_eq!(f.offset, GRANULE as u64 + 9);
        assert!(
            f.header_note.to_string().contains("belongs at offset 0"),
            "{}",
            f.header_note
        );

        fill(&mut buf, 0, 4);
        let f = verify(&buf, 0, 3, Path::new("p")).unwrap_err();
        assert!(
            f.header_note.to_string().contains("seed 4"),
            "{}",
            f.header_note
        );

        buf.fill(0);
        let f = verify(&buf, 0, 3, Path::new("p")).unwrap_err();
        assert_eq!(f.offset, 0);
        assert!(
            f.header_note.to_string().contains("no gdswap header"),
            "{}",
            f.header_note
        );
    }

    #[test]
    fn unaligned_tail_is_checked() {
        for len in [1usize, 511, 4095, 4097] {
            let mut buf = vec![0u8; len];
            fill(&mut buf, 0, 5);
            assert!(verify(&buf, 0, 5, Path::new("t")).is_ok());
            let last = len - 1;
            buf[last] ^= 1;
            assert_eq!(
                verify(&buf, 0, 5, Path::new("t")).unwrap_err().offset,
                last as u64
            );
        }
    }
}

//! Checksum throughput on this CPU, for the swap store's choice of CRC-32C (session 11):
//! crc32c (the store's), crc-fast's CRC-32/ISCSI (the same CRC), xxh3-64 and xxh3-128, over a
//! 1 MiB buffer (in cache, as a block just read) and a 128 MiB one (from memory, as a tensor).
use std::hint::black_box;
use std::time::Instant;

fn rate(name: &str, n: usize, iters: usize, mut f: impl FnMut() -> u64) {
    let t = Instant::now();
    let mut acc = 0u64;
    for _ in 0..iters {
        acc ^= black_box(f());
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n:>10} B {name:<9} {:6.2} GB/s ({acc:x})",
        (iters * n) as f64 / s / 1e9
    );
}

fn main() {
    for n in [1usize << 20, 128 << 20] {
        let v: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(
            crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &v) as u32,
            crc32c::crc32c(&v)
        );
        let iters = (4usize << 30) / n;
        for _ in 0..3 {
            rate("crc32c", n, iters, || u64::from(crc32c::crc32c(&v)));
            rate("crc-fast", n, iters, || {
                crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &v)
            });
            rate("xxh3-64", n, iters, || xxhash_rust::xxh3::xxh3_64(&v));
            rate("xxh3-128", n, iters, || {
                xxhash_rust::xxh3::xxh3_128(&v) as u64
            });
        }
    }
}

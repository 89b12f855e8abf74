//! The swap store (`gdswap::swap`): round trips through each host backend at odd lengths,
//! typed views, reopening, checksums catching a planted corruption, space reuse, the staging
//! budget, concurrency and same-tensor refusal, and crash safety under SIGKILL.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use gdswap::swap::{DType, HostTensor, SwapOptions, SwapStore, Tensor, DATA_FILE};

/// `host` (io_uring) where the kernel allows it, else `posix`.
fn fast() -> &'static str {
    match gdswap::backend::get(gdswap::backend::BackendId::Host).probe() {
        gdswap::backend::Availability::Available => "host",
        gdswap::backend::Availability::Unavailable(_) => "posix",
    }
}

fn opts(backend: &str) -> SwapOptions {
    SwapOptions {
        backend: backend.parse().unwrap(),
        staging_budget: 64 << 20,
        ..SwapOptions::default()
    }
}

/// Deterministic bytes for tensor `t` at version `v`; the first 8 bytes hold `v` when the
/// tensor is long enough.
fn content(t: u64, v: u64, len: usize) -> HostTensor {
    let mut x = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ v.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut h = HostTensor::bytes(len);
    for b in h.as_bytes_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let n = len.min(8);
    h.as_bytes_mut()[..n].copy_from_slice(&v.to_le_bytes()[..n]);
    h
}

fn read_back(store: &SwapStore, name: &str) -> HostTensor {
    let len = store.info(name).expect("tensor listed").len as usize;
    let mut h = HostTensor::bytes(len);
    store.swap_in(name, &mut h).unwrap().wait().unwrap();
    h
}

/// Opens a store just dropped by this test. The store's flock belongs to its open file
/// description, which a child that another test thread is spawning shares from fork to exec
/// (the kill test spawns dozens): for that moment the lock outlives the drop, and `open`
/// says "already open" (seen once under load). Retries for up to 5 s.
fn reopen(dir: &std::path::Path, o: SwapOptions) -> SwapStore {
    let t0 = std::time::Instant::now();
    loop {
        match SwapStore::open(dir, o.clone()) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("already open") && t0.elapsed().as_secs() < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Small blocks: a tensor moves in many requests, kept in flight at the queue depth and
/// completing in any order; the checksum the store takes block by block as they complete
/// (host) is the CRC-32C of the whole tensor, a swap-in verifies against it, and a byte
/// changed on disk in a late block is caught.
#[test]
fn checksums_taken_per_block_match_the_whole_tensor() {
    for backend in [fast(), "posix"] {
        let dir = common::scratch();
        let o = SwapOptions {
            block_size: 4096,
            queue_depth: 16,
            ..opts(backend)
        };
        let store = SwapStore::open(dir.path(), o).unwrap();
        for (i, &len) in [1usize, 4097, 20000, (1 << 20) + 3].iter().enumerate() {
            let name = format!("b{len}");
            let h = content(i as u64, 1, len);
            store.swap_out(&name, &h).unwrap().wait().unwrap();
            let e = store.info(&name).unwrap();
            assert_eq!(e.crc32c, crc32c::crc32c(h.as_bytes()), "{backend} {len}");
            assert!(read_back(&store, &name).as_bytes() == h.as_bytes());
            let staged = store.swap_in_staged(&name).unwrap().wait().unwrap();
            assert!(staged.as_bytes() == h.as_bytes(), "{backend} {len}");
            store
                .swap_out_staged(&name, staged)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(
                store.info(&name).unwrap().crc32c,
                crc32c::crc32c(h.as_bytes())
            );
        }
        // One byte flipped in the last block of the big tensor: the swap-in fails.
        let e = store.info(&format!("b{}", (1 << 20) + 3)).unwrap();
        drop(store);
        let path = dir.path().join(DATA_FILE);
        let at = e.offset + e.len - 2;
        let mut b = common::read_range(&path, at, 1);
        b[0] ^= 0x40;
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&b, at).unwrap();
            f.sync_all().unwrap();
        }
        let store = reopen(dir.path(), opts(backend));
        let mut back = HostTensor::bytes(e.len as usize);
        let err = store
            .swap_in(&e.name, &mut back)
            .unwrap()
            .wait()
            .unwrap_err();
        assert!(
            err.to_string().contains("checksum mismatch"),
            "{backend}: {err}"
        );
    }
}

const ODD: [usize; 8] = [1, 511, 512, 4095, 4096, 4097, (1 << 20) + 3, 3 << 20];

fn round_trips(backend: &str) {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
    let align = store.alignment();
    assert!(align >= 4096 && align.is_power_of_two());
    for (i, &len) in ODD.iter().enumerate() {
        let name = format!("t{len}");
        let h = content(i as u64, 1, len);
        store.swap_out(&name, &h).unwrap().wait().unwrap();
        let e = store.info(&name).unwrap();
        assert_eq!(e.len, len as u64);
        assert_eq!(e.padded_len % align, 0);
        assert!(e.padded_len >= e.len && e.padded_len - e.len < align);
        assert_eq!(e.offset % align, 0);
        assert_eq!(e.crc32c, crc32c::crc32c(h.as_bytes()));
        // The padding on disk is zeroes.
        let disk = common::read_range(&dir.path().join(DATA_FILE), e.offset, e.padded_len);
        assert_eq!(&disk[..len], h.as_bytes());
        assert!(disk[len..].iter().all(|&b| b == 0));
        let back = read_back(&store, &name);
        assert_eq!(back.len(), len);
        assert!(back.as_bytes() == h.as_bytes(), "{backend} length {len}");
    }
    // Each tensor got its own space.
    assert_eq!(store.list().len(), ODD.len());
}

#[test]
fn round_trips_at_odd_lengths_host() {
    if fast() != "host" {
        eprintln!("skipped: io_uring is unavailable here");
        return;
    }
    round_trips("host");
}

#[test]
fn round_trips_at_odd_lengths_posix() {
    round_trips("posix");
}

#[test]
fn typed_tensors_keep_dtype_shape_and_values_across_reopen() {
    let dir = common::scratch();
    let vals: Vec<f32> = (0..1001).map(|i| i as f32 * 0.25 - 3.0).collect();
    let halves: Vec<u16> = (0..777).map(|i| (i * 37) as u16).collect();
    {
        let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
        let mut w = HostTensor::zeros(DType::F32, &[7, 143]).unwrap();
        w.as_mut_slice::<f32>().unwrap().copy_from_slice(&vals);
        store.swap_out("w", &w).unwrap().wait().unwrap();
        let g = HostTensor::from_slice(DType::BF16, &halves).unwrap();
        store.swap_out("g", &g).unwrap().wait().unwrap();
    }
    let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
    let names: Vec<String> = store.list().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["g", "w"]);
    let mut w = HostTensor::bytes(1001 * 4);
    store.swap_in("w", &mut w).unwrap().wait().unwrap();
    assert_eq!((w.dtype(), w.shape()), (DType::F32, &[7usize, 143][..]));
    assert_eq!(w.as_slice::<f32>().unwrap(), &vals[..]);
    let mut g = HostTensor::zeros(DType::BF16, &[777]).unwrap();
    let mut t = store.swap_in("g", &mut g).unwrap();
    while !t.poll() {
        std::thread::yield_now();
    }
    t.wait().unwrap();
    assert_eq!(g.as_slice::<u16>().unwrap(), &halves[..]);
    // A destination of the wrong length is refused before any I/O.
    let mut short = HostTensor::bytes(10);
    let err = store.swap_in("w", &mut short).err().unwrap().to_string();
    assert!(err.contains("'w'") && err.contains("4004"), "{err}");
    let err = store.swap_in("nope", &mut short).err().unwrap().to_string();
    assert!(
        err.contains("'nope'") && err.contains("no such tensor"),
        "{err}"
    );
}

#[test]
fn checksum_catches_a_planted_corruption() {
    let dir = common::scratch();
    let h = content(3, 9, 4097);
    let e = {
        let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
        store.swap_out("victim", &h).unwrap().wait().unwrap();
        store.swap_out("bystander", &h).unwrap().wait().unwrap();
        store.info("victim").unwrap()
    };
    common::flip_byte(&dir.path().join(DATA_FILE), e.offset + 4096);
    let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
    let mut back = HostTensor::bytes(4097);
    let err = store
        .swap_in("victim", &mut back)
        .unwrap()
        .wait()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'victim'") && err.contains("checksum mismatch") && err.contains(DATA_FILE),
        "{err}"
    );
    // The other tensor is fine, and without verification the flipped byte comes through:
    // the checksum is what caught it.
    assert!(read_back(&store, "bystander").as_bytes() == h.as_bytes());
    drop(store);
    let unverified = SwapStore::open(
        dir.path(),
        SwapOptions {
            verify: false,
            ..opts("posix")
        },
    )
    .unwrap();
    let got = read_back(&unverified, "victim");
    assert_eq!(got.as_bytes()[4096], !h.as_bytes()[4096]);
}

#[test]
fn repeated_swaps_reuse_space_and_remove_frees_it() {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
    let len = 100_000;
    for v in 0..40 {
        store
            .swap_out("x", &content(1, v, len))
            .unwrap()
            .wait()
            .unwrap();
    }
    let padded = store.info("x").unwrap().padded_len;
    let file_len = store.data_file_len().unwrap();
    assert!(file_len <= 2 * padded, "{file_len} > 2 x {padded}");
    assert_eq!(read_back(&store, "x").as_bytes()[..8], 39u64.to_le_bytes());
    let g = store.generation();
    store.remove("x").unwrap();
    assert!(store.info("x").is_none() && store.generation() == g + 1);
    store
        .swap_out("y", &content(2, 0, len))
        .unwrap()
        .wait()
        .unwrap();
    let file_len = store.data_file_len().unwrap();
    assert!(file_len <= 2 * padded);
    drop(store);
    // Reopening never shrinks the data file (nor writes it); the space no manifest entry
    // refers to is handed out again.
    let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
    let names: Vec<String> = store.list().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["y"]);
    assert_eq!(store.data_file_len().unwrap(), file_len);
    store
        .swap_out("z", &content(3, 0, len))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(store.data_file_len().unwrap(), file_len);
    assert_eq!(
        read_back(&store, "y").as_bytes(),
        content(2, 0, len).as_bytes()
    );
}

#[test]
fn budget_is_checked_before_any_io() {
    let dir = common::scratch();
    let store = SwapStore::open(
        dir.path(),
        SwapOptions {
            staging_budget: 64 << 10,
            ..opts("posix")
        },
    )
    .unwrap();
    let err = store
        .swap_out("big", &HostTensor::bytes(65 << 10))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("'big'") && err.contains("staging memory") && err.contains("64KiB"),
        "{err}"
    );
    assert!(store.list().is_empty());
    assert_eq!(store.data_file_len().unwrap(), 0);
    // Nothing was committed: the new store's manifest is still the empty one of generation 0.
    assert_eq!(store.generation(), 0);
    let m = std::fs::read_to_string(dir.path().join(gdswap::swap::MANIFEST)).unwrap();
    assert!(m.contains("\"tensors\": []"), "{m}");
    // Within the budget, one at a time is fine; the staging peak stays within it.
    for i in 0..4 {
        let name = format!("t{i}");
        store
            .swap_out(&name, &content(i, 0, 40 << 10))
            .unwrap()
            .wait()
            .unwrap();
    }
    // Two prefetches of 40 KiB (padded) cannot be held at once under 64 KiB.
    store.prefetch("t0").unwrap();
    let err = store.prefetch("t1").unwrap_err().to_string();
    assert!(err.contains("'t1'") && err.contains("in use"), "{err}");
    let mut b = HostTensor::bytes(40 << 10);
    store.swap_in("t0", &mut b).unwrap().wait().unwrap();
    assert!(b.as_bytes() == content(0, 0, 40 << 10).as_bytes());
    store.prefetch("t1").unwrap();
    store.swap_in("t1", &mut b).unwrap().wait().unwrap();
    assert!(b.as_bytes() == content(1, 0, 40 << 10).as_bytes());
    assert!(store.stats().staging_peak <= 64 << 10);
}

#[test]
fn threads_swap_different_tensors_concurrently() {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                let len = 5000 + 3000 * t as usize;
                for v in 0..15 {
                    let name = format!("thread{t}");
                    store
                        .swap_out(&name, &content(t, v, len))
                        .unwrap()
                        .wait()
                        .unwrap();
                    let back = read_back(store, &name);
                    assert!(back.as_bytes() == content(t, v, len).as_bytes());
                }
            });
        }
    });
    drop(store);
    let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
    assert_eq!(store.list().len(), 4);
    assert_eq!(store.generation(), 60);
    for t in 0..4u64 {
        let back = read_back(&store, &format!("thread{t}"));
        assert!(back.as_bytes() == content(t, 14, 5000 + 3000 * t as usize).as_bytes());
    }
}

/// Swap-outs queued together finish their writes while others are being made durable: they
/// share fdatasyncs and manifest commits (group commit), and still each is committed once,
/// with its own generation, and reads back after a reopen.
#[test]
fn swap_outs_in_flight_together_are_each_committed() {
    let dir = common::scratch();
    let o = SwapOptions {
        io_threads: 4,
        ..opts(fast())
    };
    let store = SwapStore::open(dir.path(), o.clone()).unwrap();
    let tensors: Vec<HostTensor> = (0..48u64)
        .map(|t| content(t, 1, 4096 + 17 * t as usize))
        .collect();
    let tickets: Vec<_> = tensors
        .iter()
        .enumerate()
        .map(|(t, x)| store.swap_out(&format!("t{t}"), x).unwrap())
        .collect();
    for k in tickets {
        k.wait().unwrap();
    }
    assert_eq!(store.generation(), 48);
    let mut generations: Vec<u64> = store.list().iter().map(|e| e.generation).collect();
    generations.sort_unstable();
    assert_eq!(generations, (1..=48).collect::<Vec<u64>>());
    drop(store);
    let store = reopen(dir.path(), o);
    assert_eq!(store.list().len(), 48);
    for (t, x) in tensors.iter().enumerate() {
        assert!(
            read_back(&store, &format!("t{t}")).as_bytes() == x.as_bytes(),
            "t{t}"
        );
    }
}

#[test]
fn a_second_operation_on_a_busy_tensor_is_refused() {
    let dir = common::scratch();
    let store = SwapStore::open(
        dir.path(),
        SwapOptions {
            io_threads: 1,
            ..opts(fast())
        },
    )
    .unwrap();
    // A staging buffer of x's size waits in the pool, so x's swap-out needs no round trip
    // to the I/O thread.
    store
        .swap_out("warm", &content(9, 0, 4097))
        .unwrap()
        .wait()
        .unwrap();
    // One I/O thread, busy with a big write: the small one queued behind it is surely still
    // in flight when the second call comes.
    let big = store.swap_out("big", &HostTensor::bytes(32 << 20)).unwrap();
    let first = store.swap_out("x", &content(0, 1, 4097)).unwrap();
    let err = store
        .swap_out("x", &content(0, 2, 4097))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("'x'") && err.contains("swap-out is in flight"),
        "{err}"
    );
    let mut b = HostTensor::bytes(4097);
    let err = store.swap_in("x", &mut b).err().unwrap().to_string();
    assert!(err.contains("in flight"), "{err}");
    assert!(store
        .remove("x")
        .unwrap_err()
        .to_string()
        .contains("in flight"));
    big.wait().unwrap();
    first.wait().unwrap();
    // Once waited for, the refused version was never written: version 1 stands.
    assert!(read_back(&store, "x").as_bytes() == content(0, 1, 4097).as_bytes());
}

#[test]
fn unknown_backend_and_bad_names_are_errors() {
    let dir = common::scratch();
    // An unknown backend cannot reach the store: its name does not parse.
    let err = "nope"
        .parse::<gdswap::backend::BackendId>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown backend 'nope'"), "{err}");
    let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
    // One store per directory at a time.
    let err = SwapStore::open(dir.path(), opts("posix"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("already open"), "{err}");
    assert!(store.swap_out("", &HostTensor::bytes(1)).is_err());
    assert!(store.swap_out("a\nb", &HostTensor::bytes(1)).is_err());
    store.close().unwrap();
    SwapStore::open(dir.path(), opts("posix")).unwrap();
}

/// A child forked while a store is open (a PyTorch DataLoader worker, say) does not keep the
/// store's lock: the parent closes the store and opens it again while the child still lives.
#[test]
fn a_forked_child_does_not_keep_the_store_locked() {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts("posix")).unwrap();
    // SAFETY: the child only waits in pause (async-signal-safe) until it is killed.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "{}", std::io::Error::last_os_error());
    if pid == 0 {
        loop {
            // SAFETY: pause takes no arguments.
            unsafe { libc::pause() };
        }
    }
    // The child goes when the test ends, also when it fails (it holds the harness's output
    // pipe: left alive, cargo would wait for it forever).
    struct Child(libc::pid_t);
    impl Drop for Child {
        fn drop(&mut self) {
            // SAFETY: kills and reaps the child forked above.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }
    let _child = Child(pid);
    store.close().unwrap();
    // (reopen retries "already open" for 5 s: a child that kept the lock fails here.)
    reopen(dir.path(), opts("posix")).close().unwrap();
}

// ---- crash safety ----

const CRASH_ENV: &str = "GDSWAP_SWAP_CRASH_DIR";
const CRASH_SIZES: [usize; 4] = [3000, 70_001, 4097, 300_000];

/// The child side of `killed_mid_swap_out_leaves_last_completed_versions`: swaps tensors out
/// forever (two at a time), printing `done T V` after each completed swap-out. Runs only
/// when the parent starts it (ignored otherwise).
#[test]
#[ignore = "child process of the crash test"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let store = SwapStore::open(&dir, opts(fast())).unwrap();
    let mut version: Vec<u64> = (0..CRASH_SIZES.len())
        .map(|t| {
            let name = format!("t{t}");
            if store.info(&name).is_some() {
                u64::from_le_bytes(read_back(&store, &name).as_bytes()[..8].try_into().unwrap())
            } else {
                0
            }
        })
        .collect();
    // The parent starts its random delay here, so a slow start (a loaded machine) does not
    // make every kill land before the first swap-out.
    println!("ready");
    loop {
        for pair in [[0, 1], [2, 3]] {
            let mut tickets = Vec::new();
            for t in pair {
                version[t] += 1;
                let h = content(t as u64, version[t], CRASH_SIZES[t]);
                tickets.push((t, store.swap_out(&format!("t{t}"), &h).unwrap()));
            }
            for (t, ticket) in tickets {
                ticket.wait().unwrap();
                println!("done {t} {}", version[t]);
            }
        }
    }
}

#[test]
fn killed_mid_swap_out_leaves_last_completed_versions() {
    let dir = common::scratch();
    let exe = std::env::current_exe().unwrap();
    let mut last = [0u64; CRASH_SIZES.len()];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut kills_mid_run = 0;
    let mut round = 0;
    // At least 20 rounds, and until 10 kills came after a completed swap-out (at most 60).
    while round < 20 || (kills_mid_run < 10 && round < 60) {
        round += 1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(2000 + seed % 60_000);
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .env(CRASH_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(|l| l.ok())
                .inspect(|l| {
                    if l == "ready" {
                        let _ = ready_tx.send(());
                    }
                })
                .filter_map(|l| {
                    let mut w = l.strip_prefix("done ")?.split(' ');
                    Some((
                        w.next()?.parse::<usize>().ok()?,
                        w.next()?.parse::<u64>().ok()?,
                    ))
                })
                .collect::<Vec<_>>()
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: the child never opened the store: {e}"));
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "round {round}: the child ended before it was killed: {status:?}"
        );
        let done = reader.join().unwrap();
        if !done.is_empty() {
            kills_mid_run += 1;
        }
        for (t, v) in done {
            assert_eq!(v, last[t] + 1, "versions complete in order");
            last[t] = v;
        }
        // Every tensor is its last completed version, or the one in flight if its commit
        // landed before the kill (never anything else, never a checksum error).
        let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
        for (t, &len) in CRASH_SIZES.iter().enumerate() {
            let name = format!("t{t}");
            let found = match store.info(&name) {
                None => 0,
                Some(_) => {
                    let back = read_back(&store, &name);
                    let v = u64::from_le_bytes(back.as_bytes()[..8].try_into().unwrap());
                    assert!(
                        back.as_bytes() == content(t as u64, v, len).as_bytes(),
                        "round {round}: {name} version {v} has wrong bytes"
                    );
                    v
                }
            };
            assert!(
                found == last[t] || found == last[t] + 1,
                "round {round}: {name} is version {found}, last completed {}",
                last[t]
            );
            last[t] = found;
        }
        // Space is reused: within one process a tensor alternates between two extents; across
        // restarts the free list hands holes out again. The file stays within 3x the tensors.
        let bound: u64 = CRASH_SIZES
            .iter()
            .map(|&l| 3 * (l as u64).next_multiple_of(store.alignment()))
            .sum();
        let file_len = store.data_file_len().unwrap();
        assert!(
            file_len <= bound,
            "round {round}: data file {file_len} > {bound}"
        );
    }
    assert!(
        kills_mid_run >= 10,
        "only {kills_mid_run} of {round} kills came after a completed swap-out"
    );
}

/// Staged tensors: swapped in and out in the store's own staging buffers, no copies.
#[test]
fn staged_tensors_round_trip_without_copies() {
    for backend in [fast(), "posix"] {
        let dir = common::scratch();
        let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
        for (i, &len) in ODD.iter().enumerate() {
            let want = content(i as u64, 1, len);
            let name = format!("s{len}");
            // Fresh staged tensor, filled in place, swapped out.
            let mut t = store.staged_zeros(DType::U8, &[len]).unwrap();
            assert!(t.as_bytes().iter().all(|&b| b == 0));
            t.as_bytes_mut().copy_from_slice(want.as_bytes());
            store.swap_out_staged(&name, t).unwrap().wait().unwrap();
            assert_eq!(
                store.info(&name).unwrap().crc32c,
                crc32c::crc32c(want.as_bytes()),
                "{backend} {len}: checksum computed on the I/O thread"
            );
            // Read back through both paths.
            assert!(read_back(&store, &name).as_bytes() == want.as_bytes());
            let got = store.swap_in_staged(&name).unwrap().wait().unwrap();
            assert!(got.as_bytes() == want.as_bytes(), "{backend} {len}");
            // Changed in place and written back: the new version, and a prefetched read of it.
            let mut got = got;
            for b in got.as_bytes_mut() {
                *b = !*b;
            }
            store.swap_out_staged(&name, got).unwrap().wait().unwrap();
            store.prefetch(&name).unwrap();
            let mut again = store.swap_in_staged(&name).unwrap();
            while !again.poll() {}
            let again = again.wait().unwrap();
            assert!(again
                .as_bytes()
                .iter()
                .zip(want.as_bytes())
                .all(|(a, b)| *a == !*b));
        }
        // Typed: dtype and shape from the manifest; views in place.
        let w = HostTensor::from_slice(DType::F32, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        store.swap_out("w", &w).unwrap().wait().unwrap();
        let mut t = store.swap_in_staged("w").unwrap().wait().unwrap();
        assert_eq!(t.shape(), &[6]);
        t.as_mut_slice::<f32>().unwrap()[5] = 60.0;
        store.swap_out_staged("w", t).unwrap().wait().unwrap();
        assert_eq!(
            read_back(&store, "w").as_slice::<f32>().unwrap(),
            &[1.0, 2.0, 3.0, 4.0, 5.0, 60.0]
        );
    }
}

#[test]
fn staged_tensors_count_against_the_budget_and_stay_with_their_store() {
    let (a, b) = (common::scratch(), common::scratch());
    let small = SwapOptions {
        staging_budget: 3 << 20,
        ..opts(fast())
    };
    let store = SwapStore::open(a.path(), small.clone()).unwrap();
    let held = store.staged_zeros(DType::U8, &[2 << 20]).unwrap();
    // The budget is 3 MiB and 2 MiB of it is held by the staged tensor.
    let err = store
        .staged_zeros(DType::U8, &[2 << 20])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("staging memory") && err.contains("budget"),
        "{err}"
    );
    let other = SwapStore::open(b.path(), small).unwrap();
    let mut held = held;
    held.as_bytes_mut()[7] = 42;
    let refused = other.swap_out_staged("x", held).unwrap_err();
    assert!(
        refused.to_string().contains("belongs to another store"),
        "{refused}"
    );
    // Handed back intact, and swapped out where it belongs.
    let held = *refused.tensor.expect("a refused staged tensor comes back");
    assert_eq!(held.as_bytes()[7], 42);
    store.swap_out_staged("x", held).unwrap().wait().unwrap();
    assert_eq!(read_back(&store, "x").as_bytes()[7], 42);
    // Its buffer went back to the pool: there is room for another.
    store.staged_zeros(DType::U8, &[2 << 20]).unwrap();
    // A refusal for a tensor busy with another swap also hands it back.
    let t = store.staged_zeros(DType::U8, &[4096]).unwrap();
    let mut big = store.staged_zeros(DType::U8, &[1 << 20]).unwrap();
    big.as_bytes_mut()[0] = 1;
    let ticket = store.swap_out_staged("y", big).unwrap();
    match store.swap_out_staged("y", t) {
        Err(r) => {
            assert!(r.to_string().contains("in flight"), "{r}");
            assert!(r.tensor.is_some());
        }
        Ok(t2) => {
            // The first swap-out was already done: then the second is simply the newer one.
            t2.wait().unwrap();
        }
    }
    ticket.wait().unwrap();
}

/// A staged tensor whose padded length is near 2^64 while other staging is held: the
/// budget check (held + needed > budget) must not wrap around; the request is refused with
/// the budget error, naming it (it used to panic in debug builds, "attempt to add with
/// overflow", and in release builds to pass the check and try to allocate).
#[test]
fn a_huge_staging_request_is_refused_by_the_budget_not_wrapped() {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(fast())).unwrap();
    let _held = store.staged_zeros(DType::U8, &[64 << 10]).unwrap();
    let err = store
        .staged_zeros(DType::U8, &[usize::MAX - 4095])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("staging memory") && err.contains("budget"),
        "{err}"
    );
    assert_eq!(store.stats().staging_now, 64 << 10);
}

/// "A swap-out or remove of `name` drops the prefetch" (`SwapStore::prefetch`): also while
/// the prefetch's read is still in flight. There is no ticket of a prefetch to wait for, so
/// refusing them ("a prefetch is in flight on this tensor; wait for its ticket") left the
/// caller nothing to do but retry; they used to be refused that way.
#[test]
fn a_swap_out_or_remove_right_after_a_prefetch_drops_it() {
    let dir = common::scratch();
    let store = SwapStore::open(
        dir.path(),
        SwapOptions {
            io_threads: 1,
            ..opts(fast())
        },
    )
    .unwrap();
    for name in ["x", "y"] {
        store
            .swap_out(name, &content(0, 1, 4097))
            .unwrap()
            .wait()
            .unwrap();
    }
    // Three staging buffers of x's size wait in the pool: the calls below need no round trip
    // to the I/O thread, which is busy with a big write while they run.
    let held: Vec<_> = (0..3)
        .map(|_| store.staged_zeros(DType::U8, &[4097]).unwrap())
        .collect();
    drop(held);
    let big = store.swap_out("big", &HostTensor::bytes(32 << 20)).unwrap();
    store.prefetch("x").unwrap();
    store.prefetch("y").unwrap();
    let x2 = store
        .swap_out("x", &content(0, 2, 4097))
        .unwrap_or_else(|e| panic!("swap-out after a prefetch: {e}"));
    store
        .remove("y")
        .unwrap_or_else(|e| panic!("remove after a prefetch: {e}"));
    big.wait().unwrap();
    x2.wait().unwrap();
    // The prefetch of the old version is gone: x reads back as its new version.
    assert!(read_back(&store, "x").as_bytes() == content(0, 2, 4097).as_bytes());
    assert!(store.info("y").is_none());
    // Nothing stays claimed by the dropped prefetches' reads once they have ended.
    store.release_idle_staging().unwrap();
    store
        .swap_out("y", &content(0, 3, 4097))
        .unwrap()
        .wait()
        .unwrap();
    store.remove("x").unwrap();
    store.release_idle_staging().unwrap();
    assert_eq!(store.stats().staging_now, 0);
}

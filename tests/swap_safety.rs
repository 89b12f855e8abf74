//! The swap store touches only its own files and never lets a bad manifest destroy data:
//! symlinks, hard links, FIFOs and other users' files planted under the store's names are
//! refused (their targets unchanged); a corrupt manifest entry (an offset near 2^64, padded
//! length 0, overlapping extents, a duplicate name) is quarantined while every other tensor
//! stays readable; `open` never shrinks or writes the data file; a data file without its
//! manifest is refused unless the caller asks to start over; a generation at its maximum
//! refuses commits with a message.
//!
//! The checks are errors, not debug-build overflow panics: the tests run in debug, where a
//! wrapping `offset + padded_len` would panic, and check the error instead.

#[macro_use]
mod common;

use std::path::Path;

use gdswap::swap::{HostTensor, SwapOptions, SwapStore, DATA_FILE, LOCK_FILE, MANIFEST};
use serde_json::Value;

fn opts() -> SwapOptions {
    SwapOptions {
        backend: gdswap::backend::BackendId::Posix,
        staging_budget: 16 << 20,
        io_threads: 2,
        ..SwapOptions::default()
    }
}

fn bytes(seed: u8, len: usize) -> HostTensor {
    let mut h = HostTensor::bytes(len);
    for (i, b) in h.as_bytes_mut().iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    h
}

fn read_back(store: &SwapStore, name: &str) -> Vec<u8> {
    let len = store.info(name).expect("listed").len as usize;
    let mut h = HostTensor::bytes(len);
    store.swap_in(name, &mut h).unwrap().wait().unwrap();
    h.as_bytes().to_vec()
}

/// A store in `dir` holding `a`, `b` and `c` (5000 bytes each).
fn three_tensors(dir: &Path) {
    let store = SwapStore::open(dir, opts()).unwrap();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        store
            .swap_out(n, &bytes(i as u8, 5000))
            .unwrap()
            .wait()
            .unwrap();
    }
}

/// Rewrites the manifest through `f` on its JSON.
fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join(MANIFEST);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn tensor_mut<'v>(v: &'v mut Value, name: &str) -> &'v mut Value {
    v["tensors"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"] == name)
        .unwrap()
}

fn data(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(DATA_FILE)).unwrap()
}

fn reason_of(store: &SwapStore, name: &str) -> String {
    store
        .quarantined()
        .iter()
        .filter(|q| q.name.as_deref() == Some(name))
        .map(|q| q.reason.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

// ---- symlinks and files that are not the store's ----

/// A symlink planted under each of the store's names, in a new store and in an existing
/// one: `open` refuses, naming the path, and the link's target keeps its bytes.
#[test]
fn planted_symlinks_are_refused_and_their_targets_unchanged() {
    for name in [DATA_FILE, MANIFEST, LOCK_FILE, "manifest.json.tmp"] {
        for existing in [false, true] {
            let dir = common::scratch();
            let store_dir = dir.path().join("store");
            if existing {
                three_tensors(&store_dir);
            } else {
                std::fs::create_dir(&store_dir).unwrap();
            }
            let victim = dir.path().join("victim");
            std::fs::write(&victim, b"precious bytes").unwrap();
            let link = store_dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            let err = SwapStore::open(&store_dir, opts())
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&*link.to_string_lossy()) && err.contains("symbolic link"),
                "{name} (existing {existing}): {err}"
            );
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes", "{name}");
            // Starting over does not remove (or follow) it either.
            let discard = SwapOptions {
                discard_existing: true,
                ..opts()
            };
            assert!(SwapStore::open(&store_dir, discard).is_err(), "{name}");
            assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes", "{name}");
        }
    }
}

/// A data file that is a hard link to another file, owned by another user, or a FIFO:
/// refused (without blocking), nothing written.
#[test]
fn hard_links_foreign_files_and_fifos_are_refused() {
    let dir = common::scratch();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious bytes").unwrap();
    std::fs::hard_link(&victim, store_dir.join(DATA_FILE)).unwrap();
    let err = SwapStore::open(&store_dir, opts())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(DATA_FILE) && err.contains("2 hard links"),
        "{err}"
    );
    std::fs::remove_file(store_dir.join(DATA_FILE)).unwrap();

    let fifo = store_dir.join(DATA_FILE);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = SwapStore::open(&store_dir, opts())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_file(&fifo).unwrap();

    if common::is_root() {
        three_tensors(&store_dir);
        let before = data(&store_dir);
        common::chown(&store_dir.join(DATA_FILE), 65534, 65534);
        let err = SwapStore::open(&store_dir, opts())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(DATA_FILE) && err.contains("owned by uid 65534"),
            "{err}"
        );
        assert_eq!(data(&store_dir), before);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");
}

// ---- corrupt manifests ----

/// An entry whose offset is near 2^64 (`offset + padded_len` wraps in a release build and
/// used to make `open` truncate the data file to 0): quarantined with the reason, the other
/// tensors readable, the data file unchanged, the quarantined entry's bytes never reused,
/// and the entry kept in the manifest until it is forgotten.
#[test]
fn an_offset_near_2_pow_64_is_quarantined_and_nothing_else_is_lost() {
    let dir = common::scratch();
    three_tensors(dir.path());
    let a_offset = {
        let s = SwapStore::open(dir.path(), opts()).unwrap();
        s.info("a").unwrap().offset
    };
    edit_manifest(dir.path(), |v| {
        tensor_mut(v, "a")["offset"] = Value::from(u64::MAX - 4095);
    });
    let before = data(dir.path());
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(data(dir.path()), before, "open changed the data file");
    let names: Vec<String> = store.list().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(read_back(&store, "b"), bytes(1, 5000).as_bytes());
    assert_eq!(read_back(&store, "c"), bytes(2, 5000).as_bytes());
    assert!(
        reason_of(&store, "a").contains("overflows 64 bits"),
        "{:?}",
        store.quarantined()
    );
    let mut h = HostTensor::bytes(5000);
    let err = store.swap_in("a", &mut h).err().unwrap().to_string();
    assert!(err.contains("quarantined"), "{err}");
    // New versions go past the old end of the file: a's old bytes are still there.
    for v in 0..4 {
        store
            .swap_out("b", &bytes(10 + v, 5000))
            .unwrap()
            .wait()
            .unwrap();
        store.remove("c").ok();
    }
    let now = data(dir.path());
    assert!(now.len() >= before.len());
    let a_range = a_offset as usize..a_offset as usize + 5000;
    assert_eq!(now[a_range.clone()], bytes(0, 5000).as_bytes()[..]);
    drop(store);
    // The quarantine survived the commits.
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(store.quarantined().len(), 1);
    let generation = store.generation();
    assert_eq!(store.forget_quarantined().unwrap(), 1);
    assert_eq!(
        store.generation(),
        generation + 1,
        "a commit bumps the generation"
    );
    drop(store);
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert!(store.quarantined().is_empty());
    assert_eq!(read_back(&store, "b"), bytes(13, 5000).as_bytes());
}

/// Padded length 0, an extent past the end of the file, overlapping extents and a name held
/// twice: each quarantined with its reason; the tensor with a sound entry reads back.
#[test]
fn padded_len_zero_overlaps_and_duplicates_are_quarantined() {
    let dir = common::scratch();
    three_tensors(dir.path());
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    store
        .swap_out("d", &bytes(3, 5000))
        .unwrap()
        .wait()
        .unwrap();
    store
        .swap_out("e", &bytes(4, 5000))
        .unwrap()
        .wait()
        .unwrap();
    store
        .swap_out("f", &bytes(5, 5000))
        .unwrap()
        .wait()
        .unwrap();
    let b_offset = store.info("b").unwrap().offset;
    drop(store);
    edit_manifest(dir.path(), |v| {
        tensor_mut(v, "a")["padded_len"] = Value::from(0);
        tensor_mut(v, "c")["offset"] = Value::from(b_offset);
        tensor_mut(v, "d")["offset"] = Value::from(1u64 << 40);
        let mut dup = tensor_mut(v, "e").clone();
        dup["offset"] = Value::from(0);
        v["tensors"].as_array_mut().unwrap().push(dup);
    });
    let before = data(dir.path());
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(data(dir.path()), before);
    assert!(reason_of(&store, "a").contains("padded length 0"));
    assert!(reason_of(&store, "b").contains("overlaps"));
    assert!(reason_of(&store, "c").contains("overlaps"));
    assert!(reason_of(&store, "d").contains("ends past the data file"));
    assert!(reason_of(&store, "e").contains("more than one entry"));
    // The sound entry beside them stays readable.
    let names: Vec<String> = store.list().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["f"]);
    assert_eq!(read_back(&store, "f"), bytes(5, 5000).as_bytes());
}

/// A manifest whose generation is 2^64 - 1: it opens and reads, and a change (which would
/// wrap the generation) is refused with a message instead.
#[test]
fn generation_overflow_is_refused_with_a_message() {
    let dir = common::scratch();
    three_tensors(dir.path());
    edit_manifest(dir.path(), |v| v["generation"] = Value::from(u64::MAX));
    let before = data(dir.path());
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(read_back(&store, "a"), bytes(0, 5000).as_bytes());
    let err = store
        .swap_out("a", &bytes(9, 5000))
        .unwrap()
        .wait()
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("generation") && err.contains("largest"),
        "{err}"
    );
    let err = store.remove("b").err().unwrap().to_string();
    assert!(err.contains("generation"), "{err}");
    assert_eq!(read_back(&store, "a"), bytes(0, 5000).as_bytes());
    drop(store);
    assert_eq!(data(dir.path())[..before.len()], before[..]);
}

/// A data file whose manifest is gone is refused (it used to open as an empty store and be
/// truncated), the error saying how to start over; `discard_existing` does.
#[test]
fn missing_manifest_next_to_data_is_refused_until_discarded() {
    let dir = common::scratch();
    three_tensors(dir.path());
    std::fs::remove_file(dir.path().join(MANIFEST)).unwrap();
    let before = data(dir.path());
    let err = SwapStore::open(dir.path(), opts())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(MANIFEST) && err.contains("missing") && err.contains("discard_existing"),
        "{err}"
    );
    assert_eq!(data(dir.path()), before);
    let store = SwapStore::open(
        dir.path(),
        SwapOptions {
            discard_existing: true,
            ..opts()
        },
    )
    .unwrap();
    assert!(store.list().is_empty());
    assert_eq!(store.data_file_len().unwrap(), 0);
}

/// `destroy` removes the store's files, and its directory when nothing else is in it; a
/// file that is not the store's stays.
#[test]
fn destroy_removes_only_the_stores_files() {
    let dir = common::scratch();
    let store_dir = dir.path().join("s");
    three_tensors(&store_dir);
    SwapStore::open(&store_dir, opts())
        .unwrap()
        .destroy()
        .unwrap();
    assert!(!store_dir.exists());
    three_tensors(&store_dir);
    std::fs::write(store_dir.join("notes.txt"), b"mine").unwrap();
    SwapStore::open(&store_dir, opts())
        .unwrap()
        .destroy()
        .unwrap();
    assert_eq!(common::dir_names(&store_dir), ["notes.txt"]);
}

// ---- a write that fails (file size limit: EFBIG, as ENOSPC would) ----

const FSIZE_ENV: &str = "GDSWAP_SWAP_FSIZE_DIR";

/// The child side of `a_failed_write_leaves_the_last_version`: under RLIMIT_FSIZE of 64 KiB
/// (SIGXFSZ ignored), swaps out `t` small (fits), then large (past the limit), and prints
/// the second one's error. Runs only when the parent starts it.
#[test]
#[ignore = "child process of a_failed_write_leaves_the_last_version"]
fn fsize_child() {
    let Some(dir) = std::env::var_os(FSIZE_ENV) else {
        return;
    };
    let store = SwapStore::open(&dir, opts()).unwrap();
    store
        .swap_out("t", &bytes(1, 5000))
        .unwrap()
        .wait()
        .unwrap();
    let err = store
        .swap_out("t", &bytes(2, 200_000))
        .and_then(|t| t.wait())
        .expect_err("the write past the limit fails");
    println!("ERR {err}");
}

/// A swap-out whose write fails mid-way (EFBIG under a file size limit, the same path as
/// ENOSPC or EIO from the disk) is an error naming the tensor and the data file, and the
/// tensor reads back as its last completed version.
#[test]
fn a_failed_write_leaves_the_last_version() {
    let dir = common::scratch();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["fsize_child", "--exact", "--ignored", "--nocapture"])
        .env(FSIZE_ENV, dir.path());
    common::with_rlimit(&mut cmd, libc::RLIMIT_FSIZE, 64 << 10);
    common::ignore_sigxfsz(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ERR "))
        .unwrap_or_else(|| panic!("no error printed:\n{stdout}"));
    assert!(
        err.contains("swap-out of tensor 't'")
            && err.contains(DATA_FILE)
            && err.contains("File too large"),
        "{err}"
    );
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(read_back(&store, "t"), bytes(1, 5000).as_bytes());
}

/// A quarantined entry may claim bytes a valid tensor held at open. Those bytes are never
/// written again: swapping that tensor out twice must not reuse its old extent (its "spare")
/// while it lies below the quarantine floor.
#[test]
fn a_quarantined_entrys_bytes_survive_swaps_of_the_tensor_it_overlaps() {
    let dir = common::scratch();
    let d = dir.path().join("store");
    three_tensors(&d);
    // "q": a's extent, with a length its shape does not give (quarantined for that, so the
    // overlap with "a" is not what refuses it, and "a" stays valid).
    edit_manifest(&d, |v| {
        let mut q = tensor_mut(v, "a").clone();
        q["name"] = "q".into();
        q["len"] = 4999.into();
        v["tensors"].as_array_mut().unwrap().push(q);
    });
    let before = data(&d);
    let a = serde_json::from_str::<Value>(&std::fs::read_to_string(d.join(MANIFEST)).unwrap())
        .unwrap()["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "a")
        .unwrap()
        .clone();
    let (off, len) = (
        a["offset"].as_u64().unwrap() as usize,
        a["padded_len"].as_u64().unwrap() as usize,
    );
    let store = SwapStore::open(&d, opts()).unwrap();
    assert!(!reason_of(&store, "q").is_empty(), "q is quarantined");
    for seed in [7u8, 8, 9] {
        store
            .swap_out("a", &bytes(seed, 5000))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            &data(&d)[off..off + len],
            &before[off..off + len],
            "the quarantined bytes were overwritten by swap-out {seed} of a"
        );
    }
    assert_eq!(read_back(&store, "a"), bytes(9, 5000).as_bytes());
}

/// A data file whose length is not a multiple of the alignment (cut short by a copy or a
/// repair, so the entries past its end are quarantined): the quarantine floor is that
/// length, and new swap-outs go past it. They must still land on aligned offsets (O_DIRECT
/// refuses others with EINVAL): every later swap-out used to fail.
#[test]
fn a_quarantine_floor_at_an_unaligned_file_length_still_takes_swap_outs() {
    let dir = common::scratch();
    three_tensors(dir.path());
    let c_offset = {
        let s = SwapStore::open(dir.path(), opts()).unwrap();
        s.info("c").unwrap().offset
    };
    // Cut the file inside c's extent, at no multiple of 512.
    let cut = c_offset + 1000;
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(DATA_FILE))
        .unwrap()
        .set_len(cut)
        .unwrap();
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert!(
        reason_of(&store, "c").contains("ends past the data file"),
        "{:?}",
        store.quarantined()
    );
    store
        .swap_out("d", &bytes(3, 5000))
        .unwrap()
        .wait()
        .unwrap_or_else(|e| panic!("swap-out past an unaligned floor: {e}"));
    let d = store.info("d").unwrap();
    assert_eq!(d.offset % store.alignment(), 0, "{d:?}");
    assert!(d.offset >= cut, "{d:?} below the floor {cut}");
    assert_eq!(read_back(&store, "d"), bytes(3, 5000).as_bytes());
    assert_eq!(read_back(&store, "a"), bytes(0, 5000).as_bytes());
}

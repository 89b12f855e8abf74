//! Property tests of the swap store's manifest checks and allocator: a manifest mutated at
//! random (fields set to edge values, entries duplicated or dropped, the header changed, the
//! text cut or garbled) either is refused, or opens with every entry it lists readable (the
//! original bytes for an entry left as it was, else a checksum error, never wrong bytes or a
//! panic) and every entry it does not list quarantined; `open` never changes the data file,
//! and a swap-out afterwards never writes over a listed tensor or, when anything is
//! quarantined, over any byte the file held.
//!
//! Case counts are kept small (a few seconds in a debug build).

#[macro_use]
mod common;

use std::path::Path;
use std::sync::OnceLock;

use gdswap::swap::{HostTensor, SwapOptions, SwapStore, DATA_FILE, MANIFEST};
use proptest::prelude::*;
use serde_json::Value;

fn opts() -> SwapOptions {
    SwapOptions {
        backend: gdswap::backend::BackendId::Posix,
        staging_budget: 8 << 20,
        io_threads: 1,
        ..SwapOptions::default()
    }
}

const LENS: [usize; 5] = [1, 4096, 5000, 9000, 70_000];

fn content(i: usize) -> Vec<u8> {
    (0..LENS[i])
        .map(|j| {
            (j as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i as u32) as u8
        })
        .collect()
}

/// A store with five tensors `t0..t4` (written once, kept under target/), as (manifest
/// text, data file bytes).
fn template() -> &'static (String, Vec<u8>) {
    static T: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = common::scratch();
        {
            let store = SwapStore::open(dir.path(), opts()).unwrap();
            for (i, &len) in LENS.iter().enumerate() {
                let mut h = HostTensor::bytes(len);
                h.as_bytes_mut().copy_from_slice(&content(i));
                store
                    .swap_out(&format!("t{i}"), &h)
                    .unwrap()
                    .wait()
                    .unwrap();
            }
            // A gap in the file: the free list has something to hand out.
            store.remove("t1").unwrap();
            let mut h = HostTensor::bytes(LENS[1]);
            h.as_bytes_mut().copy_from_slice(&content(1));
            store.swap_out("t1", &h).unwrap().wait().unwrap();
        }
        (
            std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap(),
            std::fs::read(dir.path().join(DATA_FILE)).unwrap(),
        )
    })
}

/// Values that break arithmetic or checks.
fn edge() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0u64)),
        Just(Value::from(1u64)),
        Just(Value::from(4095u64)),
        Just(Value::from(4096u64)),
        Just(Value::from(8192u64)),
        Just(Value::from(1u64 << 40)),
        Just(Value::from(1u64 << 63)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(u64::MAX - 4095)),
        Just(Value::from(-1i64)),
        Just(Value::from("x")),
        Just(Value::Null),
        (0u64..200_000).prop_map(Value::from),
        (0u64..50).prop_map(|k| Value::from(k * 4096)),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Sets field `f` of entry `i` (modulo the entry count).
    Field(usize, &'static str, Value),
    Shape(usize, Vec<usize>),
    Duplicate(usize),
    Drop(usize),
    Generation(Value),
    /// Cuts the text at a fraction of its length.
    Truncate(u16),
    /// Replaces one byte of the text.
    Garble(u16, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field = prop_oneof![
        Just("offset"),
        Just("len"),
        Just("padded_len"),
        Just("generation"),
        Just("crc32c"),
        Just("name"),
        Just("file"),
        Just("dtype"),
    ];
    prop_oneof![
        4 => (0usize..8, field, edge()).prop_map(|(i, f, v)| Mutation::Field(i, f, v)),
        1 => (0usize..8, prop::collection::vec(0usize..100_000, 0..3))
            .prop_map(|(i, s)| Mutation::Shape(i, s)),
        1 => (0usize..8).prop_map(Mutation::Duplicate),
        1 => (0usize..8).prop_map(Mutation::Drop),
        1 => edge().prop_map(Mutation::Generation),
        1 => any::<u16>().prop_map(Mutation::Truncate),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(p, b)| Mutation::Garble(p, b)),
    ]
}

fn apply(text: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(text).unwrap();
    let mut raw: Option<Vec<u8>> = None;
    for m in muts {
        let tensors = v["tensors"].as_array_mut().unwrap();
        let n = tensors.len().max(1);
        match m {
            Mutation::Field(i, f, val) => {
                if let Some(t) = tensors.get_mut(i % n) {
                    t[*f] = val.clone();
                }
            }
            Mutation::Shape(i, s) => {
                if let Some(t) = tensors.get_mut(i % n) {
                    t["shape"] = Value::from(s.clone());
                }
            }
            Mutation::Duplicate(i) => {
                if let Some(t) = tensors.get(i % n).cloned() {
                    tensors.push(t);
                }
            }
            Mutation::Drop(i) => {
                if !tensors.is_empty() {
                    tensors.remove(i % n);
                }
            }
            Mutation::Generation(val) => v["generation"] = val.clone(),
            Mutation::Truncate(p) | Mutation::Garble(p, _) => {
                let mut bytes = raw.take().unwrap_or_else(|| v.to_string().into_bytes());
                // An earlier truncation may have left nothing: nothing more to cut or garble
                // (`% 0` panicked on [Truncate(24420), Truncate(0)]).
                if bytes.is_empty() {
                    raw = Some(bytes);
                    continue;
                }
                let at = *p as usize % bytes.len();
                match m {
                    Mutation::Truncate(_) => bytes.truncate(at),
                    Mutation::Garble(_, b) => bytes[at] = *b,
                    _ => unreachable!(),
                }
                raw = Some(bytes);
            }
        }
    }
    raw.unwrap_or_else(|| serde_json::to_vec_pretty(&v).unwrap())
}

/// The original entries, by name.
fn originals() -> Vec<Value> {
    let v: Value = serde_json::from_str(&template().0).unwrap();
    v["tensors"].as_array().unwrap().clone()
}

fn check(dir: &Path, manifest: &[u8]) -> Result<(), TestCaseError> {
    let (_, data) = template();
    std::fs::write(dir.join(MANIFEST), manifest).unwrap();
    std::fs::write(dir.join(DATA_FILE), data).unwrap();
    let store = match SwapStore::open(dir, opts()) {
        Ok(s) => s,
        Err(_) => {
            prop_assert_eq!(&std::fs::read(dir.join(DATA_FILE)).unwrap(), data);
            return Ok(());
        }
    };
    prop_assert_eq!(
        &std::fs::read(dir.join(DATA_FILE)).unwrap(),
        data,
        "open wrote"
    );
    let listed = store.list();
    // Nothing the manifest held is dropped silently: each entry is listed or quarantined.
    if let Ok(v) = serde_json::from_slice::<Value>(manifest) {
        let held = v["tensors"].as_array().map_or(0, Vec::len);
        prop_assert_eq!(listed.len() + store.quarantined().len(), held);
    }
    let originals = originals();
    // Every listed entry reads back: exactly the original bytes when the entry is the
    // original one, else (a changed checksum) a checksum error; nothing else.
    for e in &listed {
        let mut h = HostTensor::bytes(e.len as usize);
        let r = store.swap_in(&e.name, &mut h).and_then(|t| t.wait());
        let same = originals
            .iter()
            .any(|o| serde_json::to_value(e).unwrap() == *o);
        match r {
            Ok(()) if same => {
                let i: usize = e.name[1..].parse().unwrap();
                prop_assert_eq!(h.as_bytes(), &content(i)[..]);
            }
            Ok(()) => prop_assert_eq!(crc32c::crc32c(h.as_bytes()), e.crc32c),
            Err(err) => {
                let s = err.to_string();
                prop_assert!(s.contains("checksum mismatch"), "{}: {}", e.name, s);
            }
        }
    }
    prop_assert_eq!(
        &std::fs::read(dir.join(DATA_FILE)).unwrap(),
        data,
        "a read wrote"
    );
    // A swap-out lands in free space: listed tensors' bytes (and, with a quarantine, every
    // byte the file held) stay.
    let mut h = HostTensor::bytes(9000);
    h.as_bytes_mut().fill(0xee);
    let written = store.swap_out("new", &h).and_then(|t| t.wait());
    if let Err(e) = &written {
        // Only a generation at its maximum refuses a commit here.
        prop_assert!(e.to_string().contains("generation"), "{}", e);
    }
    if written.is_ok() {
        let now = std::fs::read(dir.join(DATA_FILE)).unwrap();
        prop_assert!(now.len() >= data.len());
        if !store.quarantined().is_empty() {
            prop_assert_eq!(&now[..data.len()], &data[..]);
        }
        for e in &listed {
            let r = e.offset as usize..(e.offset + e.padded_len) as usize;
            prop_assert_eq!(&now[r.clone()], &data[r], "{} overwritten", e.name);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_mutated_manifest_is_refused_or_opens_with_every_valid_tensor_readable(
        muts in prop::collection::vec(mutation(), 1..4)
    ) {
        let dir = common::scratch();
        let manifest = apply(&template().0, &muts);
        check(dir.path(), &manifest)?;
    }
}

/// The untouched template opens with all five tensors readable, none quarantined.
#[test]
fn the_template_itself_opens_whole() {
    let dir = common::scratch();
    std::fs::write(dir.path().join(MANIFEST), &template().0).unwrap();
    std::fs::write(dir.path().join(DATA_FILE), &template().1).unwrap();
    let store = SwapStore::open(dir.path(), opts()).unwrap();
    assert_eq!(store.list().len(), 5);
    assert!(store.quarantined().is_empty());
    drop(store);
    check(dir.path(), template().0.as_bytes()).unwrap();
}

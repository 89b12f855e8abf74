//! The swap store as a library: swap named tensors out to an NVMe directory and back, through
//! the `host` backend (io_uring, O_DIRECT), and check that every element comes back.
//!
//! ```text
//! cargo run --example swap_store -- [DIR]
//! ```
//!
//! DIR must not exist yet (default: `./gdswap-swap-example`); the example creates it, and
//! removes it and the store's files at the end. It must be on a filesystem with O_DIRECT (not
//! a tmpfs). Needs only the library: it builds without the `cli` feature
//! (`cargo run --no-default-features --example swap_store`).

use std::path::PathBuf;
use std::process::ExitCode;

use gdswap::backend::BackendId;
use gdswap::swap::{DType, HostTensor, SwapOptions, SwapStore};

/// A layer's weights, its gradient in bf16 (as `u16` bits) and an optimizer moment: three
/// tensors of different dtypes and odd lengths (none a multiple of the 4 KiB alignment).
fn layer(i: usize) -> Vec<(String, HostTensor)> {
    let n = 100_003 + i * 17;
    let weights: Vec<f32> = (0..n).map(|k| (k as f32) * 0.5 + i as f32).collect();
    let grads: Vec<u16> = (0..n).map(|k| (k * 31 + i) as u16).collect();
    let moment: Vec<f64> = (0..n / 2).map(|k| (k as f64).sqrt() - i as f64).collect();
    vec![
        (
            format!("layer{i}.weight"),
            HostTensor::from_slice(DType::F32, &weights).expect("f32 weights"),
        ),
        (
            format!("layer{i}.grad"),
            HostTensor::from_slice(DType::BF16, &grads).expect("bf16 gradient"),
        ),
        (
            format!("layer{i}.exp_avg"),
            HostTensor::from_slice(DType::F64, &moment).expect("f64 moment"),
        ),
    ]
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // Exclusively: the example never opens (nor later removes) a directory it did not make.
    std::fs::create_dir(dir)
        .map_err(|e| format!("{}: {e} (give a new directory)", dir.display()))?;

    let opts = SwapOptions {
        backend: BackendId::Host,
        staging_budget: 64 << 20, // a budget: over it, an error, never an OOM
        ..SwapOptions::default()
    };
    let store = SwapStore::open(dir, opts.clone())?;

    // Swap out six tensors at once: each swap_out returns a ticket at once, the store's I/O
    // threads write them concurrently, and Ok from wait() means durable on disk.
    let tensors: Vec<(String, HostTensor)> = (0..2).flat_map(layer).collect();
    let tickets = tensors
        .iter()
        .map(|(name, t)| store.swap_out(name, t))
        .collect::<Result<Vec<_>, _>>()?;
    for t in tickets {
        t.wait()?;
    }
    let bytes: u64 = store.list().iter().map(|e| e.len).sum();
    println!(
        "swapped out {} tensors ({bytes} bytes) to {}",
        store.list().len(),
        dir.display()
    );

    // Read ahead, then swap each back in (CRC-32C checked) and compare every byte.
    for (name, _) in &tensors {
        store.prefetch(name)?;
    }
    for (name, original) in &tensors {
        let mut back = HostTensor::zeros(original.dtype(), original.shape())?;
        store.swap_in(name, &mut back)?.wait()?;
        if back.as_bytes() != original.as_bytes() {
            return Err(
                format!("{name}: the tensor read back differs from the one written").into(),
            );
        }
    }
    println!("swapped in and verified {} tensors", tensors.len());

    // A second version of one tensor replaces the first atomically (new generation).
    let name = "layer0.weight";
    let before = store.info(name).ok_or("layer0.weight missing")?.generation;
    let v2 = HostTensor::from_slice(DType::F32, &vec![7.25f32; 4096])?;
    store.swap_out(name, &v2)?.wait()?;
    let after = store.info(name).ok_or("layer0.weight missing")?;
    if after.generation <= before || after.shape != [4096] {
        return Err(format!("{name}: the second version was not recorded ({after:?})").into());
    }
    store.close()?;

    // The store is durable: a new process (here, a new handle) finds every tensor.
    let store = SwapStore::open(dir, opts)?;
    let mut back = HostTensor::zeros(DType::F32, &[4096])?;
    store.swap_in(name, &mut back)?.wait()?;
    if back.as_slice::<f32>()?.iter().any(|&x| x != 7.25) {
        return Err(format!("{name}: version 2 did not survive reopening the store").into());
    }
    let (grad_name, grad) = &tensors[1];
    let mut back = HostTensor::zeros(DType::BF16, grad.shape())?;
    store.swap_in(grad_name, &mut back)?.wait()?;
    if back.as_slice::<u16>()? != grad.as_slice::<u16>()? {
        return Err(format!("{grad_name}: differs after reopening the store").into());
    }
    println!(
        "reopened: {} tensors, {name} at generation {}, verified",
        store.list().len(),
        after.generation
    );

    for e in store.list() {
        store.remove(&e.name)?;
    }
    // Removes the manifest, data file and lock, and the directory (it made all of them).
    store.destroy()?;
    println!("removed the store");
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gdswap-swap-example"));
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swap_store example: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The swap store's I/O rate for bench/store-vs-run.sh: swaps COUNT host tensors of SIZE
//! bytes out (all submitted, then waited for: durable on disk), then back in (CRC-32C
//! checked), ROUNDS times after two warm-up rounds (see `WARMUP`), and prints one JSON line
//! per phase with the bytes and seconds.
//!
//! ```text
//! cargo run --release --example store_bench -- DIR COUNT SIZE_MIB ROUNDS [IO_THREADS] [copy|staged] [verify|noverify]
//! ```
//! `noverify` opens the store with `SwapOptions::verify` off (swap-ins skip the CRC-32C
//! check; swap-outs still record it), to see what the check costs.
//! `copy` (the default) swaps ordinary host tensors (`swap_out` copies into staging on the
//! caller's thread, `swap_in`'s `wait` copies out of it); `staged` swaps staged tensors
//! (`swap_out_staged` / `swap_in_staged`: the store's I/O with no copy, as ZeRO-Infinity's
//! swapper computes in its swap buffers).
//! DIR must not exist yet; it is created, and removed with the store's files at the end.

use std::process::ExitCode;
use std::time::Instant;

use gdswap::backend::BackendId;
use gdswap::swap::{DType, HostTensor, SwapOptions, SwapStore};

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [dir, count, mib, rounds, rest @ ..] = args else {
        return Err("usage: store_bench DIR COUNT SIZE_MIB ROUNDS [IO_THREADS] [copy|staged] [verify|noverify]".into());
    };
    let dir = std::path::Path::new(dir);
    let count: usize = count.parse()?;
    let len: usize = mib
        .parse::<usize>()?
        .checked_mul(1 << 20)
        .ok_or("SIZE_MIB too big")?;
    let rounds: usize = rounds.parse()?;
    std::fs::create_dir(dir)
        .map_err(|e| format!("{}: {e} (give a new directory)", dir.display()))?;
    let mut opts = SwapOptions {
        backend: BackendId::Host,
        staging_budget: (count * len) as u64,
        ..SwapOptions::default()
    };
    if let Some(t) = rest.first() {
        opts.io_threads = t.parse()?;
    }
    let staged = match rest.get(1).map(String::as_str) {
        None | Some("copy") => false,
        Some("staged") => true,
        Some(other) => return Err(format!("mode {other:?}: copy or staged").into()),
    };
    opts.verify = match rest.get(2).map(String::as_str) {
        None | Some("verify") => true,
        Some("noverify") => false,
        Some(other) => return Err(format!("checks {other:?}: verify or noverify").into()),
    };
    let store = SwapStore::open(dir, opts.clone())?;
    let n = len / 4;
    if staged {
        run_staged(&store, count, n, rounds)?;
    } else {
        run_copy(&store, count, n, rounds)?;
    }
    store.destroy()?;
    if dir.exists() {
        std::fs::remove_dir(dir)?;
    }
    Ok(())
}

/// The `copy` mode: COUNT ordinary host tensors of `n` f32, copied through staging each way.
fn run_copy(
    store: &SwapStore,
    count: usize,
    n: usize,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let tensors: Vec<HostTensor> = (0..count)
        .map(|i| {
            let v: Vec<f32> = (0..n).map(|k| (k + i) as f32).collect();
            HostTensor::from_slice(DType::F32, &v)
        })
        .collect::<Result<_, _>>()?;
    let mut back: Vec<HostTensor> = (0..count)
        .map(|_| HostTensor::zeros(DType::F32, &[n]))
        .collect::<Result<_, _>>()?;
    for round in 0..rounds + WARMUP {
        let t = Instant::now();
        let tickets = tensors
            .iter()
            .enumerate()
            .map(|(i, x)| store.swap_out(&format!("t{i}"), x))
            .collect::<Result<Vec<_>, _>>()?;
        for k in tickets {
            k.wait()?;
        }
        let out_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        {
            let mut tickets = Vec::new();
            for (i, b) in back.iter_mut().enumerate() {
                tickets.push(store.swap_in(&format!("t{i}"), b)?);
            }
            for k in tickets {
                k.wait()?;
            }
        }
        let in_s = t.elapsed().as_secs_f64();
        if back[count - 1].as_slice::<f32>()? != tensors[count - 1].as_slice::<f32>()? {
            return Err("a tensor came back different".into());
        }
        report(round, count * n * 4, out_s, in_s);
    }
    Ok(())
}

/// Rounds not reported: the first allocates and faults in the staging buffers and writes
/// each tensor's first extent (allocating file blocks), the second writes each tensor's spare
/// extent (allocating again); from the third on, swap-outs alternate between the two extents
/// already on disk, as in a training run's steady state (and as `gdswap run`'s measured
/// loops overwrite what its warm-up loop wrote).
const WARMUP: usize = 2;

/// Prints one JSON line per phase and round after the warm-up rounds.
fn report(round: usize, bytes: usize, out_s: f64, in_s: f64) {
    if round >= WARMUP {
        println!(
            "{{\"phase\":\"swap_out\",\"round\":{round},\"bytes\":{bytes},\"seconds\":{out_s}}}"
        );
        println!(
            "{{\"phase\":\"swap_in\",\"round\":{round},\"bytes\":{bytes},\"seconds\":{in_s}}}"
        );
    }
}

/// The `staged` mode: COUNT staged tensors of `n` f32 swapped out and back in, no copies.
fn run_staged(
    store: &SwapStore,
    count: usize,
    n: usize,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut t = store.staged_zeros(DType::F32, &[n])?;
        for (k, x) in t.as_mut_slice::<f32>()?.iter_mut().enumerate() {
            *x = (k + i) as f32;
        }
        held.push(t);
    }
    for round in 0..rounds + WARMUP {
        let t = Instant::now();
        let mut tickets = Vec::with_capacity(count);
        for (i, x) in held.drain(..).enumerate() {
            tickets.push(
                store
                    .swap_out_staged(&format!("t{i}"), x)
                    .map_err(gdswap::Error::from)?,
            );
        }
        for k in tickets {
            k.wait()?;
        }
        let out_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let tickets = (0..count)
            .map(|i| store.swap_in_staged(&format!("t{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        for k in tickets {
            held.push(k.wait()?);
        }
        let in_s = t.elapsed().as_secs_f64();
        let last = held[count - 1].as_slice::<f32>()?;
        if last[n - 1] != (n - 1 + count - 1) as f32 {
            return Err("a tensor came back different".into());
        }
        report(round, count * n * 4, out_s, in_s);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store_bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

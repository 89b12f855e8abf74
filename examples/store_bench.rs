//! The swap store's I/O rate for bench/store-vs-run.sh: swaps COUNT host tensors of SIZE
//! bytes out (all submitted, then waited for: durable on disk), then back in (CRC-32C
//! checked), ROUNDS times, and prints one JSON line per phase with the bytes and seconds.
//!
//! ```text
//! cargo run --release --example store_bench -- DIR COUNT SIZE_MIB ROUNDS [IO_THREADS]
//! ```
//! DIR must not exist yet; it is created, and removed with the store's files at the end.

use std::process::ExitCode;
use std::time::Instant;

use gdswap::backend::BackendId;
use gdswap::swap::{DType, HostTensor, SwapOptions, SwapStore};

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [dir, count, mib, rounds, rest @ ..] = args else {
        return Err("usage: store_bench DIR COUNT SIZE_MIB ROUNDS [IO_THREADS]".into());
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
    let store = SwapStore::open(dir, opts.clone())?;
    let n = len / 4;
    let tensors: Vec<HostTensor> = (0..count)
        .map(|i| {
            let v: Vec<f32> = (0..n).map(|k| (k + i) as f32).collect();
            HostTensor::from_slice(DType::F32, &v)
        })
        .collect::<Result<_, _>>()?;
    let mut back: Vec<HostTensor> = (0..count)
        .map(|_| HostTensor::zeros(DType::F32, &[n]))
        .collect::<Result<_, _>>()?;
    for round in 0..=rounds {
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
        // Round 0 is a warm-up: staging buffers are allocated and faulted in then.
        if round > 0 {
            let bytes = count * len;
            println!("{{\"phase\":\"swap_out\",\"round\":{round},\"bytes\":{bytes},\"seconds\":{out_s}}}");
            println!(
                "{{\"phase\":\"swap_in\",\"round\":{round},\"bytes\":{bytes},\"seconds\":{in_s}}}"
            );
        }
    }
    store.destroy()?;
    if dir.exists() {
        std::fs::remove_dir(dir)?;
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

//! The count parser, the fp16 conversion and Adam's first step, and a small simulation in both
//! modes (and with gradients read in) checked bit for bit against memory.

use super::adam::{grad, LR};
use crate::types::BackendId;

use super::*;

#[test]
fn counts_take_decimal_suffixes() {
    assert_eq!(parse_count("2B"), Ok(2_000_000_000));
    assert_eq!(parse_count("1.5m"), Ok(1_500_000));
    assert_eq!(parse_count("300K"), Ok(300_000));
    assert_eq!(parse_count("12345"), Ok(12345));
    assert_eq!(parse_count("1G"), Ok(1_000_000_000));
    assert!(parse_count("2X").is_err());
    assert!(parse_count("0").is_err());
    assert!(parse_count("1.0000001K").is_err());
    assert!(parse_count("abc").is_err());
}

#[test]
fn half_precision_converts_exactly() {
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
    for i in 0..1000 {
        let v = f16_to_f32(grad_f16(3, i)).abs();
        assert!((0.0625..0.5).contains(&v), "{v}");
    }
}

#[test]
fn adam_moves_weights_against_the_gradient() {
    let (mut w, mut m, mut v) = (vec![0.0f32; 64], vec![0.0f32; 64], vec![0.0f32; 64]);
    adam_step(0, 1, &mut w, &mut m, &mut v);
    for (i, w) in w.iter().enumerate() {
        let g = grad(0, 1, i);
        // First step: w = -lr * sign(g) (up to eps).
        assert!((w + LR * g.signum()).abs() < 1e-5, "{i}: {w} {g}");
    }
}

#[test]
fn swapped_state_equals_in_memory_in_both_modes() {
    let dir = crate::testutil::scratch_dir();
    let opts = SimOptions {
        dir: dir.path().to_path_buf(),
        params: 50_001,
        sub_group_size: 8_000,
        steps: 3,
        warmup_steps: 1,
        buffers: 3,
        backend: BackendId::Posix,
        io_threads: 2,
        gpu: 0,
        check: true,
        grads: false,
        keep: false,
    };
    for mode in [Mode::Serial, Mode::Pipelined] {
        let r = run_mode(&opts, mode).unwrap();
        assert_eq!(r.bit_exact, Some(true), "{mode:?}: {:?}", r.mismatch);
        // 7 sub-groups of 3 tensors, each read and written once per step: the store's own
        // counters (taken before the check reads everything back) saw exactly that many,
        // over the warm-up and measured steps, plus the initial state's swap-outs.
        assert_eq!(r.read_bytes, r.write_bytes);
        assert!(r.read_bytes >= 50_001 * 12);
        let steps = u64::from(opts.warmup_steps + opts.steps);
        assert_eq!(r.store_bytes_read, steps * r.read_bytes, "{mode:?}");
        assert_eq!(
            r.store_bytes_written,
            (steps + 1) * r.write_bytes,
            "{mode:?}"
        );
        assert!(r.peak_staging > 0);
    }
    // With fp16 gradients read in: one more tensor of 2 bytes a parameter read per step.
    let with_grads = SimOptions {
        grads: true,
        ..opts.clone()
    };
    let r = run_mode(&with_grads, Mode::Pipelined).unwrap();
    assert_eq!(r.bit_exact, Some(true), "{:?}", r.mismatch);
    assert!(r.read_bytes >= r.write_bytes + 50_001 * 2);
    assert!(pure_io(&opts).unwrap() > Duration::ZERO);
    assert!(pure_compute(&opts).unwrap() > Duration::ZERO);
}

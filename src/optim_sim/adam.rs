//! The arithmetic of the simulated step: Adam's update, the deterministic generated
//! gradients and initial weights, and the fp16 gradients `grads` reads in (with an exact
//! fp16 to fp32 conversion), so a swapped run and the in-memory reference compute the same
//! bits.

/// Adam's hyper-parameters (fixed; the values do not change what is measured).
pub(super) const LR: f32 = 1e-3;
const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// The gradient of element `i` of sub-group `g` at step `t`: deterministic, in [-0.5, 0.5).
pub(super) fn grad(g: u64, t: u32, i: usize) -> f32 {
    let mut x = (g << 40) ^ (u64::from(t) << 32) ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

/// The initial master weight of element `i` of sub-group `g`.
pub(super) fn init_weight(g: u64, i: usize) -> f32 {
    grad(g, u32::MAX, i) * 0.1
}

/// One Adam step (t counts from 1) over one sub-group, in place, with generated gradients.
pub fn adam_step(g: u64, t: u32, w: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    adam(t, w, m, v, |i| grad(g, t, i))
}

/// One sub-group's Adam step at step `t`: with the fp16 gradient bits `grad` read in, or
/// with the generated gradients.
pub(super) fn update_group(
    g: u64,
    t: u32,
    w: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: Option<&[u16]>,
) {
    match grad {
        Some(gr) => adam(t, w, m, v, |i| f16_to_f32(gr[i])),
        None => adam_step(g, t, w, m, v),
    }
}

/// The fp16 gradient (bits) of element `i` of sub-group `g`, as stored in `gN.grad`: a
/// normal number of magnitude in [2^-4, 2^-1).
pub fn grad_f16(g: u64, i: usize) -> u16 {
    let mut x = (g << 40) ^ 0x5eed ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let sign = ((x >> 63) as u16) << 15;
    let exp = 11 + (x >> 40) as u16 % 3; // 2^-4 .. 2^-2
    sign | (exp << 10) | (x as u16 & 0x3ff)
}

/// IEEE 754 half precision to single, exactly (every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    match exp {
        0 => {
            // Zero or subnormal: mant x 2^-24.
            let v = mant as f32 * f32::from_bits(0x3380_0000);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        e => f32::from_bits(sign | ((e + 112) << 23) | (mant << 13)),
    }
}

/// One Adam step (t counts from 1) in place, with gradient `grad(i)` for element `i`.
pub fn adam(t: u32, w: &mut [f32], m: &mut [f32], v: &mut [f32], grad: impl Fn(usize) -> f32) {
    let bc1 = 1.0 - B1.powi(t as i32);
    let bc2 = 1.0 - B2.powi(t as i32);
    for i in 0..w.len() {
        let gr = grad(i);
        m[i] = B1 * m[i] + (1.0 - B1) * gr;
        v[i] = B2 * v[i] + (1.0 - B2) * gr * gr;
        let mh = m[i] / bc1;
        let vh = v[i] / bc2;
        w[i] -= LR * mh / (vh.sqrt() + EPS);
    }
}

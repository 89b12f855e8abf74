//! The check after the steps: every sub-group read back from the store and compared, bit for
//! bit, with the same steps done in memory, one sub-group at a time.

use super::adam::{adam, adam_step, f16_to_f32, init_weight};
use super::groups::{grads_of, names, new_group, Groups};
use crate::error::Result;
use crate::swap::SwapStore;

/// Reads every sub-group back and compares it, bit for bit, with `steps` Adam steps done in
/// memory from the same initial state. The first difference, or None.
pub(super) fn check(
    store: &SwapStore,
    sizes: &Groups,
    steps: u32,
    grads: bool,
) -> Result<Option<String>> {
    for (g64, n) in sizes.iter() {
        let mut r = new_group(n)?;
        for (i, w) in r.w.as_mut_slice::<f32>()?.iter_mut().enumerate() {
            *w = init_weight(g64, i);
        }
        let gr = grads_of(g64, n)?;
        let gr = gr.as_slice::<u16>()?;
        for t in 1..=steps {
            let (w, m, v) = (
                r.w.as_mut_slice::<f32>()?,
                r.m.as_mut_slice::<f32>()?,
                r.v.as_mut_slice::<f32>()?,
            );
            if grads {
                adam(t, w, m, v, |i| f16_to_f32(gr[i]));
            } else {
                adam_step(g64, t, w, m, v);
            }
        }
        let mut s = new_group(n)?;
        let [nw, nm, nv] = names(g64);
        store.swap_in(&nw, &mut s.w)?.wait()?;
        store.swap_in(&nm, &mut s.m)?.wait()?;
        store.swap_in(&nv, &mut s.v)?.wait()?;
        for (name, a, b) in [(&nw, &s.w, &r.w), (&nm, &s.m, &r.m), (&nv, &s.v, &r.v)] {
            let (a, b) = (a.as_slice::<u32>()?, b.as_slice::<u32>()?);
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                return Ok(Some(format!(
                    "{name}[{i}]: swapped {} != in memory {}",
                    f32::from_bits(a[i]),
                    f32::from_bits(b[i])
                )));
            }
        }
    }
    Ok(None)
}

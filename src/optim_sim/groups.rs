//! The simulated model's sub-groups: how the parameters are cut ([`Groups`], computed, never
//! listed), the tensors of one sub-group in host memory ([`Group`]), and the names of its
//! tensors in the store (`gN.w`, `gN.m`, `gN.v`, `gN.grad`).

use super::adam::grad_f16;
use super::options::SimOptions;
use crate::error::Result;
use crate::swap::{DType, HostTensor};

pub(super) struct Group {
    pub(super) w: HostTensor,
    pub(super) m: HostTensor,
    pub(super) v: HostTensor,
}

pub(super) fn names(g: u64) -> [String; 3] {
    [format!("g{g}.w"), format!("g{g}.m"), format!("g{g}.v")]
}

pub(super) fn grad_name(g: u64) -> String {
    format!("g{g}.grad")
}

pub(super) fn grads_of(g: u64, n: usize) -> Result<HostTensor> {
    let bits: Vec<u16> = (0..n).map(|i| grad_f16(g, i)).collect();
    HostTensor::from_slice(DType::F16, &bits)
}

/// The sub-groups: `count` of them, each `sub` parameters except the last (computed, not
/// listed: a huge `--params` must not allocate a list before the checks refuse it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Groups {
    params: u64,
    sub: u64,
    pub(super) count: u64,
}

impl Groups {
    pub(super) fn of(opts: &SimOptions) -> Groups {
        Groups {
            params: opts.params,
            sub: opts.sub_group_size,
            count: opts.params.div_ceil(opts.sub_group_size),
        }
    }

    /// Parameters of sub-group `g` (`g < count`, so `g * sub < params`).
    pub(super) fn len(&self, g: u64) -> usize {
        self.sub.min(self.params - g * self.sub) as usize
    }

    /// The largest sub-group.
    pub(super) fn max(&self) -> u64 {
        self.sub.min(self.params)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        (0..self.count).map(|g| (g, self.len(g)))
    }
}

pub(super) fn new_group(n: usize) -> Result<Group> {
    Ok(Group {
        w: HostTensor::zeros(DType::F32, &[n])?,
        m: HostTensor::zeros(DType::F32, &[n])?,
        v: HostTensor::zeros(DType::F32, &[n])?,
    })
}

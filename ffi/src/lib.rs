//! Raw C ABI of NVIDIA's cuFile library (GPUDirect Storage), written by hand.
//!
//! This crate will hold only `#[repr(C)]` structs with exact layouts, C enums as integer
//! newtypes with constants, and function pointer types: no logic, no linking (gdswap loads
//! libcufile at run time with `libloading`). It is part of the workspace now so the layering
//! is fixed from the start; its declarations arrive with the cuFile backend. The checked facts
//! they must match are in `../shared/cufile-abi.md`.
#![no_std]

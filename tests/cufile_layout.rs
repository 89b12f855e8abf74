//! The hand-written cuFile ABI (`ffi/`, crate `gdswap-ffi`) against NVIDIA's real `cufile.h`.
//!
//! A wrong offset in a `#[repr(C)]` struct compiles, links and runs, and then corrupts memory
//! on a GPU machine that CI never sees. So this test compiles a C probe with gcc against the
//! header of the real wheel (see `cufile_wheel/`), which prints `sizeof`/`_Alignof` of every
//! struct, the offset and size of every field declared in `ffi/`, the value of every enum
//! constant declared there, and the header's whole error table; then it compares each with what
//! Rust computes for the same declaration. The header includes `<cuda.h>`, which the wheel does
//! not ship: a two-line stand-in declares `CUresult` (a C enum) and `CUstream` (a pointer).

mod cufile_wheel;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::mem::{align_of, size_of, MaybeUninit};
use std::process::Command;

use gdswap_ffi::*;

/// Size and alignment of a type: (C type, Rust size, Rust align).
struct TypeCheck {
    c_type: &'static str,
    size: usize,
    align: usize,
}

/// One field: C type, C member designator (may be nested: `nvfs.major_version`), Rust offset
/// and size.
struct FieldCheck {
    c_type: &'static str,
    c_field: &'static str,
    offset: usize,
    size: usize,
}

fn pointee_size<T>(_: *const T) -> usize {
    size_of::<T>()
}

macro_rules! ty {
    ($c:literal, $t:ty) => {
        TypeCheck {
            c_type: $c,
            size: size_of::<$t>(),
            align: align_of::<$t>(),
        }
    };
}

/// The offset and size of a (possibly nested, possibly union) field, computed from a pointer to
/// an uninitialised value without reading it.
macro_rules! field {
    ($c:literal, $t:ty, $cf:literal, $($f:tt)+) => {{
        let value = MaybeUninit::<$t>::uninit();
        let base = value.as_ptr();
        // SAFETY: addr_of! computes a field's address inside `value` without creating a
        // reference or reading the (uninitialised) memory; union members only name a place.
        let place = unsafe { std::ptr::addr_of!((*base).$($f)+) };
        FieldCheck {
            c_type: $c,
            c_field: $cf,
            offset: place as usize - base as usize,
            size: pointee_size(place),
        }
    }};
}

fn types() -> Vec<TypeCheck> {
    vec![
        ty!("CUfileOpError", CUfileOpError),
        ty!("CUfileError_t", CUfileError_t),
        ty!("CUfileDrvProps_t", CUfileDrvProps_t),
        ty!("CUfileDriverStatusFlags_t", CUfileDriverStatusFlags),
        ty!("CUfileDriverControlFlags_t", CUfileDriverControlFlags),
        ty!("CUfileFeatureFlags_t", CUfileFeatureFlags),
        ty!("cufileRDMAInfo_t", cufileRDMAInfo_t),
        ty!("CUfileFSOps_t", CUfileFSOps_t),
        ty!("enum CUfileFileHandleType", CUfileFileHandleType),
        ty!("CUfileDescr_t", CUfileDescr_t),
        ty!("CUfileHandle_t", CUfileHandle_t),
        ty!("CUfileOpcode_t", CUfileOpcode),
        ty!("CUfileStatus_t", CUfileStatus),
        ty!("CUfileBatchMode_t", CUfileBatchMode),
        ty!("CUfileIOParams_t", CUfileIOParams_t),
        ty!("CUfileIOEvents_t", CUfileIOEvents_t),
        ty!("CUfileBatchHandle_t", CUfileBatchHandle_t),
        ty!("CUFileSizeTConfigParameter_t", CUFileSizeTConfigParameter),
        ty!("CUFileBoolConfigParameter_t", CUFileBoolConfigParameter),
        ty!("CUFileStringConfigParameter_t", CUFileStringConfigParameter),
        ty!("struct timespec", timespec),
        ty!("off_t", off_t),
        ty!("ssize_t", ssize_t),
        ty!("bool", bool),
    ]
}

fn fields() -> Vec<FieldCheck> {
    vec![
        field!("CUfileError_t", CUfileError_t, "err", err),
        field!("CUfileError_t", CUfileError_t, "cu_err", cu_err),
        field!("CUfileDrvProps_t", CUfileDrvProps_t, "nvfs", nvfs),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.major_version",
            nvfs.major_version
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.minor_version",
            nvfs.minor_version
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.poll_thresh_size",
            nvfs.poll_thresh_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.max_direct_io_size",
            nvfs.max_direct_io_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.dstatusflags",
            nvfs.dstatusflags
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "nvfs.dcontrolflags",
            nvfs.dcontrolflags
        ),
        field!("CUfileDrvProps_t", CUfileDrvProps_t, "fflags", fflags),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "max_device_cache_size",
            max_device_cache_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "per_buffer_cache_size",
            per_buffer_cache_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "max_device_pinned_mem_size",
            max_device_pinned_mem_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "max_batch_io_size",
            max_batch_io_size
        ),
        field!(
            "CUfileDrvProps_t",
            CUfileDrvProps_t,
            "max_batch_io_timeout_msecs",
            max_batch_io_timeout_msecs
        ),
        field!("cufileRDMAInfo_t", cufileRDMAInfo_t, "version", version),
        field!("cufileRDMAInfo_t", cufileRDMAInfo_t, "desc_len", desc_len),
        field!("cufileRDMAInfo_t", cufileRDMAInfo_t, "desc_str", desc_str),
        field!("CUfileFSOps_t", CUfileFSOps_t, "fs_type", fs_type),
        field!(
            "CUfileFSOps_t",
            CUfileFSOps_t,
            "getRDMADeviceList",
            getRDMADeviceList
        ),
        field!(
            "CUfileFSOps_t",
            CUfileFSOps_t,
            "getRDMADevicePriority",
            getRDMADevicePriority
        ),
        field!("CUfileFSOps_t", CUfileFSOps_t, "read", read),
        field!("CUfileFSOps_t", CUfileFSOps_t, "write", write),
        field!("CUfileDescr_t", CUfileDescr_t, "type", type_),
        field!("CUfileDescr_t", CUfileDescr_t, "handle", handle),
        field!("CUfileDescr_t", CUfileDescr_t, "handle.fd", handle.fd),
        field!(
            "CUfileDescr_t",
            CUfileDescr_t,
            "handle.handle",
            handle.handle
        ),
        field!("CUfileDescr_t", CUfileDescr_t, "fs_ops", fs_ops),
        field!("CUfileIOParams_t", CUfileIOParams_t, "mode", mode),
        field!("CUfileIOParams_t", CUfileIOParams_t, "u", u),
        field!("CUfileIOParams_t", CUfileIOParams_t, "u.batch", u.batch),
        field!(
            "CUfileIOParams_t",
            CUfileIOParams_t,
            "u.batch.devPtr_base",
            u.batch.devPtr_base
        ),
        field!(
            "CUfileIOParams_t",
            CUfileIOParams_t,
            "u.batch.file_offset",
            u.batch.file_offset
        ),
        field!(
            "CUfileIOParams_t",
            CUfileIOParams_t,
            "u.batch.devPtr_offset",
            u.batch.devPtr_offset
        ),
        field!(
            "CUfileIOParams_t",
            CUfileIOParams_t,
            "u.batch.size",
            u.batch.size
        ),
        field!("CUfileIOParams_t", CUfileIOParams_t, "fh", fh),
        field!("CUfileIOParams_t", CUfileIOParams_t, "opcode", opcode),
        field!("CUfileIOParams_t", CUfileIOParams_t, "cookie", cookie),
        field!("CUfileIOEvents_t", CUfileIOEvents_t, "cookie", cookie),
        field!("CUfileIOEvents_t", CUfileIOEvents_t, "status", status),
        field!("CUfileIOEvents_t", CUfileIOEvents_t, "ret", ret),
        field!("struct timespec", timespec, "tv_sec", tv_sec),
        field!("struct timespec", timespec, "tv_nsec", tv_nsec),
    ]
}

/// The statistics structs of the header's version (1.15+; their layout changed in 1.20).
fn stats_checks(version: (u32, u32)) -> (Vec<TypeCheck>, Vec<FieldCheck>) {
    let mut fields = vec![
        field!("CUfileOpCounter_t", CUfileOpCounter_t, "ok", ok),
        field!("CUfileOpCounter_t", CUfileOpCounter_t, "err", err),
        field!("CUfilePerGpuStats_t", CUfilePerGpuStats_t, "uuid", uuid),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "read_bytes",
            read_bytes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "read_bw_bytes_per_sec",
            read_bw_bytes_per_sec
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "read_utilization",
            read_utilization
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "read_duration_us",
            read_duration_us
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_total_reads",
            n_total_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_p2p_reads",
            n_p2p_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_nvfs_reads",
            n_nvfs_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_posix_reads",
            n_posix_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_unaligned_reads",
            n_unaligned_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_dr_reads",
            n_dr_reads
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_sparse_regions",
            n_sparse_regions
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_inline_regions",
            n_inline_regions
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_reads_err",
            n_reads_err
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "writes_bytes",
            writes_bytes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "write_bw_bytes_per_sec",
            write_bw_bytes_per_sec
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "write_utilization",
            write_utilization
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "write_duration_us",
            write_duration_us
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_total_writes",
            n_total_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_p2p_writes",
            n_p2p_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_nvfs_writes",
            n_nvfs_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_posix_writes",
            n_posix_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_unaligned_writes",
            n_unaligned_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_dr_writes",
            n_dr_writes
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_writes_err",
            n_writes_err
        ),
        field!("CUfilePerGpuStats_t", CUfilePerGpuStats_t, "n_mmap", n_mmap),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_mmap_ok",
            n_mmap_ok
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_mmap_err",
            n_mmap_err
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "n_mmap_free",
            n_mmap_free
        ),
        field!(
            "CUfilePerGpuStats_t",
            CUfilePerGpuStats_t,
            "reg_bytes",
            reg_bytes
        ),
    ];
    let mut types = vec![
        ty!("CUfileOpCounter_t", CUfileOpCounter_t),
        ty!("CUfilePerGpuStats_t", CUfilePerGpuStats_t),
    ];
    if version < (1, 15) {
        return (Vec::new(), Vec::new());
    } else if version < (1, 19) {
        types.extend([
            ty!("CUfileStatsLevel1_t", CUfileStatsLevel1_v1_15),
            ty!("CUfileStatsLevel2_t", CUfileStatsLevel2_v1_15),
            ty!("CUfileStatsLevel3_t", CUfileStatsLevel3_v1_15),
        ]);
        fields.extend([
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_ops",
                read_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_ops",
                write_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "hdl_register_ops",
                hdl_register_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "hdl_deregister_ops",
                hdl_deregister_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "buf_register_ops",
                buf_register_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "buf_deregister_ops",
                buf_deregister_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_bytes",
                read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_bytes",
                write_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_bw_bytes_per_sec",
                read_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_bw_bytes_per_sec",
                write_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_lat_avg_us",
                read_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_lat_avg_us",
                write_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_ops_per_sec",
                read_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_ops_per_sec",
                write_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "read_lat_sum_us",
                read_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "write_lat_sum_us",
                write_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_submit_ops",
                batch_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_complete_ops",
                batch_complete_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_setup_ops",
                batch_setup_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_cancel_ops",
                batch_cancel_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_destroy_ops",
                batch_destroy_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_enqueued_ops",
                batch_enqueued_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_posix_enqueued_ops",
                batch_posix_enqueued_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_processed_ops",
                batch_processed_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_posix_processed_ops",
                batch_posix_processed_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_nvfs_submit_ops",
                batch_nvfs_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_p2p_submit_ops",
                batch_p2p_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_aio_submit_ops",
                batch_aio_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_iouring_submit_ops",
                batch_iouring_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_mixed_io_submit_ops",
                batch_mixed_io_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_total_submit_ops",
                batch_total_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_read_bytes",
                batch_read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_write_bytes",
                batch_write_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_read_bw_bytes",
                batch_read_bw_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_write_bw_bytes",
                batch_write_bw_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_submit_lat_avg_us",
                batch_submit_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_completion_lat_avg_us",
                batch_completion_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_submit_ops_per_sec",
                batch_submit_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_complete_ops_per_sec",
                batch_complete_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_submit_lat_sum_us",
                batch_submit_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "batch_completion_lat_sum_us",
                batch_completion_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "last_batch_read_bytes",
                last_batch_read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_15,
                "last_batch_write_bytes",
                last_batch_write_bytes
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_15,
                "basic",
                basic
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_15,
                "read_size_kb_hist",
                read_size_kb_hist
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_15,
                "write_size_kb_hist",
                write_size_kb_hist
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_15,
                "detailed",
                detailed
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_15,
                "num_gpus",
                num_gpus
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_15,
                "per_gpu_stats",
                per_gpu_stats
            ),
        ]);
    } else {
        types.extend([
            ty!("CUfileStatsLevel1_t", CUfileStatsLevel1_v1_20),
            ty!("CUfileStatsLevel2_t", CUfileStatsLevel2_v1_20),
            ty!("CUfileStatsLevel3_t", CUfileStatsLevel3_v1_20),
        ]);
        fields.extend([
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_ops",
                base.read_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_ops",
                base.write_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "hdl_register_ops",
                base.hdl_register_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "hdl_deregister_ops",
                base.hdl_deregister_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "buf_register_ops",
                base.buf_register_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "buf_deregister_ops",
                base.buf_deregister_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_bytes",
                base.read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_bytes",
                base.write_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_bw_bytes_per_sec",
                base.read_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_bw_bytes_per_sec",
                base.write_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_lat_avg_us",
                base.read_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_lat_avg_us",
                base.write_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_ops_per_sec",
                base.read_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_ops_per_sec",
                base.write_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "read_lat_sum_us",
                base.read_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "write_lat_sum_us",
                base.write_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_submit_ops",
                base.batch_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_complete_ops",
                base.batch_complete_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_setup_ops",
                base.batch_setup_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_cancel_ops",
                base.batch_cancel_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_destroy_ops",
                base.batch_destroy_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_enqueued_ops",
                base.batch_enqueued_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_posix_enqueued_ops",
                base.batch_posix_enqueued_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_processed_ops",
                base.batch_processed_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_posix_processed_ops",
                base.batch_posix_processed_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_nvfs_submit_ops",
                base.batch_nvfs_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_p2p_submit_ops",
                base.batch_p2p_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_aio_submit_ops",
                base.batch_aio_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_iouring_submit_ops",
                base.batch_iouring_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_mixed_io_submit_ops",
                base.batch_mixed_io_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_total_submit_ops",
                base.batch_total_submit_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_read_bytes",
                base.batch_read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_write_bytes",
                base.batch_write_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_read_bw_bytes",
                base.batch_read_bw_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_write_bw_bytes",
                base.batch_write_bw_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_submit_lat_avg_us",
                base.batch_submit_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_completion_lat_avg_us",
                base.batch_completion_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_submit_ops_per_sec",
                base.batch_submit_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_complete_ops_per_sec",
                base.batch_complete_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_submit_lat_sum_us",
                base.batch_submit_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "batch_completion_lat_sum_us",
                base.batch_completion_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "last_batch_read_bytes",
                base.last_batch_read_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "last_batch_write_bytes",
                base.last_batch_write_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_ops",
                readv_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_ops",
                writev_ops
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_bytes",
                readv_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_bytes",
                writev_bytes
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_bw_bytes_per_sec",
                readv_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_bw_bytes_per_sec",
                writev_bw_bytes_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_lat_avg_us",
                readv_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_lat_avg_us",
                writev_lat_avg_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_ops_per_sec",
                readv_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_ops_per_sec",
                writev_ops_per_sec
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "readv_lat_sum_us",
                readv_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel1_t",
                CUfileStatsLevel1_v1_20,
                "writev_lat_sum_us",
                writev_lat_sum_us
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_20,
                "basic",
                basic
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_20,
                "read_size_kb_hist",
                read_size_kb_hist
            ),
            field!(
                "CUfileStatsLevel2_t",
                CUfileStatsLevel2_v1_20,
                "write_size_kb_hist",
                write_size_kb_hist
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_20,
                "detailed",
                detailed
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_20,
                "num_gpus",
                num_gpus
            ),
            field!(
                "CUfileStatsLevel3_t",
                CUfileStatsLevel3_v1_20,
                "per_gpu_stats",
                per_gpu_stats
            ),
        ]);
    }
    (types, fields)
}

/// Enum constants and `#define`s: (C name, Rust value, the cuFile version whose header first
/// has it). The error codes are checked through the header's own table instead.
fn constants() -> Vec<(&'static str, i64, (u32, u32))> {
    use CUFileBoolConfigParameter as B;
    use CUFileSizeTConfigParameter as S;
    use CUFileStringConfigParameter as Str;
    use CUfileDriverControlFlags as C;
    use CUfileDriverStatusFlags as D;
    use CUfileFeatureFlags as F;
    let base: Vec<(&'static str, i64)> = vec![
        ("CUFILEOP_BASE_ERR", CUFILEOP_BASE_ERR.into()),
        ("CU_FILE_LUSTRE_SUPPORTED", D::LUSTRE_SUPPORTED.0.into()),
        ("CU_FILE_WEKAFS_SUPPORTED", D::WEKAFS_SUPPORTED.0.into()),
        ("CU_FILE_NFS_SUPPORTED", D::NFS_SUPPORTED.0.into()),
        ("CU_FILE_GPFS_SUPPORTED", D::GPFS_SUPPORTED.0.into()),
        ("CU_FILE_NVME_SUPPORTED", D::NVME_SUPPORTED.0.into()),
        ("CU_FILE_NVMEOF_SUPPORTED", D::NVMEOF_SUPPORTED.0.into()),
        ("CU_FILE_SCSI_SUPPORTED", D::SCSI_SUPPORTED.0.into()),
        (
            "CU_FILE_SCALEFLUX_CSD_SUPPORTED",
            D::SCALEFLUX_CSD_SUPPORTED.0.into(),
        ),
        ("CU_FILE_NVMESH_SUPPORTED", D::NVMESH_SUPPORTED.0.into()),
        ("CU_FILE_BEEGFS_SUPPORTED", D::BEEGFS_SUPPORTED.0.into()),
        ("CU_FILE_NVME_P2P_SUPPORTED", D::NVME_P2P_SUPPORTED.0.into()),
        ("CU_FILE_SCATEFS_SUPPORTED", D::SCATEFS_SUPPORTED.0.into()),
        ("CU_FILE_USE_POLL_MODE", C::USE_POLL_MODE.0.into()),
        ("CU_FILE_ALLOW_COMPAT_MODE", C::ALLOW_COMPAT_MODE.0.into()),
        (
            "CU_FILE_DYN_ROUTING_SUPPORTED",
            F::DYN_ROUTING_SUPPORTED.0.into(),
        ),
        ("CU_FILE_BATCH_IO_SUPPORTED", F::BATCH_IO_SUPPORTED.0.into()),
        ("CU_FILE_STREAMS_SUPPORTED", F::STREAMS_SUPPORTED.0.into()),
        (
            "CU_FILE_PARALLEL_IO_SUPPORTED",
            F::PARALLEL_IO_SUPPORTED.0.into(),
        ),
        ("CU_FILE_RDMA_REGISTER", CU_FILE_RDMA_REGISTER.into()),
        (
            "CU_FILE_RDMA_RELAXED_ORDERING",
            CU_FILE_RDMA_RELAXED_ORDERING.into(),
        ),
        (
            "CU_FILE_HANDLE_TYPE_OPAQUE_FD",
            CUfileFileHandleType::OPAQUE_FD.0.into(),
        ),
        (
            "CU_FILE_HANDLE_TYPE_OPAQUE_WIN32",
            CUfileFileHandleType::OPAQUE_WIN32.0.into(),
        ),
        (
            "CU_FILE_HANDLE_TYPE_USERSPACE_FS",
            CUfileFileHandleType::USERSPACE_FS.0.into(),
        ),
        ("CUFILE_READ", CUfileOpcode::READ.0.into()),
        ("CUFILE_WRITE", CUfileOpcode::WRITE.0.into()),
        ("CUFILE_WAITING", CUfileStatus::WAITING.0.into()),
        ("CUFILE_PENDING", CUfileStatus::PENDING.0.into()),
        ("CUFILE_INVALID", CUfileStatus::INVALID.0.into()),
        ("CUFILE_CANCELED", CUfileStatus::CANCELED.0.into()),
        ("CUFILE_COMPLETE", CUfileStatus::COMPLETE.0.into()),
        ("CUFILE_TIMEOUT", CUfileStatus::TIMEOUT.0.into()),
        ("CUFILE_FAILED", CUfileStatus::FAILED.0.into()),
        ("CUFILE_BATCH", CUfileBatchMode::BATCH.0.into()),
        (
            "CU_FILE_STREAM_FIXED_BUF_OFFSET",
            CU_FILE_STREAM_FIXED_BUF_OFFSET.into(),
        ),
        (
            "CU_FILE_STREAM_FIXED_FILE_OFFSET",
            CU_FILE_STREAM_FIXED_FILE_OFFSET.into(),
        ),
        (
            "CU_FILE_STREAM_FIXED_FILE_SIZE",
            CU_FILE_STREAM_FIXED_FILE_SIZE.into(),
        ),
        (
            "CU_FILE_STREAM_PAGE_ALIGNED_INPUTS",
            CU_FILE_STREAM_PAGE_ALIGNED_INPUTS.into(),
        ),
        ("CUFILE_PARAM_PROFILE_STATS", S::PROFILE_STATS.0.into()),
        (
            "CUFILE_PARAM_EXECUTION_MAX_IO_QUEUE_DEPTH",
            S::EXECUTION_MAX_IO_QUEUE_DEPTH.0.into(),
        ),
        (
            "CUFILE_PARAM_EXECUTION_MAX_IO_THREADS",
            S::EXECUTION_MAX_IO_THREADS.0.into(),
        ),
        (
            "CUFILE_PARAM_EXECUTION_MIN_IO_THRESHOLD_SIZE_KB",
            S::EXECUTION_MIN_IO_THRESHOLD_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_EXECUTION_MAX_REQUEST_PARALLELISM",
            S::EXECUTION_MAX_REQUEST_PARALLELISM.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_MAX_DIRECT_IO_SIZE_KB",
            S::PROPERTIES_MAX_DIRECT_IO_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_MAX_DEVICE_CACHE_SIZE_KB",
            S::PROPERTIES_MAX_DEVICE_CACHE_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_PER_BUFFER_CACHE_SIZE_KB",
            S::PROPERTIES_PER_BUFFER_CACHE_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_MAX_DEVICE_PINNED_MEM_SIZE_KB",
            S::PROPERTIES_MAX_DEVICE_PINNED_MEM_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_IO_BATCHSIZE",
            S::PROPERTIES_IO_BATCHSIZE.0.into(),
        ),
        (
            "CUFILE_PARAM_POLLTHRESHOLD_SIZE_KB",
            S::POLLTHRESHOLD_SIZE_KB.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_BATCH_IO_TIMEOUT_MS",
            S::PROPERTIES_BATCH_IO_TIMEOUT_MS.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_USE_POLL_MODE",
            B::PROPERTIES_USE_POLL_MODE.0.into(),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_ALLOW_COMPAT_MODE",
            B::PROPERTIES_ALLOW_COMPAT_MODE.0.into(),
        ),
        (
            "CUFILE_PARAM_FORCE_COMPAT_MODE",
            B::FORCE_COMPAT_MODE.0.into(),
        ),
        (
            "CUFILE_PARAM_FS_MISC_API_CHECK_AGGRESSIVE",
            B::FS_MISC_API_CHECK_AGGRESSIVE.0.into(),
        ),
        (
            "CUFILE_PARAM_EXECUTION_PARALLEL_IO",
            B::EXECUTION_PARALLEL_IO.0.into(),
        ),
        ("CUFILE_PARAM_PROFILE_NVTX", B::PROFILE_NVTX.0.into()),
        (
            "CUFILE_PARAM_PROPERTIES_ALLOW_SYSTEM_MEMORY",
            B::PROPERTIES_ALLOW_SYSTEM_MEMORY.0.into(),
        ),
        ("CUFILE_PARAM_USE_PCIP2PDMA", B::USE_PCIP2PDMA.0.into()),
        ("CUFILE_PARAM_PREFER_IO_URING", B::PREFER_IO_URING.0.into()),
        (
            "CUFILE_PARAM_FORCE_ODIRECT_MODE",
            B::FORCE_ODIRECT_MODE.0.into(),
        ),
        (
            "CUFILE_PARAM_SKIP_TOPOLOGY_DETECTION",
            B::SKIP_TOPOLOGY_DETECTION.0.into(),
        ),
        (
            "CUFILE_PARAM_STREAM_MEMOPS_BYPASS",
            B::STREAM_MEMOPS_BYPASS.0.into(),
        ),
        ("CUFILE_PARAM_LOGGING_LEVEL", Str::LOGGING_LEVEL.0.into()),
        (
            "CUFILE_PARAM_ENV_LOGFILE_PATH",
            Str::ENV_LOGFILE_PATH.0.into(),
        ),
        ("CUFILE_PARAM_LOG_DIR", Str::LOG_DIR.0.into()),
    ];
    // Each constant with the first header that has it (checked: absent from older ones).
    let later: Vec<(&'static str, i64, (u32, u32))> = vec![
        (
            "CU_FILE_VIRTIOFS_SUPPORTED",
            D::VIRTIOFS_SUPPORTED.0.into(),
            (1, 16),
        ),
        ("CU_FILE_P2P_SUPPORTED", F::P2P_SUPPORTED.0.into(), (1, 16)),
        ("CU_FILE_POSIX_IO_MODE", C::POSIX_IO_MODE.0.into(), (1, 17)),
        (
            "CU_FILE_FALLBACK_IO_MODE",
            C::FALLBACK_IO_MODE.0.into(),
            (1, 17),
        ),
        (
            "CU_FILE_VANILLA_POSIX_IO_MODE",
            C::POSIX_IO_MODE.0.into(),
            (1, 19),
        ),
        (
            "CUFILE_PARAM_PROPERTIES_POSIX_IO_MODE",
            B::PROPERTIES_POSIX_IO_MODE.0.into(),
            (1, 19),
        ),
        (
            "CUFILE_PARAM_GDS_FALLBACK_IO",
            B::GDS_FALLBACK_IO.0.into(),
            (1, 19),
        ),
        (
            "CU_FILE_PANFS_SUPPORTED",
            D::PANFS_SUPPORTED.0.into(),
            (1, 20),
        ),
    ];
    let mut v: Vec<_> = base.into_iter().map(|(n, x)| (n, x, (1, 14))).collect();
    v.extend(later);
    v
}

/// Whether `ident` occurs in `text` as a whole identifier.
fn mentions(text: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(i, _)| {
        !text[..i].ends_with(is_ident) && !text[i + ident.len()..].starts_with(is_ident)
    })
}

const STUB_CUDA_H: &str = "/* Stand-in for cuda.h: only what cufile.h uses. */
#pragma once
typedef enum cudaError_enum { CUDA_SUCCESS = 0 } CUresult;
typedef struct CUstream_st *CUstream;
";

fn probe_source(
    types: &[TypeCheck],
    fields: &[FieldCheck],
    constants: &[(&'static str, i64, (u32, u32))],
) -> String {
    let mut c = String::from(
        "#define _GNU_SOURCE\n#include <stddef.h>\n#include <stdio.h>\n#include <time.h>\n\
         #include <sys/types.h>\n#include \"cufile.h\"\nint main(void) {\n",
    );
    for t in types {
        writeln!(
            c,
            "  printf(\"type %s %zu %zu\\n\", \"{0}\", sizeof({0}), _Alignof({0}));",
            t.c_type
        )
        .unwrap();
    }
    for f in fields {
        writeln!(
            c,
            "  printf(\"field %s.%s %zu %zu\\n\", \"{0}\", \"{1}\", offsetof({0}, {1}), sizeof((({0}*)0)->{1}));",
            f.c_type, f.c_field
        )
        .unwrap();
    }
    for (name, _, _) in constants {
        writeln!(
            c,
            "  printf(\"const {name} %lld\\n\", (long long)({name}));"
        )
        .unwrap();
    }
    // The header's whole error table, through its own X-macro.
    c.push_str(
        "#define CUFILE_OP(code, name, string) printf(\"op %d %s\\n\", (int)(code), #name);\n\
         CUFILEOP_STATUS_ENTRIES\n#undef CUFILE_OP\n  return 0;\n}\n",
    );
    c
}

/// Compiles and runs the probe against the wheel's header; returns its output lines.
fn run_probe(
    wheel: &cufile_wheel::Wheel,
    types: &[TypeCheck],
    fields: &[FieldCheck],
    constants: &[(&'static str, i64, (u32, u32))],
) -> Vec<String> {
    let dir = tempfile::Builder::new()
        .prefix("cufile-probe-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a scratch directory for the probe");
    let stub = dir.path().join("stub");
    std::fs::create_dir_all(&stub).unwrap();
    std::fs::write(stub.join("cuda.h"), STUB_CUDA_H).unwrap();
    let src = dir.path().join("probe.c");
    std::fs::write(&src, probe_source(types, fields, constants)).unwrap();
    let exe = dir.path().join("probe");
    let out = Command::new("gcc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(&stub)
        .arg("-I")
        .arg(wheel.include_dir())
        .arg(&src)
        .output()
        .expect("run gcc (the layout test needs a C compiler)");
    assert!(
        out.status.success(),
        "the C probe did not compile against {} (a constant or field named in ffi/ that the \
         header lacks?):\n{}",
        wheel.header().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().expect("run the probe");
    assert!(out.status.success(), "the probe failed: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ffi_matches_the_cufile_1_14_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU12));
}

#[test]
fn ffi_matches_the_cufile_1_15_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13_115));
}

#[test]
fn ffi_matches_the_cufile_1_16_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13_116));
}

#[test]
fn ffi_matches_the_cufile_1_17_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13_117));
}

#[test]
fn ffi_matches_the_cufile_1_18_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13_118));
}

/// 1.19 already has 1.20's statistics layout (the threshold gdswap reads them by).
#[test]
fn ffi_matches_the_cufile_1_19_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13_119));
}

#[test]
fn ffi_matches_the_cufile_1_20_header() {
    check_against(cufile_wheel::get(cufile_wheel::CU13));
}

/// Compares every declaration of `ffi/` that this header has with it; panics with the list of
/// differences.
fn check_against(wheel: &cufile_wheel::Wheel) {
    let header_text = std::fs::read_to_string(wheel.header()).expect("read cufile.h");
    let version = wheel.version();
    let mut bad = Vec::new();
    // Constants of a newer header must be absent from this one (else their `since` is wrong);
    // the others must be there, and the probe prints them.
    let mut asked = Vec::new();
    for (name, value, since) in constants() {
        if version >= since {
            asked.push((name, value, since));
        } else if mentions(&header_text, name) {
            bad.push(format!(
                "{name} is in the {version:?} header: its `since` {since:?} is wrong"
            ));
        }
    }
    assert!(
        asked.len() > 50,
        "only {} constants apply to {version:?}",
        asked.len()
    );
    let (stats_types, stats_fields) = stats_checks(version);
    let mut all_types = types();
    all_types.extend(stats_types);
    let mut all_fields = fields();
    all_fields.extend(stats_fields);
    let lines = run_probe(wheel, &all_types, &all_fields, &asked);
    let mut c_types = BTreeMap::new();
    let mut c_fields = BTreeMap::new();
    let mut c_consts = BTreeMap::new();
    let mut c_ops = Vec::new();
    for l in &lines {
        let w: Vec<&str> = l.split(' ').collect();
        let n = |i: usize| -> i64 { w[i].parse().unwrap_or_else(|_| panic!("bad line {l}")) };
        match w[0] {
            // Type names may hold a space ("struct timespec"): the last two words are numbers.
            "type" => {
                let k = w.len();
                c_types.insert(w[1..k - 2].join(" "), (n(k - 2), n(k - 1)));
            }
            "field" => {
                let k = w.len();
                c_fields.insert(w[1..k - 2].join(" "), (n(k - 2), n(k - 1)));
            }
            "const" => {
                c_consts.insert(w[1].to_string(), n(2));
            }
            "op" => c_ops.push((n(1), w[2].to_string())),
            _ => panic!("unexpected probe line: {l}"),
        }
    }

    // Everything asked for was printed (a parse slip must not make the checks vacuous).
    assert_eq!(c_types.len(), all_types.len());
    assert_eq!(c_fields.len(), all_fields.len());
    assert_eq!(c_consts.len(), asked.len());

    for t in &all_types {
        let c = c_types[t.c_type];
        if c != (t.size as i64, t.align as i64) {
            bad.push(format!(
                "{}: C size/align {:?}, Rust {}/{}",
                t.c_type, c, t.size, t.align
            ));
        }
    }
    for f in &all_fields {
        let key = format!("{}.{}", f.c_type, f.c_field);
        let c = c_fields[&key];
        if c != (f.offset as i64, f.size as i64) {
            bad.push(format!(
                "{key}: C offset/size {:?}, Rust {}/{}",
                c, f.offset, f.size
            ));
        }
    }
    for (name, value, _) in &asked {
        if c_consts[*name] != *value {
            bad.push(format!("{name}: C {}, Rust {value}", c_consts[*name]));
        }
    }

    // The error table: every code of the header has the same name in ffi/ (the header's last
    // entry is an end-of-range marker, `CU_FILE_IO_MAX_ERROR`, never returned, whose number
    // newer versions reuse for real errors), and every code of ffi/ below that marker is in the
    // header.
    let (max_code, max_name) = c_ops
        .last()
        .cloned()
        .expect("the header has an error table");
    assert_eq!(max_name, "CU_FILE_IO_MAX_ERROR");
    assert!(c_ops.len() > 30, "only {} error codes parsed", c_ops.len());
    for (code, name) in &c_ops[..c_ops.len() - 1] {
        let ours = CUfileOpError(*code as u32).name();
        if ours != Some(name.as_str()) {
            bad.push(format!("error {code}: header {name}, ffi {ours:?}"));
        }
    }
    for (code, name, _) in CUfileOpError::ALL {
        if i64::from(code.0) < max_code && !c_ops.iter().any(|(c, _)| *c == i64::from(code.0)) {
            bad.push(format!("ffi has {name} = {}, the header does not", code.0));
        }
    }

    eprintln!(
        "checked against {}: {} types, {} fields, {} constants, {} error codes",
        wheel.file_name,
        c_types.len(),
        c_fields.len(),
        c_consts.len(),
        c_ops.len()
    );
    assert!(
        bad.is_empty(),
        "ffi/ differs from {}:\n{}",
        wheel.header().display(),
        bad.join("\n")
    );
}

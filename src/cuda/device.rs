//! A CUDA device and its primary context.
//!
//! gdswap uses the device's primary context (the one the runtime API shares). A context is
//! current per thread, as a stack. Two ways to use one:
//! - gdswap's own threads (a run's workers, the swap store's I/O threads) open a [`Device`]
//!   with [`Device::open`], which makes its context current there for the thread's life, and
//!   keep every driver call of that worker on that thread;
//! - calls made on a caller's thread (device and pinned tensors: creating, copying, dropping
//!   them; the swap store's ordering of a swap after the caller's GPU work) take a
//!   [`Device::retain`]ed context and [`Device::enter`] it for the call: pushed onto the
//!   thread's context stack and popped before returning, so whatever context the caller had
//!   current (or none) is current again afterwards, on every path out, panics included.

use std::marker::PhantomData;

use cudarc::driver::sys;

use crate::error::{Error, Result, Setting};

use super::api::{self, api};
use super::{check, driver};

/// A retained primary context of one device.
pub struct Device {
    ordinal: usize,
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
}

// SAFETY: a context handle is usable from any thread (made current there): the driver API is
// thread safe. A worker opens, uses and releases its Device on its own thread; a device
// tensor's Device moves with its memory, and whichever thread drops it enters it first.
unsafe impl Send for Device {}

impl Device {
    /// Opens device `ordinal` (`--gpu`) for a thread of gdswap's own: retains its primary
    /// context and makes it current on this thread (replacing the top of the thread's context
    /// stack, and left there).
    pub fn open(ordinal: usize) -> Result<Device> {
        let device = Device::retain(ordinal)?;
        device.make_current()?;
        Ok(device)
    }

    /// Retains device `ordinal`'s primary context without making it current anywhere: for
    /// calls on a caller's thread, each inside [`Device::enter`].
    pub fn retain(ordinal: usize) -> Result<Device> {
        // Backends report their own unavailability before they get here (their probe); this
        // is what a direct user (a device or pinned tensor) sees.
        let info = driver::load()
            .map_err(|reason| Error::CudaUnavailable(format!("CUDA unavailable: {reason}")))?;
        check_ordinal(ordinal, info.devices)?;
        let mut dev: sys::CUdevice = 0;
        check(
            // SAFETY: the driver is loaded and initialised (driver::load); cuDeviceGet writes one
            // device handle.
            unsafe { (api().cuDeviceGet)(&mut dev, ordinal as i32) },
            || format!("cuDeviceGet (device {ordinal})"),
        )?;
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        check(
            // SAFETY: `dev` is a valid device; cuDevicePrimaryCtxRetain writes one context handle.
            unsafe { (api().cuDevicePrimaryCtxRetain)(&mut ctx, dev) },
            || format!("cuDevicePrimaryCtxRetain (creating the context of device {ordinal})"),
        )?;
        Ok(Device { ordinal, dev, ctx })
    }

    /// Makes the context current on the calling thread (for gdswap's own threads).
    pub fn make_current(&self) -> Result<()> {
        // SAFETY: `ctx` is a retained primary context, alive until `self` is dropped.
        check(unsafe { (api().cuCtxSetCurrent)(self.ctx) }, || {
            format!("cuCtxSetCurrent (device {})", self.ordinal)
        })
    }

    /// Pushes the context onto this thread's context stack until the returned guard is
    /// dropped (on this thread: the guard cannot be sent), which pops it.
    pub fn enter(&self) -> Result<Entered<'_>> {
        // SAFETY: `ctx` is a retained primary context, alive while the guard borrows `self`.
        check(unsafe { (api().cuCtxPushCurrent_v2)(self.ctx) }, || {
            format!("cuCtxPushCurrent (device {})", self.ordinal)
        })?;
        Ok(Entered {
            device: self,
            _same_thread: PhantomData,
        })
    }

    /// The device's CUDA ordinal (as `--gpu` gives it).
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> Result<String> {
        let mut buf = [0 as std::ffi::c_char; 256];
        check(
            // SAFETY: cuDeviceGetName writes at most `len` bytes, NUL-terminated, into `buf`.
            unsafe { (api().cuDeviceGetName)(buf.as_mut_ptr(), buf.len() as i32, self.dev) },
            || format!("cuDeviceGetName (device {})", self.ordinal),
        )?;
        buf[buf.len() - 1] = 0;
        // SAFETY: `buf` is NUL-terminated (forced just above) and outlives the borrow.
        Ok(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}

/// One CUDA device as `gdswap check` lists it; each field is the driver's answer, or why
/// there is none (a call failed, or the libcuda lacks the optional function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's CUDA ordinal.
    pub ordinal: usize,
    /// `cuDeviceGetName`'s answer, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: std::result::Result<String, String>,
    /// `cuDeviceTotalMem`'s answer, in bytes.
    pub total_memory: std::result::Result<u64, String>,
    /// As the driver writes it, e.g. `0000:3B:00.0`.
    pub pci_bus_id: std::result::Result<String, String>,
}

/// Every device the driver sees, without creating a context; why not when libcuda cannot be
/// loaded ([`driver::load`]).
pub fn list_devices() -> std::result::Result<Vec<DeviceInfo>, String> {
    let info = driver::load()?;
    Ok((0..info.devices).map(device_info).collect())
}

fn missing(symbol: &str) -> String {
    format!("this libcuda has no {symbol}")
}

fn device_info(ordinal: usize) -> DeviceInfo {
    let failed = |call: &str, rc: api::Code| format!("{call} failed: {}", super::describe(rc));
    let mut dev: sys::CUdevice = 0;
    // SAFETY: the driver is loaded and initialised (list_devices called driver::load);
    // cuDeviceGet writes one device handle.
    let rc = unsafe { (api().cuDeviceGet)(&mut dev, ordinal as i32) };
    if rc != api::CUDA_SUCCESS {
        let why = failed("cuDeviceGet", rc);
        return DeviceInfo {
            ordinal,
            name: Err(why.clone()),
            total_memory: Err(why.clone()),
            pci_bus_id: Err(why),
        };
    }
    let mut buf = [0 as std::ffi::c_char; 256];
    // SAFETY: cuDeviceGetName is required (resolved by driver::load); it writes at
    // most `len` bytes, NUL-terminated, into `buf`.
    let rc = unsafe { (api().cuDeviceGetName)(buf.as_mut_ptr(), buf.len() as i32, dev) };
    let name = if rc == api::CUDA_SUCCESS {
        Ok(c_string(&buf))
    } else {
        Err(failed("cuDeviceGetName", rc))
    };
    let total_memory = if let Some(total_mem) = api().cuDeviceTotalMem_v2 {
        let mut bytes: usize = 0;
        // SAFETY: the library's cuDeviceTotalMem_v2 (resolved only where it exists) writes
        // one size_t.
        let rc = unsafe { total_mem(&mut bytes, dev) };
        if rc == api::CUDA_SUCCESS {
            Ok(bytes as u64)
        } else {
            Err(failed("cuDeviceTotalMem_v2", rc))
        }
    } else {
        Err(missing("cuDeviceTotalMem_v2"))
    };
    let pci_bus_id = if let Some(bus_id) = api().cuDeviceGetPCIBusId {
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: the library's cuDeviceGetPCIBusId (resolved only where it exists) writes at
        // most `len` bytes, NUL-terminated, into `buf`.
        let rc = unsafe { bus_id(buf.as_mut_ptr(), buf.len() as i32, dev) };
        if rc == api::CUDA_SUCCESS {
            Ok(c_string(&buf))
        } else {
            Err(failed("cuDeviceGetPCIBusId", rc))
        }
    } else {
        Err(missing("cuDeviceGetPCIBusId"))
    };
    DeviceInfo {
        ordinal,
        name,
        total_memory,
        pci_bus_id,
    }
}

/// The string the driver wrote into `buf`: up to its first NUL (or the whole buffer).
fn c_string(buf: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The error for a `--gpu` ordinal the driver does not have.
pub fn check_ordinal(ordinal: usize, devices: usize) -> Result<()> {
    if ordinal >= devices {
        return Err(Error::invalid(
            Setting::Gpu,
            format!(
                "device {ordinal} does not exist: the CUDA driver sees {devices} device{} (0..={}); check nvidia-smi and CUDA_VISIBLE_DEVICES",
                if devices == 1 { "" } else { "s" },
                devices.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// The context of a [`Device`] pushed on this thread; popped on drop.
pub struct Entered<'a> {
    device: &'a Device,
    /// Pushed on one thread, popped on the same one.
    _same_thread: PhantomData<*const ()>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut popped: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: pops the context `enter` pushed on this thread (the guard is not Send, and
        // guards drop in reverse order of creation, so it is the top of the stack unless code
        // in between changed the stack itself); writes one handle.
        let rc = unsafe { (api().cuCtxPopCurrent_v2)(&mut popped) };
        debug_assert!(
            rc != api::CUDA_SUCCESS || popped == self.device.ctx,
            "the context stack changed under an entered device {}",
            self.device.ordinal
        );
    }
}

/// The context current on the calling thread (its raw handle as an integer; 0 for none), or
/// why the driver cannot say: for checks that gdswap leaves a caller's thread as it found it.
pub fn current_context() -> Result<usize> {
    driver::load()
        .map_err(|reason| Error::CudaUnavailable(format!("CUDA unavailable: {reason}")))?;
    let mut ctx: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: the driver is loaded and initialised; cuCtxGetCurrent writes one handle.
    check(unsafe { (api().cuCtxGetCurrent)(&mut ctx) }, || {
        "cuCtxGetCurrent"
    })?;
    Ok(ctx as usize)
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: releases the one reference this value retained. Everything allocated in the
        // context is owned by values that the owner of this Device drops first.
        unsafe { (api().cuDevicePrimaryCtxRelease_v2)(self.dev) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_ordinal_names_the_flag_and_the_count() {
        check_ordinal(0, 1).unwrap();
        let e = check_ordinal(2, 2).unwrap_err().to_string();
        assert!(
            e.starts_with("gpu: device 2 does not exist: the CUDA driver sees 2 devices (0..=1)"),
            "{e}"
        );
        let e = check_ordinal(1, 1).unwrap_err().to_string();
        assert!(e.contains("sees 1 device (0..=0)"), "{e}");
    }
}

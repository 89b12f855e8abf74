//! The coordinator's side of the barrier protocol (the calling thread): the per-loop
//! bookkeeping done while every worker waits (whether the loop runs, dropping caches, the
//! clock and CPU samples), and its meetings with the other runs' coordinators.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::barrier::PhaseBarrier;
use super::measurements::LoopMeasurement;
use crate::datafiles::PreparedFiles;
use crate::error::{Error, Result};
use crate::io::sys::{self, CpuTime};
use crate::options::RunOptions;
use crate::ranks::{Coordinator, LoopWindow};

/// What the coordinator tells the workers before each loop: whether it runs (a time-based run
/// stops once its time is up), and the soak's count of wrong blocks over all threads.
#[derive(Default)]
pub(super) struct LoopControl {
    pub(super) go_on: AtomicBool,
    pub(super) verify_errors: AtomicU64,
}

pub(super) fn coordinate(
    opts: &RunOptions,
    prepared: &PreparedFiles,
    barrier: &PhaseBarrier,
    control: &LoopControl,
    coord: &dyn Coordinator,
) -> Result<Vec<LoopMeasurement>> {
    barrier.wait()?; // setup done
    coord.barrier()?; // every process's setup done
    barrier.wait()?; // pre done
    prepared.before_loops(opts)?;
    coord.barrier()?; // every process ready for the loops
    let mut loops = Vec::with_capacity(opts.workload.loops as usize);
    // A time-based run's measured loops end once this instant has passed.
    let mut deadline: Option<Instant> = None;
    let mut i: u32 = 0;
    loop {
        let go_on = match opts.duration {
            None => i < opts.total_loops(),
            // Rank 0's clock decides for every rank, so they all stop at the same loop and
            // every loop's barrier is met.
            Some(_) => coord
                .agree(i < opts.workload.warmup || deadline.map_or(true, |d| Instant::now() < d))?,
        };
        // Published before the barrier, whose mutex orders it before every worker's read.
        control.go_on.store(go_on, Ordering::Relaxed);
        barrier.wait()?; // next
        if !go_on {
            break;
        }
        let measured = i >= opts.workload.warmup;
        barrier.wait()?; // ready
        if measured && opts.drop_caches {
            sys::drop_caches().map_err(Error::DropCaches)?;
        }
        // Every process's workers wait at "go": the loops start together.
        coord.barrier()?;
        let cpu0 = CpuTime::process();
        let wall0 = std::time::SystemTime::now();
        let t0 = Instant::now();
        if measured && deadline.is_none() {
            deadline = opts.duration.map(|d| t0 + d);
        }
        barrier.wait()?; // go
        barrier.wait()?; // done
        let e2e_time = t0.elapsed();
        let wall1 = wall0 + e2e_time;
        let cpu = CpuTime::process().since(cpu0);
        if measured {
            loops.push(LoopMeasurement {
                e2e_time,
                cpu,
                window: LoopWindow::of(wall0, wall1),
                span: None,
            });
        }
        // A soak's workers verify this loop before the next "next"; u32::MAX loops end it.
        i = match i.checked_add(1) {
            Some(n) => n,
            None => {
                control.go_on.store(false, Ordering::Relaxed);
                barrier.wait()?; // next: stop
                break;
            }
        };
    }
    barrier.wait()?; // synced
    coord.barrier()?; // every process's data durable
    barrier.wait()?; // post done
    coord.barrier()?; // every process verified and released
    Ok(loops)
}

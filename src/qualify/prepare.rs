//! Before any test runs: the spec read and every test's targets and workloads checked, each
//! target's run options made ([`prepare`]), and where each target's worker threads will run
//! ([`numa_placement`]). A qualification that cannot run stops here, with nothing run.

use std::path::Path;
use std::time::Duration;

use super::record::Record;
use super::spec::{self, Spec, TestSpec};
use super::Invocation;
use crate::check::NodeReport;
use crate::options::{GpuOptions, RunOptions, Target, Workload};
use crate::ranks::Coordinator;

/// Reads the spec and checks every target and workload before anything runs: the spec and
/// each test's run options (this rank's own, under several ranks).
pub(super) fn prepare(
    inv: &Invocation,
    record: &mut Record,
    coord: &dyn Coordinator,
) -> Result<(Spec, Vec<Vec<RunOptions>>), String> {
    let text = crate::io::file::read_regular(&inv.spec_path).map_err(|e| {
        let spec = crate::error::setting_name(crate::error::Setting::Spec);
        format!("{spec} {}: cannot read it: {e}", inv.spec_path.display())
    })?;
    record.spec_text = Some(text.clone());
    let spec = spec::parse(&inv.spec_path, &text).map_err(|e| e.0)?;
    record.spec = Some(spec.clone());

    // Every target and workload checked before anything runs.
    let mut plans = Vec::with_capacity(spec.tests.len());
    for t in &spec.tests {
        if coord.size() > 1 && t.targets.len() > 1 {
            return Err(format!(
                "test '{}': {} targets, but under a parallel launch each rank runs one target \
                 (MPI is called from one thread of a rank, and a test's targets run on their own \
                 threads): give each test one target; each rank uses its own subdirectory of it \
                 (<target>/rank<N>), so start one rank per drive or GPU",
                t.name,
                t.targets.len()
            ));
        }
        for dir in &t.targets {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "test '{}': target {} is not a directory",
                        t.name,
                        dir.display()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "test '{}': target {} cannot be reached: {e}",
                        t.name,
                        dir.display()
                    ))
                }
            }
        }
        let opts: Vec<RunOptions> = run_options(t, inv.duration)
            .into_iter()
            .map(|o| crate::ranks::for_rank(o, coord))
            .collect();
        for o in &opts {
            // A rank's own directory, when it is there already, must be one.
            if let Target::Dir(d) = &o.workload.target {
                if coord.size() > 1 && d.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                    return Err(format!(
                        "test '{}': target {} is not a directory",
                        t.name,
                        d.display()
                    ));
                }
            }
            o.validate()
                .map_err(|e| format!("test '{}': {e}", t.name))?;
        }
        plans.push(opts);
    }
    Ok((spec, plans))
}

/// NUMA placement of every target's worker threads: the NUMA node of its GPU (GPU backends)
/// or of its drive, and that node's CPUs, from sysfs, within `allowed` (the CPUs this process
/// may run on, [`crate::numa::node_cpus_allowed`]: a launcher's or taskset's binding is kept,
/// as `run` keeps it); `plans` get their `numa_placement`. Per test, per target: (what the
/// binding is, the CPUs). A binding the affinity narrowed says so; a node none of whose CPUs
/// is allowed is not bound, and says why.
#[allow(clippy::type_complexity)]
pub(super) fn numa_placement(
    spec: &Spec,
    plans: &mut [Vec<RunOptions>],
    check: Option<&NodeReport>,
    sysfs: &Path,
    allowed: std::result::Result<&[usize], &str>,
) -> std::collections::BTreeMap<String, Vec<(String, Option<Vec<usize>>)>> {
    let mut out = std::collections::BTreeMap::new();
    for (t, opts) in spec.tests.iter().zip(plans.iter_mut()) {
        let gpu_backend = t.backend.memory() == crate::types::MemoryKind::Device;
        let mut per_target = Vec::new();
        for (dir, o) in t.targets.iter().zip(opts.iter_mut()) {
            let node = if gpu_backend {
                let ordinal = o.gpu.device;
                check
                    .and_then(|c| c.gpus.devices.iter().find(|g| g.ordinal == ordinal))
                    .and_then(|g| g.numa_node)
                    .and_then(|n| u32::try_from(n).ok())
                    .map(|n| (n, format!("GPU {ordinal}'s")))
                    .ok_or_else(|| format!("sysfs gives no NUMA node for GPU {ordinal}"))
            } else {
                crate::topology::drive_of(sysfs, dir)
                    .ok()
                    .and_then(|d| d.pci.and_then(|p| p.numa_node))
                    .map(|n| (n, "the drive's".to_string()))
                    .ok_or_else(|| "sysfs gives no NUMA node for the drive".to_string())
            };
            let entry = match (node, allowed) {
                (Err(why), _) => (format!("not bound: {why}"), None),
                (Ok(_), Err(why)) => (format!("not bound: {why}"), None),
                (Ok((n, whose)), Ok(allowed)) => {
                    match crate::numa::node_cpus_allowed(sysfs, n, allowed) {
                        Ok(c) => {
                            o.numa_placement = Some(crate::numa::NumaPlacement {
                                node: Some(n),
                                cpus: c.cpus.clone(),
                                reason: whose.clone(),
                            });
                            let within = if c.narrowed() {
                                format!(
                                    " (node {n}'s CPUs {} within this process's affinity {})",
                                    crate::numa::cpu_ranges(&c.listed),
                                    crate::numa::cpu_ranges(allowed)
                                )
                            } else {
                                String::new()
                            };
                            (
                                format!("NUMA node {n} ({whose}), CPUs {:?}{within}", c.cpus),
                                Some(c.cpus),
                            )
                        }
                        Err(why) => (format!("not bound: {why} ({whose})"), None),
                    }
                }
            };
            per_target.push(entry);
        }
        out.insert(t.name.clone(), per_target);
    }
    out
}

/// The run options of each target of `t`.
fn run_options(t: &TestSpec, duration: Option<Duration>) -> Vec<RunOptions> {
    t.targets
        .iter()
        .enumerate()
        .map(|(i, dir)| RunOptions {
            backend: t.backend,
            workload: Workload {
                op: t.op,
                target: Target::Dir(dir.clone()),
                size: t.size(),
                block_size: t.block_size.0,
                queue_depth: t.queue_depth,
                threads: t.threads,
                loops: t.loops,
                warmup: t.warmup,
            },
            random: t.random,
            verify: t.verifies(),
            gpu: GpuOptions {
                device: t.gpus.get(i).copied().unwrap_or(t.gpu),
                bounce_buffers: 2 * t.queue_depth as usize,
                gds: (t.backend == crate::types::BackendId::Gds).then(Default::default),
                ..GpuOptions::default()
            },
            create_dir: false,
            duration: duration.or(t.duration.map(|s| s.0)),
            // A threshold on verify errors makes a soak: every loop verified, wrong blocks
            // counted up to it (one more stops the run).
            max_errors: t.thresholds.max_verify_errors,
            // Qualify places the workers itself ([`numa_placement`]), binding where sysfs
            // names a node whatever the number of nodes.
            numa: crate::numa::NumaChoice::Off,
            ..RunOptions::default()
        })
        .collect()
}

//! NUMA placement of a run's worker threads (`--numa auto|off|N`): which node a run's
//! workers and their buffers are bound to, decided from sysfs ([`crate::topology`]) before
//! the run; the harness binds each worker (CPUs with sched_setaffinity, memory with
//! set_mempolicy, [`crate::io::sys`]) before it allocates its buffers.
//!
//! `auto` binds to the NUMA node of the run's GPU (GPU backends) or of its drive, and only on
//! a machine with more than one NUMA node: with one node there is nothing to choose, and
//! binding would only undo a launcher's own placement. The CPUs are those of the node that
//! this process may run on (its affinity when the placement is decided), so a launcher's
//! tighter binding (`mpirun --bind-to core`) is kept within the node.

use std::path::Path;

use crate::error::{Error, Result, Setting};
use crate::topology;
pub use crate::types::numa::{cpu_ranges, NumaChoice, NumaPlacement};

/// The GPU a run uses: its ordinal and PCI bus id (as the CUDA driver gives it), or why the
/// bus id is not known.
pub type GpuSite = (usize, std::result::Result<String, String>);

/// Decides the placement of a run's workers: `choice`, the sysfs tree at `root`, the run's
/// GPU (`None` for host backends), its data path (a file or directory; the nearest existing
/// ancestor names the drive) and the CPUs this process may run on. An explicit node that
/// the machine does not have, or none of whose CPUs is allowed, is an error naming the flag;
/// `auto` never fails, it says why it did not bind.
pub fn resolve(
    choice: NumaChoice,
    root: &Path,
    gpu: Option<&GpuSite>,
    data: &Path,
    allowed: &[usize],
) -> Result<NumaPlacement> {
    let nodes = topology::numa_nodes(root);
    let cpus_of = |n: u32| node_cpus_allowed(root, n, allowed).map(|c| c.cpus);
    match choice {
        NumaChoice::Off => Ok(NumaPlacement::unbound("NUMA placement off")),
        NumaChoice::Node(n) => {
            if !nodes.is_empty() && !nodes.contains(&n) {
                return Err(Error::invalid(
                    Setting::Numa,
                    format!(
                        "node {n} is not one of this machine's NUMA nodes ({})",
                        nodes
                            .iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let cpus = cpus_of(n).map_err(|why| Error::invalid(Setting::Numa, why))?;
            Ok(NumaPlacement {
                node: Some(n),
                cpus,
                reason: "asked for".into(),
            })
        }
        NumaChoice::Auto => {
            if nodes.len() <= 1 {
                return Ok(NumaPlacement::unbound(match nodes.first() {
                    Some(_) => "one NUMA node, nothing to choose",
                    None => "sysfs lists no NUMA nodes",
                }));
            }
            let found = match gpu {
                Some((ordinal, bus_id)) => bus_id
                    .clone()
                    .and_then(|id| topology::pci_device(root, &id))
                    .and_then(|d| {
                        d.numa_node
                            .ok_or_else(|| format!("sysfs gives no NUMA node for {}", d.address))
                    })
                    .map(|n| (n, format!("GPU {ordinal}'s")))
                    .map_err(|why| format!("GPU {ordinal}: {why}")),
                None => {
                    let existing = data
                        .ancestors()
                        .find(|a| a.exists())
                        .unwrap_or(Path::new("."));
                    topology::drive_of(root, existing)
                        .and_then(|d| {
                            d.pci.and_then(|p| p.numa_node).ok_or_else(|| {
                                format!("sysfs gives no NUMA node for drive {}", d.name)
                            })
                        })
                        .map(|n| (n, "the drive's".to_string()))
                        .map_err(|why| format!("the drive of {}: {why}", data.display()))
                }
            };
            let (n, whose) = match found {
                Ok(f) => f,
                Err(why) => return Ok(NumaPlacement::unbound(why)),
            };
            Ok(match cpus_of(n) {
                Ok(cpus) => NumaPlacement {
                    node: Some(n),
                    cpus,
                    reason: whose,
                },
                Err(why) => NumaPlacement::unbound(why),
            })
        }
    }
}

/// The CPUs of one NUMA node a process may bind its workers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCpus {
    /// The node's CPUs this process may run on: those to bind to.
    pub cpus: Vec<usize>,
    /// All the node's CPUs, as sysfs lists them.
    pub listed: Vec<usize>,
}

impl NodeCpus {
    /// The process's affinity left some of the node's CPUs out.
    pub fn narrowed(&self) -> bool {
        self.cpus.len() < self.listed.len()
    }
}

/// NUMA node `n`'s CPUs (sysfs at `root`) within `allowed`, the CPUs this process may run on
/// (its affinity: what a launcher's `--bind-to`, taskset or a cgroup left it). Binding to a
/// node's CPU outside them would undo that binding (or fail, for a CPU the cgroup forbids), so
/// `run` and `qualify` both bind only to these. An error says why there are none.
pub fn node_cpus_allowed(
    root: &Path,
    n: u32,
    allowed: &[usize],
) -> std::result::Result<NodeCpus, String> {
    let listed = topology::node_cpus(root, n)
        .ok_or_else(|| format!("sysfs lists no CPUs of NUMA node {n}"))?;
    let cpus: Vec<usize> = listed
        .iter()
        .copied()
        .filter(|c| allowed.contains(c))
        .collect();
    if cpus.is_empty() {
        return Err(format!(
            "none of NUMA node {n}'s CPUs ({}) is one this process may run on ({}; a launcher's or taskset's binding)",
            cpu_ranges(&listed),
            cpu_ranges(allowed)
        ));
    }
    Ok(NodeCpus { cpus, listed })
}

/// The placement of a run of `opts` on this machine: its GPU's node (GPU backends, the bus id
/// from the CUDA driver) or its drive's, read from [`topology::sysfs_root`].
pub fn resolve_for(choice: NumaChoice, opts: &crate::options::RunOptions) -> Result<NumaPlacement> {
    if choice == NumaChoice::Off {
        return Ok(NumaPlacement::unbound("NUMA placement off"));
    }
    let gpu_backend =
        crate::backend::get(opts.backend).memory() != crate::backend::MemoryKind::Host;
    let gpu: Option<GpuSite> = gpu_backend.then(|| {
        let ordinal = opts.gpu.device;
        let bus = crate::cuda::device::list_devices().and_then(|list| {
            list.into_iter()
                .find(|d| d.ordinal == ordinal)
                .ok_or_else(|| format!("the CUDA driver has no GPU {ordinal}"))
                .and_then(|d| d.pci_bus_id)
        });
        (ordinal, bus)
    });
    let data = match &opts.workload.target {
        crate::options::Target::Dir(p) | crate::options::Target::File(p) => p.clone(),
    };
    let allowed = crate::io::sys::thread_cpus().map_err(|e| Error::Thread {
        what: "reading this process's CPU affinity".into(),
        source: e,
    })?;
    resolve(
        choice,
        &topology::sysfs_root(),
        gpu.as_ref(),
        &data,
        &allowed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(root: &Path, n: u32, cpus: &str) {
        let d = root.join(format!("devices/system/node/node{n}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cpulist"), format!("{cpus}\n")).unwrap();
    }

    fn gpu(root: &Path, addr: &str, numa: i64) {
        let d = root.join("bus/pci/devices").join(addr);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("numa_node"), format!("{numa}\n")).unwrap();
    }

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse(), Ok(NumaChoice::Auto));
        assert_eq!("off".parse(), Ok(NumaChoice::Off));
        assert_eq!("3".parse(), Ok(NumaChoice::Node(3)));
        assert!("x".parse::<NumaChoice>().unwrap_err().contains("`x`"));
        assert_eq!(cpu_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn one_node_auto_binds_nothing_an_explicit_node_binds() {
        let dir = crate::testutil::scratch_dir();
        let root = dir.path();
        node(root, 0, "0-3");
        gpu(root, "0000:18:00.0", 0);
        let site: GpuSite = (0, Ok("0000:18:00.0".into()));
        let all = [0, 1, 2, 3];
        let p = resolve(NumaChoice::Auto, root, Some(&site), root, &all).unwrap();
        assert_eq!(p.node, None);
        assert_eq!(p.to_string(), "not bound: one NUMA node, nothing to choose");
        let p = resolve(NumaChoice::Node(0), root, None, root, &all).unwrap();
        assert_eq!((p.node, p.cpus.clone()), (Some(0), vec![0, 1, 2, 3]));
        assert_eq!(
            p.to_string(),
            "NUMA node 0 (asked for): threads on CPUs 0-3, memory bound to node 0"
        );
        // Only the CPUs this process may use.
        let p = resolve(NumaChoice::Node(0), root, None, root, &[2, 3, 9]).unwrap();
        assert_eq!(p.cpus, vec![2, 3]);
        let e = resolve(NumaChoice::Node(1), root, None, root, &all).unwrap_err();
        assert!(
            e.to_string()
                .contains("node 1 is not one of this machine's NUMA nodes (0)"),
            "{e}"
        );
        let e = resolve(NumaChoice::Node(0), root, None, root, &[7]).unwrap_err();
        assert!(
            e.to_string().contains("none of NUMA node 0's CPUs (0-3)"),
            "{e}"
        );
        let p = resolve(NumaChoice::Off, root, Some(&site), root, &all).unwrap();
        assert_eq!(p.node, None);
    }

    #[test]
    fn two_nodes_auto_follows_the_gpu() {
        let dir = crate::testutil::scratch_dir();
        let root = dir.path();
        node(root, 0, "0-1");
        node(root, 1, "2-3");
        gpu(root, "0000:18:00.0", 0);
        gpu(root, "0000:29:00.0", 1);
        let all = [0, 1, 2, 3];
        let p = resolve(
            NumaChoice::Auto,
            root,
            Some(&(1, Ok("00000000:29:00.0".into()))),
            root,
            &all,
        )
        .unwrap();
        assert_eq!((p.node, p.cpus.clone()), (Some(1), vec![2, 3]));
        assert_eq!(p.reason, "GPU 1's");
        let p = resolve(
            NumaChoice::Auto,
            root,
            Some(&(0, Ok("0000:18:00.0".into()))),
            root,
            &all,
        )
        .unwrap();
        assert_eq!((p.node, p.cpus), (Some(0), vec![0, 1]));
        // No bus id, or no node for it: not bound, saying why.
        let p = resolve(
            NumaChoice::Auto,
            root,
            Some(&(2, Err("no device".into()))),
            root,
            &all,
        )
        .unwrap();
        assert_eq!(p.to_string(), "not bound: GPU 2: no device");
        // The launcher allows only CPUs of node 0: GPU 1's node cannot be used.
        let p = resolve(
            NumaChoice::Auto,
            root,
            Some(&(1, Ok("0000:29:00.0".into()))),
            root,
            &[0, 1],
        )
        .unwrap();
        assert_eq!(p.node, None);
        assert!(
            p.reason.starts_with("none of NUMA node 1's CPUs (2-3)"),
            "{p}"
        );
        // A host backend on a path whose drive sysfs does not know.
        let p = resolve(NumaChoice::Auto, root, None, &root.join("missing/x"), &all).unwrap();
        assert_eq!(p.node, None);
        assert!(p.reason.starts_with("the drive of "), "{p}");
    }

    /// On this machine: a worker bound as the harness binds it runs exactly on its node's
    /// CPUs (those allowed to this process), with its memory bound to the node.
    #[test]
    fn binding_a_thread_on_this_machine_gives_the_nodes_cpulist() {
        let root = Path::new("/sys");
        let allowed = crate::io::sys::thread_cpus().unwrap();
        let Some(&first) = topology::numa_nodes(root).first() else {
            eprintln!("skipped: sysfs lists no NUMA nodes");
            return;
        };
        let p = resolve(
            NumaChoice::Node(first),
            root,
            None,
            Path::new("."),
            &allowed,
        )
        .unwrap();
        let listed = topology::node_cpus(root, first).unwrap();
        let want: Vec<usize> = listed.into_iter().filter(|c| allowed.contains(c)).collect();
        assert_eq!(p.cpus, want);
        std::thread::spawn(move || {
            crate::harness::bind_worker(&p, 0).unwrap();
            assert_eq!(crate::io::sys::thread_cpus().unwrap(), want);
            assert_eq!(
                crate::io::sys::thread_memory_policy().unwrap(),
                (crate::io::sys::MPOL_BIND, vec![first])
            );
        })
        .join()
        .unwrap();
    }
}

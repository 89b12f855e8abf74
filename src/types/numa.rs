//! NUMA placement as data: how a run picks its node (`--numa`) and where its workers went.
//! Deciding it from sysfs is [`crate::numa`]'s job (above the backends); these types sit at the
//! bottom so that run options can carry them.

use serde::{Deserialize, Serialize};

/// How a run picks its NUMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumaChoice {
    /// The node of the run's GPU, or of its drive, when the machine has several nodes.
    #[default]
    Auto,
    /// No binding: the threads run where the scheduler (or the launcher) puts them.
    Off,
    /// This node, whatever the devices.
    Node(u32),
}

impl std::str::FromStr for NumaChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(NumaChoice::Auto),
            "off" => Ok(NumaChoice::Off),
            n => n
                .parse()
                .map(NumaChoice::Node)
                .map_err(|_| format!("`{s}` is not auto, off or a NUMA node number (0, 1, ...)")),
        }
    }
}

/// Where a run's workers went, as decided and shown in its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaPlacement {
    /// The node the workers and their buffers are bound to; `None`: not bound.
    pub node: Option<u32>,
    /// The CPUs the workers run on (empty when not bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<usize>,
    /// Whose node it is (`GPU 0's`, `the drive's`, `asked for`), or why nothing is bound.
    pub reason: String,
}

impl NumaPlacement {
    /// Nothing bound, for `reason`.
    pub fn unbound(reason: impl Into<String>) -> Self {
        NumaPlacement {
            node: None,
            cpus: Vec::new(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for NumaPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.node {
            Some(n) => write!(
                f,
                "NUMA node {n} ({}): threads on CPUs {}, memory bound to node {n}",
                self.reason,
                cpu_ranges(&self.cpus)
            ),
            None => write!(f, "not bound: {}", self.reason),
        }
    }
}

/// `[0, 1, 2, 5]` as `0-2,5`.
pub fn cpu_ranges(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if j == i {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

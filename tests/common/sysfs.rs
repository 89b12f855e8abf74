//! Fixture sysfs trees for `gdswap::topology` (pointed at by GDSWAP_SYSFS_ROOT): PCI
//! functions with a NUMA node and a link, block devices behind them, NUMA nodes.

use std::path::Path;

/// Writes a PCI function at `devices/pci0000:00/<address>` with its NUMA node and link
/// (current speed and width, max speed and width), linked from `bus/pci/devices`.
pub fn pci(root: &Path, address: &str, numa: i64, link: (&str, u32, &str, u32)) {
    let dir = root.join("devices/pci0000:00").join(address);
    std::fs::create_dir_all(&dir).unwrap();
    let put = |n: &str, v: String| std::fs::write(dir.join(n), v + "\n").unwrap();
    put("numa_node", numa.to_string());
    put("current_link_speed", format!("{} PCIe", link.0));
    put("current_link_width", link.1.to_string());
    put("max_link_speed", format!("{} PCIe", link.2));
    put("max_link_width", link.3.to_string());
    let bus = root.join("bus/pci/devices");
    std::fs::create_dir_all(&bus).unwrap();
    let _ = std::fs::remove_file(bus.join(address));
    std::os::unix::fs::symlink(&dir, bus.join(address)).unwrap();
}

/// A block device `name` behind PCI function `address` (made with [`pci`]), with device
/// number `major:minor` linked from `dev/block`.
pub fn drive(root: &Path, address: &str, name: &str, major: u32, minor: u32) {
    let dir = root
        .join("devices/pci0000:00")
        .join(address)
        .join("nvme/nvme0")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let block = root.join("dev/block");
    std::fs::create_dir_all(&block).unwrap();
    let link = block.join(format!("{major}:{minor}"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&dir, link).unwrap();
}

/// NUMA node `node` with CPUs `cpulist`.
pub fn node(root: &Path, node: u32, cpulist: &str) {
    let dir = root.join(format!("devices/system/node/node{node}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cpulist"), format!("{cpulist}\n")).unwrap();
}

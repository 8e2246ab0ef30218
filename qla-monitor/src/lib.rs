//! SAN path health for fencekit: reads path *state* (FC transport sysfs, dm-multipath,
//! EMC PowerPath) without doing I/O that could hang, and gives a verdict per device
//! (healthy, degraded, failed, or unknown when a tool hung or is missing) with the
//! reason for every path, e.g. `0 of 4 paths to mpatha left: HBA host3 Linkdown;
//! host4 rport-4:0-2 Blocked`; implements `StorageHealth`.
//!
//! Layers, bottom up: [`sysfs`] (fc_host, rports, qla2xxx/lpfc link state, SCSI disk
//! state, the links from a disk to its HBA and rport, dm `slaves/`), [`multipath`]
//! (`dmsetup status` / `table`, multipathd rows), [`powermt`] (`powermt display`),
//! [`command`] (running those tools in their own process group with a deadline),
//! [`resolve`] (mount point, label, UUID, `/dev/...` to a kernel device), [`probe`]
//! (the optional one-sector read in a sacrificial child, and the stuck-probe
//! registry), [`report`] (verdict rule and summary), and [`check`] ([`SanCheck`]).

pub mod check;
pub mod command;
pub mod multipath;
pub mod powermt;
pub mod probe;
pub mod report;
pub mod resolve;
pub mod sysfs;

pub use check::{tool_present, Backend, SanCheck, SanConfig};
pub use command::{BoundedCommand, CommandError, CommandOutput};
pub use probe::{ProbeOutcome, ProbeRegistry};
pub use report::{overall, DeviceReport, Layer, PathState, Status, UnitReport};
pub use resolve::{resolve, ResolveError};
pub use sysfs::Sysfs;

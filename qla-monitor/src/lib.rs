//! SAN path health for fencekit: reads path *state* (FC transport sysfs, dm-multipath,
//! EMC PowerPath) without doing I/O that could hang, and gives a verdict per device
//! (healthy, degraded, failed) with the reason for every path; implements
//! `StorageHealth`.
//!
//! Nothing is implemented here yet: this crate only reserves its place in the
//! workspace.

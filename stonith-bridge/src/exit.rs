//! Exit codes of the standalone commands (documented in `--help`).

/// Done and confirmed; for `status`: the node has power.
pub const OK: u8 = 0;
/// The operation failed: power was not confirmed in the requested state. For `off`
/// and `reboot` the node may NOT be fenced.
pub const FAILED: u8 = 1;
/// Bad command line or configuration: nothing was done.
pub const USAGE: u8 = 2;
/// `reboot`: every plug was confirmed off (the node is fenced) but switching it back
/// on failed.
pub const FENCED_NOT_ON: u8 = 3;
/// `status`: every plug of the node is off (cluster-glue's `S_ISOFF`).
pub const IS_OFF: u8 = 7;

pub const HELP: &str = "\
Exit codes:
  0  done and confirmed (status: the node has power)
  1  failed: power not confirmed in the requested state (after off/reboot the node
     may NOT be fenced); the message says which plug on which device and why
  2  bad command line or configuration; nothing was done
  3  reboot: the node was fenced (all plugs confirmed off) but did not come back on
  7  status: every plug of the node is off
With several nodes (--node a,b,c): 1 if any failed, else 3 if any reboot did not
come back on, else 7 if every node is off (status), else 0.";

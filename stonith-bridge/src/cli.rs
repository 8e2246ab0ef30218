//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "stonith-bridge",
    version,
    about = "Fence cluster nodes through IPMI BMCs and power strips, confirming power is off",
    after_help = exit::HELP
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fence a node described in a configuration file, and confirm the result.
    #[command(after_help = exit::HELP)]
    Fence(FenceArgs),
    /// Fence a node on a simulated device and show every step; needs no set-up.
    Demo(DemoArgs),
    /// List every plug of the configured devices with its name and state.
    List(DevicesArgs),
    /// Check that every configured device answers with its credentials.
    Check(DevicesArgs),
    /// Serve the fence-agent API for a plugin (as `fence_fencekit_<plugin>` does):
    /// options as arguments, or key=value lines on stdin when there are none.
    FenceAgent {
        /// The plugin (ipmi, apc, baytech, sim, ...).
        plugin: String,
        /// fence-agent options (`-o off -a ADDR ...`); none: read stdin.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve one cluster-glue external plugin operation (as
    /// `external/fencekit-<plugin>` does), parameters from the environment.
    External {
        plugin: String,
        /// getconfignames, status, gethosts, on, off, reset, getinfo-devid, getinfo-devname,
        /// getinfo-devdescr, getinfo-devurl, getinfo-xml.
        op: String,
        /// The host, for on, off and reset (one word: more are refused, naming them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        host: Vec<String>,
    },
    /// Check the SAN paths to devices (FC sysfs, dm-multipath, EMC PowerPath) and
    /// exit as a Nagios plugin does (0 ok, 1 degraded, 2 failed, 3 unknown).
    SanCheck(crate::san::SanCheckArgs),
    /// Run one action of an OCF resource agent (as `SANFilesystem`, installed as
    /// ocf:fencekit:SANFilesystem, does), parameters from OCF_RESKEY_* variables.
    Ocf {
        /// The agent: SANFilesystem.
        agent: String,
        /// start, stop, monitor, status, validate-all, meta-data, ...
        action: Option<String>,
    },
    /// List the plugins: built in, and external ones found in the plugin directory,
    /// with their ABI version and where each came from.
    Plugins {
        /// Where external plugins (`*.so`) are looked for (default: $FENCEKIT_PLUGIN_DIR,
        /// else /usr/lib/fencekit/plugins).
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Lay out the binary, the fence_fencekit_* agents, the cluster-glue plugins and
    /// the OCF agent under a prefix (`/` for a system install).
    Install {
        #[arg(long, value_name = "DIR")]
        prefix: PathBuf,
        /// cluster-glue's plugin directory on the target system (RPM distributions:
        /// /usr/lib64/stonith/plugins); the plugins go in its `external/` (a directory
        /// named `external` is taken as that one).
        #[arg(long, value_name = "DIR", default_value = crate::install::STONITH_DIR)]
        stonith_dir: PathBuf,
    },
    /// Write the manual pages: stonith-bridge(8), one per command, and one per fence
    /// agent (fence_fencekit_<plugin>(8)), generated from the same definitions as the
    /// help and the agents' metadata.
    Man {
        /// The directory the pages are written into (e.g. /usr/share/man/man8).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print shell completions for stonith-bridge on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct FenceArgs {
    /// The configuration file (TOML: [devices.NAME] and [nodes.NAME]); default:
    /// $FENCEKIT_CONFIG, else /etc/fencekit/fencekit.toml.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node to act on, as named in the configuration; several as `a,b,c` are
    /// fenced concurrently, with a summary table.
    #[arg(short, long, value_name = "NAME[,NAME...]")]
    pub node: String,
    /// What to do.
    #[arg(short, long, value_enum)]
    pub action: Action,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show every step on stderr while the fence runs (default when stderr is a terminal).
    #[arg(long)]
    pub progress: bool,
    /// Where external plugins are looked for (default: $FENCEKIT_PLUGIN_DIR, else
    /// /usr/lib/fencekit/plugins).
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// The configuration file (TOML: [devices.NAME] and [nodes.NAME]); default:
    /// $FENCEKIT_CONFIG, else /etc/fencekit/fencekit.toml.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this device (repeatable); all devices when none is given.
    #[arg(short, long, value_name = "NAME")]
    pub device: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where external plugins are looked for.
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the result as JSON on stdout instead of the step-by-step account.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Action {
    Off,
    On,
    Reboot,
    Status,
}

impl Action {
    pub fn fence_action(self) -> fencekit_core::FenceAction {
        match self {
            Action::Off => fencekit_core::FenceAction::Off,
            Action::On => fencekit_core::FenceAction::On,
            Action::Reboot => fencekit_core::FenceAction::Reboot,
            Action::Status => fencekit_core::FenceAction::Status,
        }
    }
}

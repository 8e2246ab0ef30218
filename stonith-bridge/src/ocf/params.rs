//! The parameters `SANFilesystem` adds to the stock `Filesystem` agent's: one table
//! that both the meta-data and the parsing of `OCF_RESKEY_*` come from, and the
//! checks `validate-all` (and `start`) make of them.

use std::path::PathBuf;
use std::time::Duration;

use fencekit_qla_monitor::{tool_present, Backend, SanConfig};
use thiserror::Error;

/// One parameter as the meta-data declares it.
#[derive(Debug, Clone, Copy)]
pub struct OcfParam {
    pub name: &'static str,
    /// ra-api-1.dtd content type: string, integer, boolean or time.
    pub content: &'static str,
    pub default: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
}

const fn param(
    name: &'static str,
    content: &'static str,
    default: &'static str,
    shortdesc: &'static str,
    longdesc: &'static str,
) -> OcfParam {
    OcfParam {
        name,
        content,
        default,
        shortdesc,
        longdesc,
    }
}

pub const PARAMS: &[OcfParam] = &[
    param(
        "san_backend",
        "string",
        "auto",
        "SAN path layer: auto, fc, multipath, powerpath or none",
        "Which layer counts the paths to the filesystem's device during monitor. auto: dm-multipath maps through dmsetup (and multipathd's checker states when it answers), EMC PowerPath emcpowerX devices through powermt, lone SCSI disks through FC sysfs. fc: FC and SCSI state in sysfs only, no command is run (set expected_paths: a path whose disk was removed is then invisible). multipath, powerpath: that layer only. none: no SAN check; the agent behaves exactly as Filesystem (for a device that is not on a SAN).",
    ),
    param(
        "min_paths",
        "integer",
        "1",
        "Fewest usable paths before monitor fails",
        "With fewer usable paths than this the monitor fails (OCF_ERR_GENERIC) and the cluster recovers the resource. Fewer paths than expected but at least min_paths is 'degraded': logged as a warning, the monitor succeeds.",
    ),
    param(
        "expected_paths",
        "integer",
        "",
        "Paths the device should have",
        "How many paths the device should have; fewer is degraded. Empty: as many as the layer lists.",
    ),
    param(
        "probe",
        "boolean",
        "false",
        "Also read the device in monitor",
        "Also read the first 4 KiB of the device with O_DIRECT during monitor, in a child process that is abandoned, and reported as a failure, if it is still reading at probe_timeout. While an abandoned read is stuck (D state), no new one is started: monitor fails with 'probe stuck since T'. Unlike OCF_CHECK_LEVEL=10 this cannot make the monitor itself time out.",
    ),
    param(
        "probe_timeout",
        "integer",
        "10",
        "Seconds the SAN check may take",
        "Seconds the SAN check, read probe included, may take (also capped by the monitor operation's timeout less a margin). A path layer that has not answered by then makes the state unknown; a read probe still running then has failed.",
    ),
    param(
        "san_unknown",
        "string",
        "fail",
        "What monitor does when the paths cannot be seen: fail or warn",
        "When the path state is unknown (powermt, dmsetup or dd missing or hanging, or the device is not a SAN device the chosen layer knows), fail: monitor fails with a reason saying it is a configuration or timeout problem, so a SAN loss that also hangs the tools is not hidden; warn: log a warning and succeed.",
    ),
    param(
        "sysfs_root",
        "string",
        "/",
        "Directory that stands for /",
        "The directory that stands for / for the SAN check: sysfs is read from sysfs_root/sys, mounts from sysfs_root/proc/self/mountinfo, udev links from sysfs_root/dev. For tests with fixture trees.",
    ),
    param(
        "powermt",
        "string",
        "/sbin/powermt",
        "Path of EMC PowerPath's powermt",
        "Path of powermt, run as 'powermt display dev=NAME' with a deadline.",
    ),
    param(
        "multipathd",
        "string",
        "/sbin/multipathd",
        "Path of multipathd",
        "Path of multipathd, asked for its path checker states with a deadline; optional.",
    ),
    param(
        "dmsetup",
        "string",
        "/sbin/dmsetup",
        "Path of dmsetup",
        "Path of dmsetup, asked for the multipath map's status (kernel path flags) with a deadline.",
    ),
    param(
        "dd",
        "string",
        "/bin/dd",
        "Path of dd, the read probe",
        "Path of dd (GNU coreutils or BusyBox), which the read probe runs.",
    ),
    param(
        "run_dir",
        "string",
        "/run/fencekit",
        "Where stuck read probes are recorded",
        "Directory where a read probe that did not come back is recorded, so that the next monitor does not start another one on the same device.",
    ),
];

/// What `monitor` does when the paths cannot be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnknown {
    Fail,
    Warn,
}

/// Our parameters, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SanParams {
    /// `None`: san_backend=none, no SAN check.
    pub backend: Option<Backend>,
    pub on_unknown: OnUnknown,
    /// The check's own time (probe_timeout).
    pub timeout: Duration,
    pub config: SanConfig,
}

/// A parameter value we cannot use (OCF_ERR_CONFIGURED) or a tool that is missing
/// (OCF_ERR_INSTALLED).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamError {
    #[error("parameter {name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("{tool} not found at {path} (parameter {name}), needed by {needed_by}")]
    Missing {
        name: &'static str,
        tool: &'static str,
        path: String,
        needed_by: String,
    },
}

impl ParamError {
    /// The OCF exit code: 6 for a bad value, 5 for a tool missing on this node (so the
    /// cluster may try another node).
    pub fn ocf_code(&self) -> u8 {
        match self {
            ParamError::Invalid { .. } => super::OCF_ERR_CONFIGURED,
            ParamError::Missing { .. } => super::OCF_ERR_INSTALLED,
        }
    }
}

/// `ocf_is_true` / `ocf_is_false` of ocf-shellfuncs, strictly: anything else is an error.
fn boolean(name: &'static str, value: &str) -> Result<bool, ParamError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" | "ja" => Ok(true),
        "no" | "false" | "0" | "off" | "nein" => Ok(false),
        _ => Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "expected a boolean (true/false, yes/no, 1/0, on/off)".to_string(),
        }),
    }
}

fn count(name: &'static str, value: &str) -> Result<usize, ParamError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "expected a whole number from 1 to 1024".to_string(),
        }),
    }
}

fn path(name: &'static str, value: &str) -> Result<PathBuf, ParamError> {
    if value.starts_with('/') {
        Ok(PathBuf::from(value))
    } else {
        Err(ParamError::Invalid {
            name,
            value: value.to_string(),
            why: "expected an absolute path".to_string(),
        })
    }
}

impl SanParams {
    /// Parses our parameters from `get(name)` (the value of `OCF_RESKEY_<name>`); an
    /// unset or empty value takes the default.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<SanParams, ParamError> {
        let value = |p: &OcfParam| {
            get(p.name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| p.default.to_string())
        };
        let mut values = std::collections::HashMap::new();
        for p in PARAMS {
            values.insert(p.name, value(p));
        }
        let v = |name: &str| values.get(name).cloned().unwrap_or_default();

        let backend_text = v("san_backend");
        let backend = if backend_text.trim().eq_ignore_ascii_case("none") {
            None
        } else {
            Some(
                backend_text
                    .parse::<Backend>()
                    .map_err(|_| ParamError::Invalid {
                        name: "san_backend",
                        value: backend_text.clone(),
                        why: "expected auto, fc, multipath, powerpath or none".to_string(),
                    })?,
            )
        };
        let on_unknown = match v("san_unknown").trim().to_ascii_lowercase().as_str() {
            "fail" => OnUnknown::Fail,
            "warn" => OnUnknown::Warn,
            _ => {
                return Err(ParamError::Invalid {
                    name: "san_unknown",
                    value: v("san_unknown"),
                    why: "expected fail or warn".to_string(),
                })
            }
        };
        let timeout_text = v("probe_timeout");
        let timeout = crate::san::parse_seconds(&timeout_text)
            .ok()
            .filter(|t| *t <= Duration::from_secs(3600))
            .ok_or_else(|| ParamError::Invalid {
                name: "probe_timeout",
                value: timeout_text.clone(),
                why: "expected seconds, more than 0 and at most 3600".to_string(),
            })?;
        let expected = v("expected_paths");
        let expected_paths = if expected.trim().is_empty() {
            None
        } else {
            Some(count("expected_paths", &expected)?)
        };
        let min_paths = count("min_paths", &v("min_paths"))?;
        if expected_paths.is_some_and(|e| e < min_paths) {
            return Err(ParamError::Invalid {
                name: "expected_paths",
                value: expected,
                why: format!("fewer than min_paths ({min_paths})"),
            });
        }
        let config = SanConfig {
            backend: backend.unwrap_or(Backend::Auto),
            root: path("sysfs_root", &v("sysfs_root"))?,
            powermt: path("powermt", &v("powermt"))?,
            multipathd: path("multipathd", &v("multipathd"))?,
            dmsetup: path("dmsetup", &v("dmsetup"))?,
            dd: path("dd", &v("dd"))?,
            min_paths,
            expected_paths,
            timeout,
            probe: boolean("probe", &v("probe"))?,
            run_dir: Some(path("run_dir", &v("run_dir"))?),
            ..SanConfig::default()
        };
        Ok(SanParams {
            backend,
            on_unknown,
            timeout,
            config,
        })
    }

    /// What `validate-all` checks beyond the values: the root is a directory and the
    /// tools the chosen layer always needs are installed on this node.
    pub fn check_node(&self) -> Result<(), ParamError> {
        let Some(backend) = self.backend else {
            return Ok(());
        };
        if !self.config.root.is_dir() {
            return Err(ParamError::Invalid {
                name: "sysfs_root",
                value: self.config.root.display().to_string(),
                why: "not a directory".to_string(),
            });
        }
        let mut needed: Vec<(&'static str, &'static str, &PathBuf, String)> = Vec::new();
        match backend {
            Backend::PowerPath => needed.push((
                "powermt",
                "powermt",
                &self.config.powermt,
                "san_backend=powerpath".to_string(),
            )),
            Backend::Multipath => needed.push((
                "dmsetup",
                "dmsetup",
                &self.config.dmsetup,
                "san_backend=multipath".to_string(),
            )),
            Backend::Auto | Backend::Fc => {}
        }
        if self.config.probe {
            needed.push(("dd", "dd", &self.config.dd, "probe=true".to_string()));
        }
        for (name, tool, path, needed_by) in needed {
            if !tool_present(path) {
                return Err(ParamError::Missing {
                    name,
                    tool,
                    path: path.display().to_string(),
                    needed_by,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<SanParams, ParamError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SanParams::parse(|name| map.get(name).cloned())
    }

    #[test]
    fn unset_parameters_take_the_documented_defaults() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.backend, Some(Backend::Auto));
        assert_eq!(p.on_unknown, OnUnknown::Fail);
        assert_eq!(p.timeout, Duration::from_secs(10));
        assert_eq!(p.config.min_paths, 1);
        assert_eq!(p.config.expected_paths, None);
        assert!(!p.config.probe);
        assert_eq!(p.config.root, PathBuf::from("/"));
        assert_eq!(p.config.run_dir, Some(PathBuf::from("/run/fencekit")));
    }

    #[test]
    fn backend_none_turns_the_check_off() {
        assert_eq!(parse(&[("san_backend", "none")]).unwrap().backend, None);
        assert_eq!(parse(&[("san_backend", "NONE")]).unwrap().backend, None);
        assert_eq!(
            parse(&[("san_backend", "fc")]).unwrap().backend,
            Some(Backend::Fc)
        );
    }

    #[test]
    fn bad_values_are_configuration_errors_naming_the_parameter() {
        for (name, value) in [
            ("san_backend", "scsi"),
            ("min_paths", "0"),
            ("min_paths", "two"),
            ("expected_paths", "-1"),
            ("probe", "maybe"),
            ("probe_timeout", "0"),
            ("probe_timeout", "soon"),
            ("san_unknown", "ignore"),
            ("sysfs_root", "relative/dir"),
            ("dd", "dd"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert_eq!(err.ocf_code(), 6, "{name}={value}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn expected_paths_below_min_paths_is_refused() {
        let err = parse(&[("min_paths", "3"), ("expected_paths", "2")]).unwrap_err();
        assert!(
            err.to_string().contains("fewer than min_paths (3)"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tool_the_backend_needs_is_not_installed_not_misconfigured() {
        let p = parse(&[
            ("san_backend", "powerpath"),
            ("powermt", "/nonexistent/powermt"),
        ])
        .unwrap();
        let err = p.check_node().unwrap_err();
        assert_eq!(err.ocf_code(), 5);
        assert!(err.to_string().contains("/nonexistent/powermt"), "{err}");
        // Backend none needs nothing, whatever the tool paths say.
        let p = parse(&[("san_backend", "none"), ("powermt", "/nonexistent/powermt")]).unwrap();
        assert!(p.check_node().is_ok());
    }

    #[test]
    fn every_parameter_default_parses() {
        for p in PARAMS {
            let only = parse(&[(p.name, p.default)]);
            assert!(only.is_ok(), "{}: {:?}", p.name, only);
        }
    }
}

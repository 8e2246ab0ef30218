//! EMC PowerPath's `powermt display dev=NAME` (`storage.md` §2.1): the pseudo-device
//! block and one row per path, read by tokens and anchored on the right, because
//! the HW Path column (`QLogic Fibre Channel 2300`) and the Interf. column (`FA  7cA`,
//! `SP B1`) both hold spaces.

use serde::Serialize;

const MAX_ROWS: usize = 4096;
const MAX_BLOCKS: usize = 4096;

/// One pseudo-device block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PseudoDevice {
    /// `emcpowerc`.
    pub pseudo: String,
    /// `Symmetrix ID=000192601234`, `CLARiiON ID=CK200081200345 [dbnode]`.
    pub array: Option<String>,
    pub logical_device: Option<String>,
    /// `alive` or `dead` (older releases may omit the line).
    pub state: Option<String>,
    pub policy: Option<String>,
    pub paths: Vec<PathRow>,
}

/// One path row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathRow {
    /// HBA number (`###`).
    pub hba: String,
    /// `qla2xxx`, `lpfc`, or an adapter name with spaces.
    pub hw_path: String,
    /// Native device (`sdc`), when it could be told apart from its neighbours.
    pub io_path: Option<String>,
    /// Array port (`FA 7cA`, `SP B1`).
    pub interface: String,
    /// `active`, `standby`, `unlic`.
    pub mode: String,
    /// `alive`, `dead`.
    pub state: String,
    pub errors: Option<u64>,
}

impl PathRow {
    pub fn alive(&self) -> bool {
        self.state == "alive"
    }

    /// A name for reasons: `sdk (HBA 4, FA 10cA)`.
    pub fn label(&self) -> String {
        let io = self.io_path.as_deref().unwrap_or("path");
        if self.interface.is_empty() {
            format!("{io} (HBA {})", self.hba)
        } else {
            format!("{io} (HBA {}, {})", self.hba, self.interface)
        }
    }
}

/// Parses every pseudo-device block. Lines that fit nowhere are ignored; a text with
/// no `Pseudo name=` line gives no device.
pub fn parse_display(text: &str) -> Vec<PseudoDevice> {
    let mut devices: Vec<PseudoDevice> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("Pseudo name=") {
            if devices.len() >= MAX_BLOCKS {
                break;
            }
            devices.push(PseudoDevice {
                pseudo: name.trim().to_string(),
                ..PseudoDevice::default()
            });
            continue;
        }
        let Some(dev) = devices.last_mut() else {
            continue;
        };
        if let Some(id) = line.strip_prefix("Logical device ID=") {
            dev.logical_device = Some(id.trim().to_string());
        } else if line.starts_with("state=") {
            for pair in line.split(';') {
                match pair.trim().split_once('=') {
                    Some(("state", v)) => dev.state = Some(v.trim().to_string()),
                    Some(("policy", v)) => dev.policy = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        } else if dev.array.is_none() && dev.paths.is_empty() && line.contains(" ID=") {
            dev.array = Some(line.to_string());
        } else if let Some(row) = parse_row(line) {
            if dev.paths.len() < MAX_ROWS {
                dev.paths.push(row);
            }
        }
    }
    devices
}

/// `###  HW Path  I/O Paths  Interf.  Mode  State  Q-IOs Errors`: the first token is
/// the HBA number, the last four are Mode, State, Q-IOs and Errors.
fn parse_row(line: &str) -> Option<PathRow> {
    let t: Vec<&str> = line.split_whitespace().collect();
    if t.len() < 7 {
        return None;
    }
    let n = t.len();
    let numeric = |s: &str| s == "-" || (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()));
    if !t[0].bytes().all(|c| c.is_ascii_digit()) || !numeric(t[n - 2]) || !numeric(t[n - 1]) {
        return None;
    }
    let (mode, state) = (t[n - 4], t[n - 3]);
    if !mode.bytes().all(|c| c.is_ascii_alphabetic())
        || !state.bytes().all(|c| c.is_ascii_alphabetic())
    {
        return None;
    }
    let middle = &t[1..n - 4];
    let (hw_path, io_path, interface) = match middle.iter().rposition(|tok| is_native_device(tok)) {
        Some(i) => (
            middle[..i].join(" "),
            Some(middle[i].to_string()),
            middle[i + 1..].join(" "),
        ),
        None if middle.len() == 3 => (
            middle[0].to_string(),
            Some(middle[1].to_string()),
            middle[2].to_string(),
        ),
        None => (middle.join(" "), None, String::new()),
    };
    Some(PathRow {
        hba: t[0].to_string(),
        hw_path,
        io_path,
        interface,
        mode: mode.to_string(),
        state: state.to_string(),
        errors: t[n - 1].parse().ok(),
    })
}

/// Linux `sdX`, Solaris `cXtYdZ[sN]`, AIX `hdiskN`.
fn is_native_device(tok: &str) -> bool {
    if let Some(rest) = tok.strip_prefix("sd") {
        return !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_lowercase());
    }
    if let Some(rest) = tok.strip_prefix("hdisk") {
        return !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_digit());
    }
    solaris_ctd(tok)
}

fn solaris_ctd(tok: &str) -> bool {
    let Some(rest) = tok.strip_prefix('c') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let Some(rest) = rest[digits..].strip_prefix('t') else {
        return false;
    };
    let Some(d) = rest.find('d') else {
        return false;
    };
    d > 0 && rest[..d].bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SYMM: &str = "\
Pseudo name=emcpowerc
Symmetrix ID=000192601234
Logical device ID=0A3F
state=alive; policy=SymmOpt; priority=0; queued-IOs=0
==============================================================================
---------------- Host ---------------   - Stor -   -- I/O Path -  -- Stats ---
###  HW Path                I/O Paths    Interf.   Mode    State  Q-IOs Errors
==============================================================================
   3 qla2xxx                   sdc       FA  7cA   active  alive      0      0
   4 qla2xxx                   sdk       FA 10cA   active  dead       0      2
";

    const CLAR: &str = "\
Pseudo name=emcpowerd
CLARiiON ID=CK200081200345 [dbnode]
Logical device ID=6006016011112222333344445555AB12 [LUN 7]
state=alive; policy=CLAROpt; priority=0; queued-IOs=0
Owner: default=SP A, current=SP A
==============================================================================
---------------- Host ---------------   - Stor -   -- I/O Path -  -- Stats ---
###  HW Path                I/O Paths    Interf.   Mode    State  Q-IOs Errors
==============================================================================
  1 QLogic Fibre Channel 2300 sdd        SP A0     active  alive      0      0
  2 QLogic Fibre Channel 2300 sdh        SP B0     standby alive      0      0
";

    #[test]
    fn symmetrix_rows_are_split_from_the_right() {
        let d = parse_display(SYMM);
        assert_eq!(d.len(), 1);
        let dev = &d[0];
        assert_eq!(dev.pseudo, "emcpowerc");
        assert_eq!(dev.state.as_deref(), Some("alive"));
        assert_eq!(dev.policy.as_deref(), Some("SymmOpt"));
        assert_eq!(dev.array.as_deref(), Some("Symmetrix ID=000192601234"));
        assert_eq!(dev.paths.len(), 2);
        assert_eq!(dev.paths[1].io_path.as_deref(), Some("sdk"));
        assert_eq!(dev.paths[1].interface, "FA 10cA");
        assert!(!dev.paths[1].alive());
        assert_eq!(dev.paths[1].errors, Some(2));
        assert_eq!(dev.paths[1].label(), "sdk (HBA 4, FA 10cA)");
    }

    #[test]
    fn long_hw_path_names_with_spaces_stay_whole() {
        let d = parse_display(CLAR);
        let rows = &d[0].paths;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].hw_path, "QLogic Fibre Channel 2300");
        assert_eq!(rows[0].io_path.as_deref(), Some("sdd"));
        assert_eq!(rows[1].mode, "standby");
        assert_eq!(rows[1].interface, "SP B0");
    }

    #[test]
    fn an_error_text_gives_no_device() {
        assert!(
            parse_display("Bad dev value emcpowerz, or not under Powerpath control.\n").is_empty()
        );
    }

    #[test]
    fn solaris_and_aix_native_names_are_recognised() {
        assert!(is_native_device("c2t5006016041E0A5A1d0s0"));
        assert!(is_native_device("hdisk12"));
        assert!(!is_native_device("FA"));
        assert!(!is_native_device("c"));
    }

    proptest! {
        #[test]
        fn powermt_parser_never_panics(s in "\\PC{0,400}") {
            let _ = parse_display(&s);
        }

        #[test]
        fn powermt_parser_never_panics_on_row_like_lines(
            lines in proptest::collection::vec("[ 0-9a-zA-Z=;.#-]{0,80}", 0..20)
        ) {
            let text = format!("Pseudo name=emcpowera\n{}", lines.join("\n"));
            let d = parse_display(&text);
            prop_assert!(!d.is_empty());
        }
    }
}

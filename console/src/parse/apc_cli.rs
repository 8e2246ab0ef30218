//! The `apc>` command line of APC AOS v5 and later (fence_apc drives it when the
//! banner names firmware v5, v6 or v7).
//!
//! `olStatus all` prints one line per outlet, `<number>: <name>: <state>`, after
//! a result line such as `E000: Success`:
//!
//! ```text
//! apc>olStatus all
//! E000: Success
//!  1: Outlet 1: On
//!  2: db-node2: Off
//! ```
//!
//! fence_apc (`get_power_status5`) reads outlets with
//! `^\s*(\d+): (.*): (On|Off)\s*$`, ignoring case; we read the same shape, with
//! the name running to the last `": "` so a name may itself hold `": "`. A state
//! word other than On/Off gives [`PowerState::Unknown`] rather than dropping the
//! outlet, so that "unknown plug" is never reported for a plug that exists.
//!
//! Every AOS CLI command answers with a result code line `Ennn: text`: E000
//! Success, E001 Successfully Issued and E002 Reboot required are successes;
//! E1xx are failures (E101 Command not found, E102 Parameter Error, ...).

use fencekit_core::PowerState;

use super::{add, finish, lines, outlet_number, Outlet, ParseError};

const LISTING: &str = "olStatus output";

/// A result code line of the AOS command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCode {
    /// `E000`, `E102`, ...
    pub code: String,
    pub message: String,
}

impl ResultCode {
    /// E0xx codes report success.
    pub fn is_success(&self) -> bool {
        self.code.starts_with("E0")
    }
}

/// The first result code line in `text`, if any.
pub fn result_code(text: &str) -> Option<ResultCode> {
    lines(text).find_map(|line| {
        let line = line.trim();
        let (code, message) = line.split_once(':')?;
        let digits = code.strip_prefix('E')?;
        (digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| ResultCode {
            code: code.to_string(),
            message: message.trim().to_string(),
        })
    })
}

/// Fails when `text` carries a failure result code (E1xx and up); succeeds when
/// it carries a success code or none.
pub fn check_result(text: &str) -> Result<Option<ResultCode>, ParseError> {
    match result_code(text) {
        Some(rc) if !rc.is_success() => Err(ParseError::DeviceError {
            code: rc.code,
            message: rc.message,
        }),
        other => Ok(other),
    }
}

/// Reads the answer to `olStatus all` (or `olStatus <n>`).
pub fn parse_ol_status(text: &str) -> Result<Vec<Outlet>, ParseError> {
    check_result(text)?;
    let mut outlets = Vec::new();
    let lowercase = super::prints_lowercase_states(text);
    for line in lines(text) {
        match outlet_line(line, lowercase) {
            Some(outlet) => add(&mut outlets, outlet, LISTING)?,
            // Every line of the answer that starts with a number is an outlet's:
            // one we cannot read would drop out of the plug lookup (an outlet
            // named alike would then not make the plug ambiguous), so it fails the
            // listing rather than being skipped.
            None if line.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
                return Err(ParseError::BadLine {
                    listing: LISTING,
                    line: line.trim().chars().take(80).collect(),
                })
            }
            // An outlet row that lost its number (`db1: On`): as the last row no
            // gap shows it, and skipping it could hide the plug's second outlet.
            None if lost_its_number(line) => {
                return Err(ParseError::BadLine {
                    listing: LISTING,
                    line: line.trim().chars().take(80).collect(),
                })
            }
            None => {}
        }
    }
    finish(outlets, LISTING)
}

/// `name: On` or `name: Off` without the `N: ` before it.
fn lost_its_number(line: &str) -> bool {
    line.trim().rsplit_once(':').is_some_and(|(_, state)| {
        ["on", "off"].contains(&state.trim().to_ascii_lowercase().as_str())
    })
}

fn outlet_line(line: &str, lowercase_states: bool) -> Option<Outlet> {
    let line = line.trim();
    let digits_end = line.find(|c: char| !c.is_ascii_digit())?;
    let number = outlet_number(&line[..digits_end])?;
    let rest = line[digits_end..].strip_prefix(": ")?;
    let (name, state) = match rest.rsplit_once(": ") {
        Some(split) => split,
        // An empty name: " 3: : On".
        None => ("", rest.strip_prefix(':')?.trim()),
    };
    let state = state.trim();
    if state.is_empty()
        || state.contains(char::is_whitespace)
        || super::glued_entry(name, &[": on", ": off"], ": ")
        || super::holds_state(name, lowercase_states)
    {
        return None;
    }
    let state = if state.eq_ignore_ascii_case("on") {
        PowerState::On
    } else if state.eq_ignore_ascii_case("off") {
        PowerState::Off
    } else {
        PowerState::Unknown
    };
    Some(Outlet {
        number,
        name: name.trim().to_string(),
        state,
        locked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn outlet_lines_run_together_are_refused_not_read_with_the_next_ones_state() {
        let text = "E000: Success\n 1: db1: On2: b: Off\n";
        assert!(matches!(
            parse_ol_status(text),
            Err(ParseError::BadLine { .. })
        ));
        let named = "E000: Success\n 1: salon2: On\n 2: web: front2: Off\n";
        assert_eq!(parse_ol_status(named).unwrap().len(), 2);
        // A name holding `: On` itself cannot be told from a row run into the next
        // one that lost its number and line end (`c: On` + `db1: On`): refused;
        // `: on` too where the listing prints its states in lower case.
        let held = "E000: Success\n 1: salon2: on\n 2: web: online2: off\n";
        assert!(matches!(
            parse_ol_status(held),
            Err(ParseError::BadLine { .. })
        ));
        let held = "E000: Success\n 1: salon2: On\n 2: web: Online2: Off\n";
        assert!(matches!(
            parse_ol_status(held),
            Err(ParseError::BadLine { .. })
        ));
        let named = "E000: Success\n 1: salon2: On\n 2: web: online2: Off\n";
        assert_eq!(parse_ol_status(named).unwrap().len(), 2);
    }

    #[test]
    fn outlet_lines_parted_by_blanks_only_are_refused() {
        for sep in [" ", "\t", "   "] {
            let text = format!("E000: Success\n 1: web: On\n 2: db1: On{sep}3: b: Off\n");
            assert!(
                matches!(parse_ol_status(&text), Err(ParseError::BadLine { .. })),
                "{sep:?}: {:?}",
                parse_ol_status(&text)
            );
        }
    }

    #[test]
    fn a_name_holding_a_state_of_its_own_is_refused_and_one_holding_a_word_is_not() {
        let text = "E000: Success\n 1: web: On\n 2: c: On     db1: On\n";
        assert!(matches!(
            parse_ol_status(text),
            Err(ParseError::BadLine { .. })
        ));
        for row in [" 2: c: Ondb1: On", " 2: c: On: db1: On"] {
            let text = format!("E000: Success\n 1: web: On\n{row}\n");
            assert!(
                matches!(parse_ol_status(&text), Err(ParseError::BadLine { .. })),
                "{row:?}"
            );
        }
        let named = "E000: Success\n 1: ceph-mon1-a: On\n 2: web: front: Off\n";
        assert_eq!(parse_ol_status(named).unwrap().len(), 2);
        // A word that only begins like a state is a name; one that begins with the
        // state as the device prints it may be the state with the next name glued.
        let colons = "E000: Success\n 1: srv:one: On\n 2: vm: online: Off\n 3: nas:offsite: On\n 4: lab: office-2: Off\n";
        let outlets = parse_ol_status(colons).unwrap();
        let names: Vec<&str> = outlets.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["srv:one", "vm: online", "nas:offsite", "lab: office-2"]
        );
        for row in [
            " 2: c: Onsite: On",
            " 2: c: OFFdb1: On",
            " 2: c:on: On",
            " 2: c: off-2: On",
        ] {
            let text = format!("E000: Success\n 1: web: On\n{row}\n");
            assert!(
                matches!(parse_ol_status(&text), Err(ParseError::BadLine { .. })),
                "{row:?}"
            );
        }
    }

    #[test]
    fn an_outlet_row_that_lost_its_number_is_refused_also_last() {
        for row in ["db1: On", ": db1: On", "  db1: OFF"] {
            let text = format!("E000: Success\n 1: web: On\n 2: db1: On\n{row}\napc>");
            assert!(
                matches!(parse_ol_status(&text), Err(ParseError::BadLine { .. })),
                "{row:?}: {:?}",
                parse_ol_status(&text)
            );
        }
    }

    const LISTING_TEXT: &str =
        "olStatus all\nE000: Success\n 1: Outlet 1: On\n 2: db-node2: Off\n 3: web: front: ON\n";

    #[test]
    fn an_outlet_line_we_cannot_read_fails_the_listing_rather_than_dropping_out() {
        for line in [" 2: DB1: On *", " 2  DB1: On"] {
            let text = format!("olStatus all\nE000: Success\n 1: db1: On\n{line}\n");
            assert!(
                matches!(parse_ol_status(&text), Err(ParseError::BadLine { .. })),
                "{line}"
            );
        }
    }

    #[test]
    fn a_listing_that_skips_an_outlet_number_is_refused() {
        let text = "olStatus all\nE000: Success\n 1: db1: On\n 3: db1: On\n";
        assert_eq!(
            parse_ol_status(text),
            Err(ParseError::Gap {
                listing: LISTING,
                missing: 2
            })
        );
    }

    #[test]
    fn ol_status_lines_give_number_name_and_state() {
        let outlets = parse_ol_status(LISTING_TEXT).unwrap();
        assert_eq!(outlets.len(), 3);
        assert_eq!(
            outlets[0],
            Outlet {
                number: 1,
                name: "Outlet 1".into(),
                state: PowerState::On,
                locked: false
            }
        );
        assert_eq!(outlets[1].name, "db-node2");
        assert_eq!(outlets[1].state, PowerState::Off);
        assert_eq!(outlets[2].number, 3);
        assert_eq!(outlets[2].name, "web: front");
        assert_eq!(outlets[2].state, PowerState::On);
    }

    #[test]
    fn an_unknown_state_word_is_kept_as_unknown() {
        let outlets = parse_ol_status(" 1: spare: Rebooting\n").unwrap();
        assert_eq!(outlets[0].state, PowerState::Unknown);
    }

    #[test]
    fn an_empty_name_is_allowed() {
        let outlets = parse_ol_status(" 1: : Off\n").unwrap();
        assert_eq!(outlets[0].name, "");
        assert_eq!(outlets[0].state, PowerState::Off);
    }

    #[test]
    fn a_failure_code_is_an_error_naming_the_code() {
        let err = parse_ol_status("olStatus 99\nE102: Parameter Error\n").unwrap_err();
        assert_eq!(
            err,
            ParseError::DeviceError {
                code: "E102".into(),
                message: "Parameter Error".into()
            }
        );
    }

    #[test]
    fn success_codes_are_recognised() {
        assert!(check_result("olOff 2\nE001: Successfully Issued\napc>")
            .unwrap()
            .unwrap()
            .is_success());
        assert_eq!(check_result("no code here").unwrap(), None);
    }

    #[test]
    fn text_without_outlets_is_an_error() {
        assert_eq!(
            parse_ol_status("E000: Success\nsomething else\n"),
            Err(ParseError::NoOutlets { listing: LISTING })
        );
        assert!(parse_ol_status("").is_err());
    }

    #[test]
    fn an_outlet_listed_twice_differently_is_an_error() {
        let err = parse_ol_status(" 1: a: On\n 1: a: Off\n").unwrap_err();
        assert_eq!(
            err,
            ParseError::Conflict {
                listing: LISTING,
                number: 1
            }
        );
        // The same line twice (a redraw) is fine.
        assert_eq!(parse_ol_status(" 1: a: On\n 1: a: On\n").unwrap().len(), 1);
    }

    #[test]
    fn outlet_zero_and_huge_numbers_are_not_outlets() {
        assert!(parse_ol_status(" 0: a: On\n").is_err());
        assert!(parse_ol_status(" 99999999999: a: On\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC*") {
            let _ = parse_ol_status(&text);
            let _ = result_code(&text);
        }

        #[test]
        fn reads_back_what_it_is_given(
            rows in proptest::collection::vec(("[a-zA-Z0-9 _.-]{0,20}", any::<bool>()), 1..20)
                .prop_map(|rows| (1u32..).zip(rows).collect::<std::collections::BTreeMap<_, _>>())
        ) {
            let mut text = String::from("E000: Success\n");
            for (n, (name, on)) in &rows {
                text.push_str(&format!("{n:>2}: {name}: {}\r\n", if *on { "On" } else { "Off" }));
            }
            let outlets = parse_ol_status(&text).unwrap();
            prop_assert_eq!(outlets.len(), rows.len());
            for (o, (n, (name, on))) in outlets.iter().zip(&rows) {
                prop_assert_eq!(o.number, *n);
                prop_assert_eq!(&o.name, name.trim());
                prop_assert_eq!(o.state, if *on { PowerState::On } else { PowerState::Off });
            }
        }
    }
}

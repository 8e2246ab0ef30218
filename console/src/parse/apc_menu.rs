//! The outlet list of the numbered APC menu UI (firmware before AOS v5), shown
//! under "Outlet Control/Configuration" (or "Outlet Control" on a MasterSwitch),
//! paged with "Press <ENTER> to continue...":
//!
//! ```text
//! ------- Outlet Control/Configuration ------------------------------------------
//!
//!      1- Outlet 1                 ON
//!      2- db-node2                 OFF
//!      9- Master Control/Configuration
//!
//!   <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log
//! >
//! ```
//!
//! fence_apc (`get_power_status`) reads outlets with
//! `(^|\x0D)\s*(\d+)- (.*?)\s+(ON|OFF)\s*`, case-sensitive: upper-case ON/OFF is
//! what tells an outlet line from a menu entry such as "1- Immediate On". We keep
//! that rule, but take the state from the *last* word of the line, so a name
//! holding " ON " ("db ON call") is not cut short. Lines of the `N- text` shape
//! without a final ON/OFF are menu entries ("9- Master Control/Configuration"); on
//! a screen listing outlets, any such line other than the Master entry is an
//! outlet line that lost its state, and the screen is refused.

use fencekit_core::PowerState;

use super::{add, finish, lines, outlet_number, Outlet, ParseError};

const LISTING: &str = "APC outlet menu";

/// Reads the outlets of an APC menu screen (or several pages of one, joined).
pub fn parse_outlet_menu(text: &str) -> Result<Vec<Outlet>, ParseError> {
    let mut outlets = Vec::new();
    // The first `N- text` line without a state that is not the Master entry.
    let mut stateless: Option<&str> = None;
    let bad = |line: &str| ParseError::BadLine {
        listing: LISTING,
        line: line.trim().chars().take(80).collect(),
    };
    for line in lines(text) {
        match outlet_line(line) {
            Some(outlet) => add(&mut outlets, outlet, LISTING)?,
            // An `N- ...` line with an ON or OFF word that is not an outlet line we
            // can read: skipped, it would drop out of the plug lookup.
            None if looks_like_an_outlet(line) => return Err(bad(line)),
            None if is_entry(line) && !is_master_entry(line) => {
                stateless.get_or_insert(line);
            }
            // An outlet row that lost its `N- ` (`db1   ON`), kept for below.
            None if !is_entry(line) && ends_in_state(line) => {
                stateless.get_or_insert(line);
            }
            None => {}
        }
    }
    // Beside outlets, the only entry without a state is "Master Control": any
    // other is an outlet line that lost its state, and a line ending in ON or OFF
    // without its number one that lost its number (the last one escapes the gap
    // check either way); skipping it could hide a second outlet of the plug's name.
    if let Some(line) = stateless.filter(|_| !outlets.is_empty()) {
        return Err(bad(line));
    }
    finish(outlets, LISTING)
}

/// `N- text`: an outlet line or a menu entry.
fn is_entry(line: &str) -> bool {
    let line = line.trim();
    let digits_end = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    digits_end > 0 && line[digits_end..].starts_with("- ")
}

/// `N- Master Control/Configuration` (`N- Master Control` on a MasterSwitch): the
/// menu's entry for every outlet at once, by its title, not any text naming a
/// master (an outlet may be called `db-master`).
fn is_master_entry(line: &str) -> bool {
    let line = line.trim();
    let digits_end = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    line[digits_end..]
        .strip_prefix("- ")
        .is_some_and(|title| title.trim().starts_with("Master Control"))
}

/// A line whose last word is the upper-case ON or OFF of an outlet line.
fn ends_in_state(line: &str) -> bool {
    line.split_whitespace()
        .next_back()
        .is_some_and(|w| w == "ON" || w == "OFF")
}

/// `N- text` with a word ON or OFF in the text: an outlet line, not a menu entry.
fn looks_like_an_outlet(line: &str) -> bool {
    let line = line.trim();
    let Some(digits_end) = line.find(|c: char| !c.is_ascii_digit()) else {
        return false;
    };
    digits_end > 0
        && line[digits_end..]
            .strip_prefix("- ")
            .is_some_and(|rest| rest.split_whitespace().any(|w| w == "ON" || w == "OFF"))
}

fn outlet_line(line: &str) -> Option<Outlet> {
    let line = line.trim();
    let digits_end = line.find(|c: char| !c.is_ascii_digit())?;
    let number = outlet_number(&line[..digits_end])?;
    let rest = line[digits_end..].strip_prefix("- ")?;
    let (name, state) = match rest.rsplit_once(char::is_whitespace) {
        Some((name, state)) => (name.trim(), state),
        None => ("", rest),
    };
    if super::glued_entry(name, &["ON", "OFF"], "- ") || super::holds_padded_state(name) {
        return None;
    }
    let state = match state {
        "ON" => PowerState::On,
        "OFF" => PowerState::Off,
        _ => return None,
    };
    Some(Outlet {
        number,
        name: name.to_string(),
        state,
        locked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCREEN: &str = "------- Outlet Control/Configuration -------\n\n     1- Outlet 1                 ON\n     2- db-node2                 OFF\n     3- db ON call               OFF\n     9- Master Control/Configuration\n\n  <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log\n> ";

    #[test]
    fn an_outlet_line_we_cannot_read_fails_the_listing_rather_than_dropping_out() {
        let text = "     1- db1                 ON\n     2- DB1                 ON *\n     9- Master Control/Configuration\n";
        assert!(matches!(
            parse_outlet_menu(text),
            Err(ParseError::BadLine { .. })
        ));
    }

    #[test]
    fn an_outlet_line_that_lost_its_state_is_not_skipped_as_a_menu_entry() {
        // In the middle, and last (where no gap shows it), before the Master entry.
        for text in [
            "     1- a        ON\r\n     2- db1      ON\r\n     3- db1\r\n     4- d        OFF\r\n",
            "     1- a        ON\r\n     2- db1      ON\r\n     3- db1\r\n     4- Master Control/Configuration\r\n",
        ] {
            assert!(
                matches!(parse_outlet_menu(text), Err(ParseError::BadLine { .. })),
                "{text:?}: {:?}",
                parse_outlet_menu(text)
            );
        }
    }

    #[test]
    fn an_outlet_named_after_a_master_or_without_its_number_is_no_menu_entry() {
        for text in [
            // The last of two `db-master` outlets lost its state.
            "     1- web       ON\r\n     2- db-master ON\r\n     3- db-master\r\n     4- Master Control/Configuration\r\n",
            // The last outlet lost its number.
            "     1- web       ON\r\n     2- db1       ON\r\n       db1       ON\r\n     4- Master Control/Configuration\r\n",
            // A row that lost its number and line end, run into the one before.
            "     1- web       ON\r\n     2- c         ON       db1           ON\r\n",
            "     1- web       ON\r\n     2- c         ONdb1         ON\r\n",
            "     1- web       ON\r\n     2- c         ON-   db1      ON\r\n",
            // Rows parted by blanks only.
            "     1- web       ON\r\n     2- db1       ON 3- b   OFF\r\n",
            "     1- web       ON\r\n     2- db1       ON\t3- b   OFF\r\n",
        ] {
            assert!(
                matches!(parse_outlet_menu(text), Err(ParseError::BadLine { .. })),
                "{text:?}: {:?}",
                parse_outlet_menu(text)
            );
        }
        let screen = "     1- db-master ON\r\n     2- db-master OFF\r\n     3- Master Control\r\n";
        assert_eq!(parse_outlet_menu(screen).unwrap().len(), 2);
    }

    #[test]
    fn a_name_holding_a_state_word_inside_another_word_is_read() {
        let screen = "     1- ceph-mon1-a     ON\r\n     2- london1-r4      OFF\r\n     3- Master Control/Configuration\r\n";
        let outlets = parse_outlet_menu(screen).unwrap();
        assert_eq!(outlets.len(), 2);
        assert_eq!(outlets[0].name, "ceph-mon1-a");
    }

    #[test]
    fn outlet_lines_run_together_are_refused_not_read_with_the_next_ones_state() {
        let text = "     1- db1       ON2- b        OFF\n";
        assert!(matches!(
            parse_outlet_menu(text),
            Err(ParseError::BadLine { .. })
        ));
        // A name that holds ON, even before digits, is still a name.
        let named = "     1- db ON 2x        OFF\n     2- ON9 rack       ON\n";
        assert_eq!(parse_outlet_menu(named).unwrap().len(), 2);
    }

    #[test]
    fn outlet_lines_give_number_name_and_state() {
        let outlets = parse_outlet_menu(SCREEN).unwrap();
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
        assert_eq!(outlets[2].name, "db ON call");
        assert_eq!(outlets[2].state, PowerState::Off);
    }

    #[test]
    fn menu_entries_in_mixed_case_are_not_outlets() {
        let control = "------- Control Outlet -------\n     1- Immediate On\n     2- Immediate Off\n     3- Immediate Reboot\n> ";
        assert_eq!(
            parse_outlet_menu(control),
            Err(ParseError::NoOutlets { listing: LISTING })
        );
    }

    #[test]
    fn pages_joined_together_give_every_outlet() {
        let pages =
            "   1- a   ON\n   2- b   ON\nPress <ENTER> to continue...\n\x0c   3- c   OFF\n> ";
        let outlets = parse_outlet_menu(pages).unwrap();
        assert_eq!(
            outlets.iter().map(|o| o.number).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC*") {
            let _ = parse_outlet_menu(&text);
        }

        #[test]
        fn reads_back_what_it_is_given(
            // A name holding a state after a run of blanks is refused on purpose
            // (`an_outlet_named_after_a_master_or_without_its_number_is_no_menu_entry`).
            rows in proptest::collection::vec((
                "[a-zA-Z0-9_.-]([a-zA-Z0-9 _.-]{0,14}[a-zA-Z0-9_.-])?"
                    .prop_filter("a padded state", |n: &String| !super::super::holds_padded_state(n)),
                any::<bool>(),
            ), 1..20)
                .prop_map(|rows| (1u32..).zip(rows).collect::<std::collections::BTreeMap<_, _>>())
        ) {
            let mut text = String::from("------- Outlet Control/Configuration -------\r\n");
            for (n, (name, on)) in &rows {
                text.push_str(&format!("   {n:>3}- {name:<24} {}\r\n", if *on { "ON" } else { "OFF" }));
            }
            text.push_str("> ");
            let outlets = parse_outlet_menu(&text).unwrap();
            prop_assert_eq!(outlets.len(), rows.len());
            for (o, (n, (name, on))) in outlets.iter().zip(&rows) {
                prop_assert_eq!(o.number, *n);
                prop_assert_eq!(&o.name, name);
                prop_assert_eq!(o.state, if *on { PowerState::On } else { PowerState::Off });
            }
        }
    }
}

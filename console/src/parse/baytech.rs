//! The outlet status table of Baytech RPC power strips (the answer to `Status`,
//! also printed after each command on most models).
//!
//! Sources, for want of a device on the bench:
//! - fence-agents' `fence_baytech.pl` (removed in 2014), `parse_status`: entries
//!   `NN)...<name> : On|Off[ Locked]`, two to a line on an RPC-27, name padded to
//!   15 characters, and its refusal to switch a `Locked` outlet;
//! - powerman's Baytech simulator (`t/simulators/baytech.c`): the same entries two
//!   to a line (RPC-28 NC) or one to a line (RPC3-NC, RPC-3/4(A)DE), and the old
//!   RPC-3 F5.01 table `Selection Number / Outlet Name / Outlet Number / Power
//!   Status`, whose Selection Number is what `ON n` takes;
//! - cluster-glue's `baytech.c`, `parse_socket_line`: a number, then the name at a
//!   fixed column whose width varies by model (18 on an RPC-5, 10 on an RPC-3),
//!   so we do not rely on a fixed width: the name runs to the last `:` of the
//!   entry.
//!
//! Menu entries of the same `N)...` shape ("1)...Outlet Control") have no `:` and
//! are not outlets; in a listing that shows outlets, such an entry is an outlet
//! line that lost its state, and the listing is refused.

use fencekit_core::PowerState;

use super::{add, finish, lines, outlet_number, shown, Outlet, ParseError};

const LISTING: &str = "Baytech status table";

/// Reads the outlets of a Baytech status listing.
pub fn parse_status(text: &str) -> Result<Vec<Outlet>, ParseError> {
    let mut outlets = Vec::new();
    // The first `N)...` entry without a state: a menu entry where no outlet is
    // listed, an outlet line that lost its state where outlets are.
    let mut stateless: Option<&str> = None;
    let mut table = Table::None;
    let lowercase = super::prints_lowercase_states(text);
    for line in lines(text) {
        let trimmed = line.trim();
        if trimmed.starts_with("Selection") && trimmed.contains("Outlet") {
            table = Table::Header;
            continue;
        }
        match table {
            // Blank lines inside the table (a device or a PTY doubling line ends)
            // neither end it nor hide the rows after them.
            _ if trimmed.is_empty() => continue,
            Table::Header if trimmed.starts_with("Number") => continue,
            Table::Header | Table::Rows if trimmed.starts_with(|c: char| c.is_ascii_digit()) => {
                table = Table::Rows;
                add(&mut outlets, table_row(trimmed)?, LISTING)?;
                continue;
            }
            Table::Header => {
                return Err(ParseError::BadLine {
                    listing: LISTING,
                    line: shown(line),
                })
            }
            // A row that lost its selection number is no footer.
            Table::Rows if trimmed.split_whitespace().last().is_some_and(is_state) => {
                return Err(ParseError::BadLine {
                    listing: LISTING,
                    line: shown(line),
                })
            }
            // Text below the table ("Type Help", a note between rows) ends nothing:
            // every row the strip printed after it is still read, never dropped.
            Table::Rows => continue,
            Table::None => {}
        }
        let (found, menu) = entries(line, lowercase)?;
        // An entry that lost its `N)...` (`db1 : On`): as the last one no gap shows
        // it, and skipping it could hide the plug's second outlet.
        if found.is_empty() && !menu && lost_its_number(trimmed) {
            stateless.get_or_insert(line);
        }
        for outlet in found {
            add(&mut outlets, outlet, LISTING)?;
        }
        if menu {
            stateless.get_or_insert(line);
        }
    }
    if let Some(line) = stateless.filter(|_| !outlets.is_empty()) {
        return Err(ParseError::BadLine {
            listing: LISTING,
            line: shown(line),
        });
    }
    finish(outlets, LISTING)
}

/// Where the old RPC-3 `Selection` table stands in a listing.
#[derive(Clone, Copy)]
enum Table {
    None,
    /// After the `Selection ... Outlet` line: its `Number` line, then rows.
    Header,
    Rows,
}

/// The `NN)...name : state` entries of one line, and whether the line also holds
/// an entry without a state (a menu entry).
fn entries(line: &str, lowercase_states: bool) -> Result<(Vec<Outlet>, bool), ParseError> {
    let bytes = line.as_bytes();
    // (where the number starts, where the entry text starts, number)
    let mut marks: Vec<(usize, usize, &str)> = Vec::new();
    let mut from = 0;
    while let Some(found) = line[from..].find(")...") {
        let paren = from + found;
        let mut start = paren;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        let at_word_start = start == 0 || bytes[start - 1].is_ascii_whitespace();
        if start < paren && at_word_start {
            marks.push((start, paren + 4, &line[start..paren]));
        }
        from = paren + 4;
    }
    let mut outlets = Vec::new();
    let mut menu = false;
    for (i, &(_, text_start, digits)) in marks.iter().enumerate() {
        let text_end = marks.get(i + 1).map_or(line.len(), |next| next.0);
        let entry = &line[text_start..text_end];
        let bad = || ParseError::BadLine {
            listing: LISTING,
            line: shown(line),
        };
        // Another entry glued to this one (`db1 : On2)...b : Off`): its state would
        // be read as this outlet's.
        if entry.contains(")...") {
            return Err(bad());
        }
        let Some((name, status)) = entry.rsplit_once(':') else {
            menu = true;
            continue;
        };
        // A name holding a state of its own (`c : On    db1`): the entry beside it
        // lost its `N)...` and ran into this one.
        if super::holds_state(name, lowercase_states) {
            return Err(bad());
        }
        let number = outlet_number(digits).ok_or_else(bad)?;
        let mut words = status.split_whitespace();
        let state = state_word(words.next().ok_or_else(bad)?);
        let locked = match words.next() {
            None => false,
            Some(w) if w.eq_ignore_ascii_case("locked") => true,
            Some(_) => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        outlets.push(Outlet {
            number,
            name: name.trim().to_string(),
            state,
            locked,
        });
    }
    Ok((outlets, menu))
}

/// `name : On` (or `Off`, or either `Locked`) without the `N)...` before it: the
/// name padded to its column, a blank before the `:` (a status line such as
/// `Circuit Breaker: On` has none, and its two-column form `Circuit Breaker:  On
/// :  On` has only states between its colons, where an entry run into it would
/// leave a name, and its label no blank before the first).
fn lost_its_number(line: &str) -> bool {
    let mut columns = line.split(':').skip(1).peekable();
    let status_columns = columns.peek().is_some()
        && columns.all(|column| {
            let mut words = column.split_whitespace();
            words.next().is_some_and(is_state) && words.next().is_none()
        });
    let label = line.split(':').next().unwrap_or_default();
    if status_columns
        && line.matches(':').count() >= 2
        && !label.trim().is_empty()
        && !label.ends_with(char::is_whitespace)
    {
        return false;
    }
    line.rsplit_once(':').is_some_and(|(name, status)| {
        if !name.ends_with(char::is_whitespace) || name.trim().is_empty() {
            return false;
        }
        let mut words = status.split_whitespace();
        words.next().is_some_and(is_state)
            && words
                .next()
                .map_or(true, |w| w.eq_ignore_ascii_case("locked"))
            && words.next().is_none()
    })
}

/// A row of the old RPC-3 table: selection, name (may hold blanks), outlet
/// number, state. A name holding a state beside a number is two rows run
/// together (`db1 2 On 3 b`), the state read for the first being the second's.
fn table_row(row: &str) -> Result<Outlet, ParseError> {
    let bad = || ParseError::BadLine {
        listing: LISTING,
        line: shown(row),
    };
    let words: Vec<&str> = row.split_whitespace().collect();
    // Three words: an outlet without a name.
    if words.len() < 3 {
        return Err(bad());
    }
    let selection = outlet_number(words[0]).ok_or_else(bad)?;
    outlet_number(words[words.len() - 2]).ok_or_else(bad)?;
    let state = state_word(words[words.len() - 1]);
    let name = &words[1..words.len() - 2];
    let number = |w: &str| outlet_number(w).is_some();
    if name.windows(2).any(|pair| {
        (is_state(pair[0]) && number(pair[1])) || (number(pair[0]) && is_state(pair[1]))
    }) {
        return Err(bad());
    }
    Ok(Outlet {
        number: selection,
        name: name.join(" "),
        state,
        locked: false,
    })
}

fn is_state(word: &str) -> bool {
    state_word(word) != PowerState::Unknown
}

fn state_word(word: &str) -> PowerState {
    if word.eq_ignore_ascii_case("on") {
        PowerState::On
    } else if word.eq_ignore_ascii_case("off") {
        PowerState::Off
    } else {
        PowerState::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // As an RPC-28 NC prints it (powerman simulator), after the terminal filter.
    const RPC28: &str = "\n                    Outlet  1-10         Outlet 11-21 \n   Average Power:     619 Watts     :        5 Watts \n Circuit Breaker:       Good        :        Good  \n\nInternal Temperature:  30.0 C\n\n\n 1)...Outlet  1       : On            2)...db-node2        : Off          \n 3)...Outlet  3       : Off           4)...Outlet  4       : On    Locked \n\nType \"Help\" for a list of commands\n\nRPC-28A>";

    #[test]
    fn two_entries_a_line_give_number_name_state_and_lock() {
        let outlets = parse_status(RPC28).unwrap();
        assert_eq!(outlets.len(), 4);
        assert_eq!(
            outlets[0],
            Outlet {
                number: 1,
                name: "Outlet  1".into(),
                state: PowerState::On,
                locked: false
            }
        );
        assert_eq!(outlets[1].name, "db-node2");
        assert_eq!(outlets[1].state, PowerState::Off);
        assert_eq!(outlets[3].state, PowerState::On);
        assert!(outlets[3].locked);
    }

    #[test]
    fn one_entry_a_line_is_read_too() {
        let text = " 1)...Outlet  1       : Off          \n 2)...web             : On           \n";
        let outlets = parse_status(text).unwrap();
        assert_eq!(outlets[1].name, "web");
        assert_eq!(outlets[1].state, PowerState::On);
    }

    #[test]
    fn the_old_rpc3_table_is_read_by_selection_number() {
        let text = "  Circuit Breaker: On \n\n  Selection   Outlet    Outlet   Power\n    Number     Name     Number   Status\n      1       Outlet 1    1       On \n      2       db node     2       Off \n\n  Type \"Help\" for a list of commands\n";
        let outlets = parse_status(text).unwrap();
        assert_eq!(outlets.len(), 2);
        assert_eq!(outlets[1].name, "db node");
        assert_eq!(outlets[1].state, PowerState::Off);
    }

    #[test]
    fn menu_entries_are_not_outlets() {
        let menu = "  RPC-3 Menu:\n\n    1)...Outlet Control\n    2)...Manage Users\n    6)...Logout\n\n  Enter Selection>";
        assert_eq!(
            parse_status(menu),
            Err(ParseError::NoOutlets { listing: LISTING })
        );
    }

    #[test]
    fn the_last_outlet_entry_without_its_state_fails_the_listing() {
        // The gap check cannot see a last entry that lost its `: On`; it must not
        // pass as a menu entry and hide the second `db1`.
        for text in [
            " 1)...a : On \n 2)...db1 : On \n 3)...c : On \n 4)...db1\n",
            " 1)...a : On            2)...db1\n",
        ] {
            assert!(
                matches!(parse_status(text), Err(ParseError::BadLine { .. })),
                "{text:?}: {:?}",
                parse_status(text)
            );
        }
    }

    #[test]
    fn rows_of_the_old_rpc3_table_after_a_blank_line_are_still_read() {
        // Line ends doubled (a PTY adding CRs) or a blank line inside the table:
        // the rows after it still count, so a second `db1` is never hidden.
        let text = "  Selection   Outlet    Outlet   Power\n\n    Number     Name     Number   Status\n\n      1       db1    1       On \n\n      2       web    2       On \n\n      3       db1    3       On \n\n\n  Type \"Help\" for a list of commands\n";
        let outlets = parse_status(text).unwrap();
        assert_eq!(outlets.len(), 3);
        assert_eq!(outlets[2].name, "db1");
    }

    #[test]
    fn an_entry_beside_another_that_lost_its_number_is_refused() {
        for line in [
            " 3)...c               : On             db1             : On \r\n",
            " 3)...c               : Ondb1             : On \r\n",
        ] {
            let text = format!(
                " 1)...web             : On             2)...db1             : On \r\n{line}"
            );
            assert!(
                matches!(parse_status(&text), Err(ParseError::BadLine { .. })),
                "{line:?}"
            );
        }
        // Names with a colon and a word that only begins like a state are names.
        let text = " 1)...srv:one         : On             2)...nas: offsite    : Off \r\n";
        let outlets = parse_status(text).unwrap();
        assert_eq!(outlets[0].name, "srv:one");
        assert_eq!(outlets[1].name, "nas: offsite");
        assert_eq!(outlets[1].state, PowerState::Off);
        // The old RPC-3 table: an outlet without a name is read, named nothing.
        let table = "Selection   Outlet      Outlet   Power\r\n  Number     Name        Number   Status\r\n     1       db1         1       On\r\n     2                   2       Off\r\n";
        let outlets = parse_status(table).unwrap();
        assert_eq!(outlets.len(), 2);
        assert_eq!(outlets[1].name, "");
        assert_eq!(outlets[1].state, PowerState::Off);
    }

    #[test]
    fn rows_run_together_or_that_lost_their_number_are_refused() {
        let table = "Selection   Outlet      Outlet   Power\r\n  Number     Name        Number   Status\r\n";
        for text in [
            // Two rows of the old RPC-3 table on one line.
            format!("{table}     1       web         1       On\r\n     2       db1         2       On       3       b           3       Off\r\n"),
            // The last RPC-28 entry lost its `N)...`.
            " 1)...web             : On\r\n 2)...db1             : On\r\n    db1             : On\r\n".to_string(),
            " 1)...web             : On\r\n 2)...db1             : On\r\n    db1             : Off Locked\r\n".to_string(),
        ] {
            assert!(
                matches!(parse_status(&text), Err(ParseError::BadLine { .. })),
                "{text:?}: {:?}",
                parse_status(&text)
            );
        }
        // Lines of the status header are no entries.
        let header =
            " Circuit Breaker:       Good        :        Good  \r\n 1)...web             : On\r\n";
        assert_eq!(parse_status(header).unwrap().len(), 1);
        // The same header of a strip printing its breakers' state as On.
        let header =
            " Circuit Breaker:       On          :        On    \r\n 1)...web             : On\r\n";
        assert_eq!(parse_status(header).unwrap().len(), 1);
        // An entry that lost its number run into it leaves a name between them.
        let glued =
            " Circuit Breaker:       On   db1    :        On    \r\n 1)...web             : On\r\n";
        assert!(parse_status(glued).is_err());
        let glued = " c               : On   :  On\r\n 1)...web             : On\r\n";
        assert!(parse_status(glued).is_err());
    }

    #[test]
    fn rows_of_the_old_rpc3_table_after_a_note_inside_it_are_still_read() {
        let text = "  Selection   Outlet    Outlet   Power\n    Number     Name     Number   Status\n      1       a    1       On \n      2       db1    2       On \n  Note: outlets below are on circuit B\n      3       db1    3       On \n\n  Type \"Help\" for a list of commands\n";
        let outlets = parse_status(text).unwrap();
        assert_eq!(outlets.len(), 3);
        assert_eq!(outlets[2].name, "db1");
        // A footer line that starts with a digit is not taken for nothing.
        let footer = format!("{text}  2 outlets locked\n");
        assert!(parse_status(&footer).is_err());
    }

    #[test]
    fn entries_glued_together_are_refused_not_read_with_the_next_ones_state() {
        for text in [
            " 1)...db1 : On2)...b : Off\n",
            " 1)...db1 : On 2)...b : Off 3)...c : On4)...d : Off\n",
        ] {
            assert!(
                matches!(parse_status(text), Err(ParseError::BadLine { .. })),
                "{text:?}: {:?}",
                parse_status(text)
            );
        }
    }

    #[test]
    fn a_row_of_the_old_rpc3_table_that_lost_its_number_is_refused() {
        let text = "  Selection   Outlet    Outlet   Power\n    Number     Name     Number   Status\n      1       db1    1       On \n             db1    2       On \n";
        assert!(matches!(
            parse_status(text),
            Err(ParseError::BadLine { .. })
        ));
    }

    #[test]
    fn an_outlet_entry_that_lost_its_state_is_not_skipped_as_a_menu_entry() {
        // Outlet 4's line lost its `: On`: read as a menu entry, outlet 4, the
        // second `db1`, dropped out of the lookup.
        let text =
            " 1)...a : On \r\n 2)...db1 : On \r\n 3)...c : On \r\n 4)...db1\r\n 5)...e : Off \r\n";
        assert!(matches!(
            parse_status(text),
            Err(ParseError::BadLine { .. })
        ));
    }

    #[test]
    fn an_unreadable_entry_is_an_error() {
        let err = parse_status(" 1)...Outlet 1 : On Sideways\n").unwrap_err();
        assert!(matches!(err, ParseError::BadLine { .. }), "{err}");
        let err = parse_status(" 1)...Outlet 1 :\n").unwrap_err();
        assert!(matches!(err, ParseError::BadLine { .. }), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC*") {
            let _ = parse_status(&text);
        }

        #[test]
        fn never_panics_on_text_made_of_table_pieces(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(")...".to_string()), Just(" : ".to_string()), Just("On".to_string()),
                    Just("Locked".to_string()), Just("\n".to_string()), Just("Selection Outlet\n".to_string()),
                    "[0-9]{1,12}", "[ a-z]{0,5}",
                ],
                0..40,
            )
        ) {
            let _ = parse_status(&pieces.concat());
        }

        #[test]
        fn reads_back_what_it_is_given(
            rows in proptest::collection::vec(("[a-zA-Z0-9_.-]([a-zA-Z0-9 _.-]{0,13}[a-zA-Z0-9_.-])?", any::<bool>(), any::<bool>()), 1..20)
                .prop_map(|rows| (1u32..).zip(rows).collect::<std::collections::BTreeMap<_, _>>())
        ) {
            let mut text = String::from("Internal Temperature:  30.0 C\r\n\r\n");
            let rows_v: Vec<_> = rows.iter().collect();
            for pair in rows_v.chunks(2) {
                for (n, (name, on, locked)) in pair {
                    text.push_str(&format!(
                        "{n:>2})...{name:<15} : {:<4}{}   ",
                        if *on { "On" } else { "Off" },
                        if *locked { "Locked" } else { "      " },
                    ));
                }
                text.push_str("\r\n");
            }
            let outlets = parse_status(&text).unwrap();
            prop_assert_eq!(outlets.len(), rows.len());
            for (o, (n, (name, on, locked))) in outlets.iter().zip(&rows) {
                prop_assert_eq!(o.number, *n);
                prop_assert_eq!(&o.name, name);
                prop_assert_eq!(o.state, if *on { PowerState::On } else { PowerState::Off });
                prop_assert_eq!(o.locked, *locked);
            }
        }
    }
}

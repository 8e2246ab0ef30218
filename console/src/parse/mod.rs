//! Readers of the outlet listings APC and Baytech consoles print: pure functions
//! of plain text (as [`crate::Console`] delivers it), so they are unit- and
//! property-tested without a device.
//!
//! - [`apc_cli`]: the `apc>` command line of AOS v5 and later (`olStatus all`,
//!   `E000: Success` result codes);
//! - [`apc_menu`]: the numbered menu UI of older firmware (Outlet
//!   Control/Configuration list);
//! - [`baytech`]: the status table of Baytech RPC strips.
//!
//! Each returns every outlet with its number, name and state, or an error when
//! the text holds no outlet at all or contradicts itself.

pub mod apc_cli;
pub mod apc_menu;
pub mod baytech;

use fencekit_core::{Plug, PlugInfo, PowerState};
use thiserror::Error;

use crate::terminal::SCREEN_BREAK;

/// One outlet as a console listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    /// 1-based, as the device numbers it (the number its commands take).
    pub number: u32,
    /// The device's name for it, blanks trimmed (may be empty).
    pub name: String,
    /// On, Off, or Unknown for a state word we do not know.
    pub state: PowerState,
    /// Baytech marks outlets locked against switching; always false for APC.
    pub locked: bool,
}

impl Outlet {
    pub fn plug_info(&self) -> PlugInfo {
        PlugInfo {
            plug: Plug::Number(self.number),
            name: (!self.name.is_empty()).then(|| self.name.clone()),
            alias: None,
            state: self.state,
        }
    }
}

/// Why a listing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("no outlet found in the {listing}")]
    NoOutlets { listing: &'static str },
    #[error("the {listing} lists outlet {number} twice, differently")]
    Conflict { listing: &'static str, number: u32 },
    #[error("the {listing} has a line we cannot read: {line:?}")]
    BadLine { listing: &'static str, line: String },
    /// Outlets are numbered 1, 2, ... N: a number left out is a line lost or one
    /// we did not take for an outlet, and it could carry the plug's name too.
    #[error(
        "the {listing} skips outlet {missing}; refusing to pick outlets from a listing \
         missing a line"
    )]
    Gap { listing: &'static str, missing: u32 },
    /// A device's outlets do not come and go during a run: a listing with another
    /// count than an earlier one of the same device lost lines (its last rows, which
    /// no gap shows) or ran two together, and a state read from it may be another
    /// outlet's.
    #[error(
        "the {listing} shows {seen} outlets where an earlier listing of this device \
         showed {before}; refusing to read a listing that lost or gained lines"
    )]
    Miscount {
        listing: &'static str,
        seen: usize,
        before: usize,
    },
    /// The APC command line answered with an error code (E1xx).
    #[error("the device answered {code}: {message}")]
    DeviceError { code: String, message: String },
}

/// How many outlets each unit (APC unit, Baytech strip) of one device listed,
/// shared by the clones of that device: every later listing must show as many.
/// A listing that lost its last rows shows no gap, and one whose last rows were
/// spliced into the row before can show that row with the last row's state; the
/// count of an earlier (or later) listing of the same run tells both.
#[derive(Debug, Clone, Default)]
pub struct Census(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u32, usize>>>);

impl Census {
    /// Records the count of `outlets` for `unit`, or refuses a count other than
    /// the one recorded.
    pub fn check(
        &self,
        unit: u32,
        outlets: &[Outlet],
        listing: &'static str,
    ) -> Result<(), ParseError> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before = *counts.entry(unit).or_insert(outlets.len());
        if before == outlets.len() {
            Ok(())
        } else {
            Err(ParseError::Miscount {
                listing,
                seen: outlets.len(),
                before,
            })
        }
    }
}

/// Lines of plain text: split at newlines and screen breaks.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', SCREEN_BREAK])
}

/// Adds `outlet`, merging an identical repeat (a menu redrawn) and refusing a
/// different one (which reading would be right is unknowable).
pub(crate) fn add(
    outlets: &mut Vec<Outlet>,
    outlet: Outlet,
    listing: &'static str,
) -> Result<(), ParseError> {
    match outlets.iter().find(|o| o.number == outlet.number) {
        Some(known) if *known == outlet => Ok(()),
        Some(_) => Err(ParseError::Conflict {
            listing,
            number: outlet.number,
        }),
        None => {
            outlets.push(outlet);
            Ok(())
        }
    }
}

pub(crate) fn finish(
    mut outlets: Vec<Outlet>,
    listing: &'static str,
) -> Result<Vec<Outlet>, ParseError> {
    if outlets.is_empty() {
        return Err(ParseError::NoOutlets { listing });
    }
    outlets.sort_by_key(|o| o.number);
    if let Some(missing) = (1u32..)
        .zip(&outlets)
        .find(|(n, outlet)| outlet.number != *n)
        .map(|(n, _)| n)
    {
        return Err(ParseError::Gap { listing, missing });
    }
    Ok(outlets)
}

/// A decimal outlet number, 1 or more.
pub(crate) fn outlet_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|&n| n >= 1)
}

/// A line shortened for an error message.
pub(crate) fn shown(line: &str) -> String {
    line.trim().chars().take(120).collect()
}

/// Whether `name` holds a state word of the listing after a `:` (`c: On: db1`,
/// `c : Ondb1`, `c: On db1`): a name runs to the last state of the line, so one
/// holding a state of its own is an outlet row with the next row (that lost its
/// number, and its line end to a character the text filter drops) run into it.
/// Names of the command line and of Baytech strips hold no `: On` of their own.
/// A word that only begins like a state is a name (`srv:one`, `vm: online`,
/// `nas:offsite`), unless it begins with a state as the device prints them
/// (`On`, `ON`, `Off`, `OFF`; also `on`, `off` when `lowercase_states`, the
/// listing printing its states so): `c: Ondb1` is `c: On` with `db1` glued to it.
pub(crate) fn holds_state(name: &str, lowercase_states: bool) -> bool {
    name.match_indices(':').any(|(at, _)| {
        let after = name[at + 1..].trim_start();
        ["on", "off"].iter().any(|state| {
            let Some(word) = after.get(..state.len()) else {
                return false;
            };
            if !word.eq_ignore_ascii_case(state) {
                return false;
            }
            let glued = after[state.len()..].starts_with(|c: char| c.is_alphabetic());
            !glued || word.starts_with('O') || (lowercase_states && word.starts_with('o'))
        })
    })
}

/// Whether a listing prints a state in lower case (`: on`, `: off` ending a word).
pub(crate) fn prints_lowercase_states(text: &str) -> bool {
    [": on", ": off", ":on", ":off"].iter().any(|state| {
        text.match_indices(state)
            .any(|(at, _)| !text[at + state.len()..].starts_with(|c: char| c.is_alphanumeric()))
    })
}

/// Whether a menu outlet's `name` holds an upper-case ON or OFF after a run of
/// blanks (`c        ON       db1`, `c    ONdb1`): padding to the state column
/// then a state is the previous row's end, the next row (that lost its number)
/// run into it. A name with a single blank before the word (`db ON call`) is a name.
pub(crate) fn holds_padded_state(name: &str) -> bool {
    ["ON", "OFF"].iter().any(|state| {
        name.match_indices(state).any(|(at, _)| {
            let before = &name[..at];
            let blanks = before.len() - before.trim_end().len();
            blanks >= 2 && !before.trim().is_empty()
        })
    })
}

/// Whether `name` holds an outlet's state followed by the next outlet's number
/// (`db1 ON2-`, `db1: On 2:`, `db1 ON<TAB>2-`): two outlet lines run together,
/// glued or parted by blanks only, the state read for the first being the
/// second's. `separator` is what follows the number in the listing (`"- "` in APC
/// menus); `states` the state words as printed there.
pub(crate) fn glued_entry(name: &str, states: &[&str], separator: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    states.iter().any(|state| {
        let state = state.to_ascii_lowercase();
        lower.match_indices(state.as_str()).any(|(at, _)| {
            // The state as a word of its own (`db1 ON2-`), not inside another word
            // (`ceph-mon1-a` holds no state).
            let word_start = !state.starts_with(|c: char| c.is_ascii_alphanumeric())
                || lower[..at]
                    .chars()
                    .next_back()
                    .map_or(true, |c| !c.is_alphanumeric());
            if !word_start {
                return false;
            }
            let after = lower[at + state.len()..].trim_start();
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            digits > 0 && after[digits..].starts_with(separator.trim_end())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlets(n: u32) -> Vec<Outlet> {
        (1..=n)
            .map(|number| Outlet {
                number,
                name: format!("o{number}"),
                state: PowerState::On,
                locked: false,
            })
            .collect()
    }

    #[test]
    fn a_later_listing_with_another_outlet_count_is_refused_per_unit_and_across_clones() {
        let census = Census::default();
        census.check(1, &outlets(8), "t").unwrap();
        census.check(2, &outlets(4), "t").unwrap();
        let clone = census.clone();
        clone.check(1, &outlets(8), "t").unwrap();
        let err = clone.check(1, &outlets(7), "t").unwrap_err();
        assert_eq!(
            err,
            ParseError::Miscount {
                listing: "t",
                seen: 7,
                before: 8
            }
        );
        assert!(census.check(2, &outlets(5), "t").is_err());
        census.check(2, &outlets(4), "t").unwrap();
    }
}

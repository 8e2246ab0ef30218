//! Power states, plugs and fence targets: the nouns every plugin and front end shares.

use std::fmt;

use thiserror::Error;

use crate::error::DeviceError;

/// What a plug's power reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    On,
    Off,
    /// The device answered but the state is neither on nor off (pending, delayed,
    /// an outlet being rebooted, a value the plugin does not know).
    Unknown,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One switchable power feed of a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plug {
    /// The whole machine behind a BMC: there is nothing to choose.
    Chassis,
    /// An outlet by number (APC, Baytech), 1-based as the devices count.
    Number(u32),
    /// An outlet by the name the device gives it; matched exactly, never as a
    /// substring.
    Name(String),
    /// An outlet on one unit of a daisy chain (MasterSwitch Plus, Baytech strips
    /// behind a management module): `unit:outlet`.
    OnUnit { unit: u32, outlet: Box<Plug> },
}

/// The longest plug text accepted from a user or a device: far beyond any outlet
/// name a PDU stores (APC: 20 characters, Baytech: 16), short enough that no parser
/// or dialogue downstream has to think about size.
pub const MAX_PLUG_TEXT: usize = 256;

/// Why a user's plug text was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlugError {
    #[error("plug text of {len} bytes is too long (at most {MAX_PLUG_TEXT})")]
    TooLong { len: usize },
    /// A line break or another control character would end a console line early and
    /// send the rest to the device as a command of its own.
    #[error("plug {shown:?} holds a control character")]
    ControlCharacter { shown: String },
}

impl Plug {
    /// Parses what a user writes for a plug: empty or `chassis` for a BMC, a number,
    /// `unit:outlet`, or a name. Never recursive: a unit prefix is read once, and
    /// what follows it is a number or a name, so no input can exhaust the stack.
    ///
    /// An outlet number is only a number in its canonical form: `07` stays the text `07`
    /// (an outlet may be named so), and [`resolve_outlet`] finds outlet 7 by it
    /// unless another outlet is named `07`, which makes it ambiguous.
    pub fn parse(text: &str) -> Plug {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("chassis") {
            return Plug::Chassis;
        }
        if let Some((unit, outlet)) = text.split_once(':') {
            // A unit is a unit in any digits (`02:03`, as fence_apc_snmp reads its
            // `switch:plug`): no outlet of one unit is named so.
            if let Some(unit) = canonical_digits(unit.trim()) {
                let outlet = outlet.trim();
                if !outlet.is_empty() {
                    return Plug::OnUnit {
                        unit,
                        outlet: Box::new(Plug::outlet(outlet)),
                    };
                }
            }
        }
        Plug::outlet(text)
    }

    /// [`Plug::parse`] for text from outside the process (a front end's argument, a
    /// host map, a configuration file): refuses what no device could mean.
    pub fn try_parse(text: &str) -> Result<Plug, PlugError> {
        if text.len() > MAX_PLUG_TEXT {
            return Err(PlugError::TooLong { len: text.len() });
        }
        if text.chars().any(char::is_control) {
            return Err(PlugError::ControlCharacter {
                shown: text.chars().take(40).collect(),
            });
        }
        Ok(Plug::parse(text))
    }

    /// An outlet without a unit: a canonical number or a name.
    fn outlet(text: &str) -> Plug {
        match canonical_number(text) {
            Some(n) => Plug::Number(n),
            None => Plug::Name(text.to_string()),
        }
    }
}

/// `text` as a number when it is written as the number prints (`7`, not `07` or `+7`).
fn canonical_number(text: &str) -> Option<u32> {
    let n = text.parse::<u32>().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Which of a device's outlets, listed as `(number, name)`, a plug without a unit
/// names. The one rule every plugin uses, so that no plugin guesses:
///
/// * a number is the outlet with that number (as fence-agents read digits); if
///   another outlet is *named* that number, the plug is ambiguous (an outlet named
///   `3` after node 3 on outlet 7: either could be meant);
/// * a name is every outlet with exactly that name; a name of digits (`07`) also
///   names the outlet with that number;
/// * another outlet whose name differs only in case or blanks makes a name
///   ambiguous too;
/// * `1:N` (unit 1, outlet N: fence_apc_snmp's `switch:plug` on a device of one
///   unit) is the outlet numbered N and nothing else, whatever the outlets are
///   named: the way to name a number some outlet is also named after;
/// * more than one outlet is an error, never the first of them: two outlets named
///   `db1` are usually the two power supplies of one node, and switching one of them
///   off fences nothing.
pub fn resolve_outlet<'a>(
    plug: &Plug,
    outlets: impl IntoIterator<Item = (u32, &'a str)> + Clone,
) -> Result<u32, DeviceError> {
    let mut found: Vec<u32> = Vec::new();
    match plug {
        Plug::Number(n) => {
            let text = n.to_string();
            for (number, name) in outlets.clone() {
                // An outlet named the number, in any padding (`3`, `03`), is what
                // the plug may mean too.
                let named = named_alike(name, &text);
                if (number == *n || named) && !found.contains(&number) {
                    found.push(number);
                }
            }
            // Only the named outlet (there is no outlet with that number) is not the
            // number's meaning: read as a number, the plug names no outlet.
            if !found.contains(n) {
                found.clear();
            }
        }
        Plug::Name(text) => {
            let digits = canonical_digits(text);
            for (number, name) in outlets.clone() {
                // Digits also name an outlet named them in another padding
                // (`03` beside an outlet named `3`).
                let named = name == text
                    || digits.is_some_and(|d| canonical_digits(name.trim()) == Some(d));
                if (named || digits == Some(number)) && !found.contains(&number) {
                    found.push(number);
                }
            }
            // An outlet whose name differs only in case or surrounding blanks (`DB1`
            // beside `db1`) is most likely the node's other power supply, and
            // cluster-glue's host lookup takes it as the same name: the plug is
            // ambiguous, never the exactly matching outlet alone.
            if !found.is_empty() {
                for (number, name) in outlets.clone() {
                    if named_alike(name, text) && !found.contains(&number) {
                        found.push(number);
                    }
                }
            }
        }
        Plug::OnUnit { unit: 1, outlet } => return resolve_addressed(outlet, outlets),
        Plug::OnUnit { unit, .. } => {
            return Err(DeviceError::UnknownPlug {
                plug: plug.to_string(),
                known: format!(
                    "one unit only (unit {unit} does not exist): {}",
                    shown_outlets(outlets)
                ),
            })
        }
        Plug::Chassis => {}
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(DeviceError::UnknownPlug {
            plug: plug.to_string(),
            known: shown_outlets(outlets),
        }),
        many => Err(DeviceError::AmbiguousPlug {
            plug: plug.to_string(),
            outlets: many
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Whether an outlet's `name` could be what `text` means: alike
/// ([`names_alike`]), or the same number in another padding (`03` and `3`).
pub fn named_alike(name: &str, text: &str) -> bool {
    names_alike(name, text)
        || canonical_digits(name.trim()).is_some_and(|n| canonical_digits(text.trim()) == Some(n))
}

/// Two outlet names that differ only in case, blanks (anywhere: `db 1`, `db  1`,
/// `db1`), characters a screen does not show (zero-width spaces and joiners, a
/// soft hyphen, a byte order mark), the form Unicode writes them in (`café` with
/// one character or with `e` and a combining accent, full-width `ｄｂ１`, the
/// ligature `ﬁ`: compatibility decomposition, NFKD) or marks drawn on a letter
/// (`café`, `cafe`): beside an exact match, such an outlet makes a name ambiguous
/// ([`resolve_outlet`]), since a person reading the labels would take both for
/// the one name.
pub fn names_alike(name: &str, text: &str) -> bool {
    seen(name) == seen(text)
}

/// Whether `text` names `name` where a name is looked up, not checked for a rival:
/// the same but for case, blanks and characters that draw nothing ([`unseen`]), as
/// cluster tools match host names. Narrower than [`names_alike`]: `nöde1` is alike
/// to `node1` (beside it, either is ambiguous) but does not name it (a request to
/// fence the one must never find the other).
pub fn names_match(name: &str, text: &str) -> bool {
    fn plain(name: &str) -> impl Iterator<Item = char> + '_ {
        name.chars()
            .filter(|c| !c.is_whitespace() && !c.is_control() && !unseen(*c))
            .flat_map(char::to_lowercase)
    }
    plain(name).eq(plain(text))
}

/// What a reader sees of an outlet name, for [`names_alike`]: lower case,
/// compatibility-decomposed, without blanks, control characters, characters that
/// draw nothing ([`unseen`]) and marks drawn on a letter (non-spacing and
/// enclosing marks).
fn seen(name: &str) -> String {
    use icu_normalizer::DecomposingNormalizerBorrowed;
    use icu_properties::{props::GeneralCategory, CodePointMapData};
    let lower: String = name.chars().flat_map(char::to_lowercase).collect();
    let decomposed = DecomposingNormalizerBorrowed::new_nfkd().normalize(&lower);
    let category = CodePointMapData::<GeneralCategory>::new();
    decomposed
        .chars()
        .filter(|&c| {
            !c.is_whitespace()
                && !c.is_control()
                && !unseen(c)
                && !matches!(
                    category.get(c),
                    GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
                )
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Characters that draw nothing, or nothing of their own: format characters (soft
/// hyphen, zero-width spaces and joiners, bidirectional marks, embeddings and
/// isolates, word joiner, invisible operators, byte order mark, tags), combining
/// marks that only select a form (grapheme joiner, variation selectors), the blank
/// fillers of Hangul and Braille, and U+FFFD, which stands for a byte that was not
/// text (a Latin-1 no-break space, say) and could have been anything.
fn unseen(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffd}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// `plug` (an outlet number as a device listed it) as the address `unit:number`,
/// which names that number only ([`resolve_addressed`]); anything else as it is.
pub fn on_unit(unit: u32, plug: &Plug) -> Plug {
    match plug {
        Plug::Number(n) => Plug::OnUnit {
            unit,
            outlet: Box::new(Plug::Number(*n)),
        },
        other => other.clone(),
    }
}

/// The outlet a plug names once its unit was given (`unit:outlet`): a number is the
/// outlet with that number only, as an address; a name is looked for as
/// [`resolve_outlet`] does.
pub fn resolve_addressed<'a>(
    outlet: &Plug,
    outlets: impl IntoIterator<Item = (u32, &'a str)> + Clone,
) -> Result<u32, DeviceError> {
    match outlet {
        Plug::Number(n) => {
            if outlets.clone().into_iter().any(|(number, _)| number == *n) {
                Ok(*n)
            } else {
                Err(DeviceError::UnknownPlug {
                    plug: outlet.to_string(),
                    known: shown_outlets(outlets),
                })
            }
        }
        Plug::Name(_) => resolve_outlet(outlet, outlets),
        // `Plug::parse` never nests units, nor puts the chassis under one.
        Plug::OnUnit { .. } | Plug::Chassis => Err(DeviceError::UnknownPlug {
            plug: outlet.to_string(),
            known: shown_outlets(outlets),
        }),
    }
}

fn shown_outlets<'a>(outlets: impl IntoIterator<Item = (u32, &'a str)>) -> String {
    outlets
        .into_iter()
        .map(|(number, name)| {
            if name.is_empty() {
                number.to_string()
            } else {
                format!("{number} ({name})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name made only of ASCII digits (`07`) as its number.
pub fn canonical_digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok()
}

impl fmt::Display for Plug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plug::Chassis => f.write_str("chassis"),
            Plug::Number(n) => write!(f, "{n}"),
            Plug::Name(name) => f.write_str(name),
            Plug::OnUnit { unit, outlet } => write!(f, "{unit}:{outlet}"),
        }
    }
}

/// A plug as a device lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlugInfo {
    pub plug: Plug,
    /// The device's own name for the plug, when it has one.
    pub name: Option<String>,
    /// A description kept beside the name (IF-MIB's ifAlias), on devices whose
    /// fence agent lists plugs by name and description (fence_ifmib): there the
    /// fence agent's `list` prints the name, then this; elsewhere the plug, then
    /// its name.
    pub alias: Option<String>,
    pub state: PowerState,
}

/// One plug of a fence target, on a named device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetPlug {
    /// The device's name in the configuration (`pdu-a`, `bmc1`).
    pub device: String,
    pub plug: Plug,
}

impl fmt::Display for TargetPlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plug {
            Plug::Chassis => write!(f, "{}", self.device),
            _ => write!(f, "plug {} on {}", self.plug, self.device),
        }
    }
}

/// A node to fence: every plug that feeds it, on one or more devices (dual power
/// supplies on two PDUs are two plugs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceTarget {
    pub node: String,
    pub plugs: Vec<TargetPlug>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugs_parse_as_users_write_them() {
        assert_eq!(Plug::parse(""), Plug::Chassis);
        assert_eq!(Plug::parse("Chassis"), Plug::Chassis);
        assert_eq!(Plug::parse(" 3 "), Plug::Number(3));
        assert_eq!(
            Plug::parse("2:5"),
            Plug::OnUnit {
                unit: 2,
                outlet: Box::new(Plug::Number(5))
            }
        );
        assert_eq!(Plug::parse("db-1"), Plug::Name("db-1".into()));
        assert_eq!(Plug::parse("x:5"), Plug::Name("x:5".into()));
        assert_eq!(Plug::parse("2:5").to_string(), "2:5");
        assert_eq!(Plug::parse("07"), Plug::Name("07".into()));
        assert_eq!(Plug::parse("+7"), Plug::Name("+7".into()));
        // fence_apc_snmp's `switch:plug` with leading zeros: unit 2, and outlet
        // `03`, which finds outlet 3 by the one rule.
        assert_eq!(
            Plug::parse("02:03"),
            Plug::OnUnit {
                unit: 2,
                outlet: Box::new(Plug::Name("03".into()))
            }
        );
        assert_eq!(
            resolve_addressed(&Plug::Name("03".into()), [(3, "db")]).unwrap(),
            3
        );
    }

    #[test]
    fn deep_or_long_plug_text_is_refused_without_recursion() {
        let deep = "1:".repeat(50_000) + "1";
        assert!(matches!(
            Plug::try_parse(&deep),
            Err(PlugError::TooLong { .. })
        ));
        // The infallible parser reads one unit level and keeps the rest as a name.
        let Plug::OnUnit { unit: 1, outlet } = Plug::parse(&deep) else {
            panic!("one unit level expected")
        };
        assert!(matches!(*outlet, Plug::Name(_)));
        assert!(matches!(
            Plug::try_parse("db1\nolOff 1"),
            Err(PlugError::ControlCharacter { .. })
        ));
        assert_eq!(Plug::try_parse(" 3 "), Ok(Plug::Number(3)));
    }

    fn outlets() -> Vec<(u32, &'static str)> {
        vec![(1, "db1"), (2, "web"), (3, "db1"), (7, "app"), (8, "07")]
    }

    #[test]
    fn unit_1_and_a_number_is_that_outlet_only_whatever_the_others_are_named() {
        let outlets = [(2, "node2"), (5, "2")];
        assert!(resolve_outlet(&Plug::parse("2"), outlets).is_err());
        assert_eq!(resolve_outlet(&Plug::parse("1:2"), outlets), Ok(2));
        assert_eq!(resolve_outlet(&Plug::parse("1:node2"), outlets), Ok(2));
        assert!(resolve_outlet(&Plug::parse("1:9"), outlets).is_err());
        let err = resolve_outlet(&Plug::parse("2:2"), outlets).unwrap_err();
        assert!(err.to_string().contains("unit 2 does not exist"), "{err}");
    }

    #[test]
    fn a_name_beside_one_differing_only_in_case_or_blanks_is_ambiguous() {
        let err =
            resolve_outlet(&Plug::parse("db1"), [(1, "db1"), (2, "DB1 "), (3, "web")]).unwrap_err();
        assert!(
            matches!(&err, DeviceError::AmbiguousPlug { outlets, .. } if outlets == "1, 2"),
            "{err}"
        );
        // Alone, a name is matched exactly, as fence_apc_snmp matches it.
        assert!(resolve_outlet(&Plug::parse("DB1"), [(1, "db1")]).is_err());
        // Blanks inside, and characters a screen does not show, count as nothing.
        for (plug, other) in [
            ("db 1", "db  1"),
            ("db 1", "db1"),
            ("db1", "db1\u{200b}"),
            ("db1", "d\u{ad}b1"),
            ("db1", "\u{feff}db1"),
            ("db1", "db1\t"),
            ("db1", "db1\u{2066}\u{2069}"),
            ("db1", "db1\u{fe0f}"),
            ("db1", "db1\u{3164}"),
            ("db1", "db1\u{e0041}"),
            ("db1", "db1\u{fffd}"),
            ("2", "2\u{200b}"),
        ] {
            let err = resolve_outlet(&Plug::parse(plug), [(1, plug), (2, other)]).unwrap_err();
            assert!(
                matches!(&err, DeviceError::AmbiguousPlug { outlets, .. } if outlets == "1, 2"),
                "{plug:?} {other:?}: {err}"
            );
        }
        assert_eq!(
            resolve_outlet(&Plug::parse("db1"), [(1, "db1"), (2, "db2")]).unwrap(),
            1
        );
    }

    /// Names that are one text in another Unicode form (composed or decomposed,
    /// full-width, a ligature, an accent more or less) are drawn alike.
    #[test]
    fn a_name_beside_one_in_another_unicode_form_is_ambiguous() {
        for (plug, other) in [
            ("caf\u{e9}", "cafe\u{301}"),
            ("db1", "\u{ff44}\u{ff42}\u{ff11}"),
            ("\u{ff24}\u{ff22}1", "db1"),
            ("fi-1", "\u{fb01}-1"),
            ("caf\u{e9}", "cafe"),
            ("db1", "db\u{2460}"),
            ("db1", "d\u{20dd}b1"),
            ("\u{130}stanbul", "istanbul"),
        ] {
            let err = resolve_outlet(&Plug::parse(plug), [(1, plug), (2, other)]).unwrap_err();
            assert!(
                matches!(&err, DeviceError::AmbiguousPlug { outlets, .. } if outlets == "1, 2"),
                "{plug:?} {other:?}: {err}"
            );
        }
        // Letters that differ stay apart.
        assert_eq!(
            resolve_outlet(&Plug::parse("caf\u{e9}"), [(1, "caf\u{e9}"), (2, "cafes")]).unwrap(),
            1
        );
    }

    #[test]
    fn a_name_in_another_unicode_form_is_alike_but_names_nothing() {
        assert!(names_alike("n\u{f6}de1", "node1") && !names_match("n\u{f6}de1", "node1"));
        assert!(names_alike("\u{ff4e}ode1", "node1") && !names_match("\u{ff4e}ode1", "node1"));
        assert!(names_match("Node 1\u{200b}", "node1"));
        // Alone, a name alike is no match.
        assert!(resolve_outlet(&Plug::parse("n\u{f6}de1"), [(1, "node1")]).is_err());
    }

    #[test]
    fn two_outlets_with_one_name_are_ambiguous_never_the_first() {
        let err = resolve_outlet(&Plug::parse("db1"), outlets()).unwrap_err();
        assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
        assert!(err.to_string().contains("1, 3"), "{err}");
    }

    #[test]
    fn a_number_names_its_outlet_and_a_name_its_outlet() {
        assert_eq!(resolve_outlet(&Plug::parse("2"), outlets()), Ok(2));
        assert_eq!(resolve_outlet(&Plug::parse("web"), outlets()), Ok(2));
        assert!(matches!(
            resolve_outlet(&Plug::parse("9"), outlets()),
            Err(DeviceError::UnknownPlug { .. })
        ));
    }

    #[test]
    fn digits_with_a_leading_zero_name_an_outlet_or_its_number_but_not_both() {
        // Outlet 8 is named "07" and outlet 7 exists: "07" could mean either.
        assert!(matches!(
            resolve_outlet(&Plug::parse("07"), outlets()),
            Err(DeviceError::AmbiguousPlug { .. })
        ));
        // Without an outlet named "07", "07" is outlet 7 as fence-agents read it.
        assert_eq!(
            resolve_outlet(&Plug::parse("07"), [(7, "x"), (8, "y")]),
            Ok(7)
        );
        // Without an outlet 7, "07" is the outlet named so.
        assert_eq!(resolve_outlet(&Plug::parse("07"), [(3, "07")]), Ok(3));
    }

    #[test]
    fn a_number_that_is_also_another_outlets_name_is_ambiguous() {
        // Outlet 7 named "3" after node 3: plug 3 could be outlet 3 or outlet 7.
        let err = resolve_outlet(&Plug::parse("3"), [(3, "liar"), (7, "3")]).unwrap_err();
        assert!(matches!(err, DeviceError::AmbiguousPlug { .. }), "{err}");
        assert!(err.to_string().contains("3, 7"), "{err}");
        // Outlet 3 named "3" is one outlet.
        assert_eq!(
            resolve_outlet(&Plug::parse("3"), [(3, "3"), (7, "x")]),
            Ok(3)
        );
        // No outlet 3: the number names none, whatever another is called.
        assert!(matches!(
            resolve_outlet(&Plug::parse("3"), [(1, "a"), (2, "3")]),
            Err(DeviceError::UnknownPlug { .. })
        ));
        assert!(named_alike("03", " 3") && named_alike("DB 1", "db1"));
        assert!(!named_alike("3", "13") && !named_alike("db1", "db2"));
        // Padding decides nothing: `03` or `003` beside an outlet named `3`, and `3`
        // beside one named `03`, are ambiguous too.
        for (plug, name) in [("03", "3"), ("003", "3"), ("3", "03"), ("003", "03")] {
            let err = resolve_outlet(&Plug::parse(plug), [(3, "liar"), (7, name)]).unwrap_err();
            assert!(
                matches!(err, DeviceError::AmbiguousPlug { .. }),
                "{plug} beside {name}: {err}"
            );
        }
    }
}

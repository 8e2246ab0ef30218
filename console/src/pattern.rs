//! What a dialogue waits for: a piece of text anywhere in what the device sent, or
//! a prompt (the last, unfinished line, with the device then falling silent).
//!
//! Why no regular expressions: what consoles print that we must wait for is fixed
//! text ("Press <ENTER> to continue", "Enter 'YES' to continue", "(Y/N)") or a
//! prompt line ("apc>", ">", a Baytech strip's "RPC-28A>"). Literal and prompt
//! patterns cover these, cannot be written wrongly (no escaping of `(`, `>` or
//! `?`, which fence_baytech had to do), cost no dependency and match in plain,
//! auditable code. Variable output (outlet tables) is read by the parsers in
//! [`crate::parse`], not by patterns.

use std::fmt;

use crate::terminal::SCREEN_BREAK;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The text anywhere.
    Text,
    /// The last, unfinished line is exactly the text (surrounding blanks ignored).
    Prompt,
    /// The last, unfinished line ends with the text.
    PromptEnding,
}

/// One thing to wait for. Matching is on the plain text (see
/// [`crate::terminal`]), so escape sequences and `\r` never get in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    kind: Kind,
    text: String,
    ignore_case: bool,
}

impl Pattern {
    /// `text` anywhere in the output, e.g. `"to continue"`, `"(Y/N)"`.
    pub fn text(text: impl Into<String>) -> Pattern {
        Pattern {
            kind: Kind::Text,
            text: text.into(),
            ignore_case: false,
        }
    }

    /// A prompt: the last line the device sent, not ended by a newline, is
    /// exactly `prompt` (blanks around it ignored), e.g. `"apc>"`, `">"`,
    /// `"RPC-28A>"`. A prompt only matches once the device has been silent for
    /// the console's `prompt_settle` time (or closed the stream), because a
    /// device that has more to say is not waiting for us yet.
    pub fn prompt(prompt: impl Into<String>) -> Pattern {
        Pattern {
            kind: Kind::Prompt,
            text: trimmed(prompt),
            ignore_case: false,
        }
    }

    /// A prompt line that ends with `suffix` (e.g. `">"`), for devices whose
    /// prompt text varies (powerman's Baytech simulator alternates `RPC-28>` and
    /// `RPC-28A>`). The line must not be blank.
    pub fn prompt_ending(suffix: impl Into<String>) -> Pattern {
        Pattern {
            kind: Kind::PromptEnding,
            text: trimmed(suffix),
            ignore_case: false,
        }
    }

    /// The same pattern, ignoring ASCII case.
    pub fn ignore_case(mut self) -> Pattern {
        self.ignore_case = true;
        self
    }

    /// Whether this pattern waits for the device to fall silent.
    pub fn is_prompt(&self) -> bool {
        self.kind != Kind::Text
    }

    /// Where this pattern matches in `buffer`: byte range `start..end`.
    pub(crate) fn find(&self, buffer: &str) -> Option<(usize, usize)> {
        match self.kind {
            Kind::Text => find_text(buffer, &self.text, self.ignore_case)
                .map(|start| (start, start + self.text.len())),
            Kind::Prompt | Kind::PromptEnding => {
                let (line_start, line) = last_line(buffer);
                let trimmed = line.trim_start_matches([' ', '\t']);
                let start = line_start + (line.len() - trimmed.len());
                let trimmed = trimmed.trim_end_matches([' ', '\t']);
                let hit = match self.kind {
                    Kind::Prompt => eq(trimmed, &self.text, self.ignore_case),
                    _ => {
                        !trimmed.is_empty()
                            && trimmed.len() >= self.text.len()
                            && trimmed.is_char_boundary(trimmed.len() - self.text.len())
                            && eq(
                                &trimmed[trimmed.len() - self.text.len()..],
                                &self.text,
                                self.ignore_case,
                            )
                    }
                };
                hit.then_some((start, buffer.len()))
            }
        }
    }
}

fn trimmed(text: impl Into<String>) -> String {
    let text: String = text.into();
    text.trim_matches([' ', '\t']).to_string()
}

impl Pattern {
    /// The text waited for.
    pub(crate) fn text_of(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Text => write!(f, "{:?}", self.text)?,
            Kind::Prompt => write!(f, "prompt {:?}", self.text)?,
            Kind::PromptEnding => write!(f, "a prompt ending in {:?}", self.text)?,
        }
        if self.ignore_case {
            f.write_str(" (any case)")?;
        }
        Ok(())
    }
}

/// The last line of `buffer` (after the last newline or screen break) and where it
/// starts.
pub(crate) fn last_line(buffer: &str) -> (usize, &str) {
    match buffer.rfind(['\n', SCREEN_BREAK]) {
        Some(i) => (i + 1, &buffer[i + 1..]),
        None => (0, buffer),
    }
}

fn eq(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Byte offset of the first occurrence of `needle`. With `ignore_case`, ASCII
/// letters compare without case; other bytes compare exactly, so a hit always
/// starts and ends on character boundaries (a UTF-8 needle never starts with a
/// continuation byte).
fn find_text(haystack: &str, needle: &str, ignore_case: bool) -> Option<usize> {
    if !ignore_case {
        return haystack.find(needle);
    }
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    h.windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
        .filter(|&i| haystack.is_char_boundary(i))
}

/// Joins patterns for messages: `"to continue" or prompt "apc>"`.
pub(crate) fn describe(patterns: &[Pattern]) -> String {
    match patterns {
        [] => "nothing".to_string(),
        _ => patterns
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_anywhere_and_case_folding_is_opt_in() {
        let p = Pattern::text("to continue");
        assert_eq!(p.find("Press <ENTER> to continue..."), Some((14, 25)));
        assert_eq!(p.find("Press <ENTER> TO CONTINUE"), None);
        let p = p.ignore_case();
        assert_eq!(p.find("Press <ENTER> TO CONTINUE"), Some((14, 25)));
    }

    #[test]
    fn a_prompt_must_be_the_whole_last_line() {
        let p = Pattern::prompt(">");
        assert_eq!(p.find("menu\n> "), Some((5, 7)));
        assert_eq!(p.find("Press <ENTER>"), None);
        assert_eq!(p.find(">\nmore"), None);
        let p = Pattern::prompt("RPC-28A>");
        assert_eq!(p.find("status\n  RPC-28A>"), Some((9, 17)));
        assert_eq!(p.find("RPC-28A>\n"), None);
    }

    #[test]
    fn a_prompt_after_a_screen_clear_is_still_the_last_line() {
        assert_eq!(Pattern::prompt("apc>").find("old\x0capc>"), Some((4, 8)));
    }

    #[test]
    fn a_prompt_ending_needs_a_non_blank_line_with_that_ending() {
        let p = Pattern::prompt_ending(">");
        assert!(p.find("x\nRPC-28>").is_some());
        assert!(p.find("x\nRPC-28A> ").is_some());
        assert!(p.find("x\n").is_none());
        assert!(p.find("x\nRPC-28").is_none());
    }

    #[test]
    fn case_insensitive_search_handles_non_ascii_text() {
        let p = Pattern::text("y/n").ignore_case();
        assert_eq!(p.find("\u{e9}t\u{e9} (Y/N)"), Some((7, 10)));
        assert_eq!(p.find("\u{e9}\u{e9}"), None);
    }

    #[test]
    fn patterns_describe_themselves_for_error_messages() {
        let d = describe(&[
            Pattern::text("to continue"),
            Pattern::prompt("apc>").ignore_case(),
        ]);
        assert_eq!(d, "\"to continue\" or prompt \"apc>\" (any case)");
    }
}

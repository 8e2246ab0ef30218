//! The dialogue transcript at `trace` level (target [`TRANSCRIPT_TARGET`]), and the
//! masking of secrets in it and in error messages.
//!
//! Secrets are masked both where we send them and where a device echoes them
//! back. Received text is logged a line at a time, and the end of an unfinished
//! line that could be the start of a secret is held back until the rest arrives,
//! so a secret split across two reads is never logged in halves.

use std::ops::Range;

use fencekit_core::{screen, Secret};

/// The `tracing` target of transcript events: enable it with
/// `RUST_LOG=fencekit_console::transcript=trace`.
pub const TRANSCRIPT_TARGET: &str = "fencekit_console::transcript";

/// What stands for a secret we send.
pub const MASK: &str = "***";

/// What replaces a whole text that holds a secret. The whole text, not the secret
/// alone: masking the secret in place would show where it stood, and in a text one
/// can guess (a fixed message, a device's usual banner) that says what it is.
pub const WITHHELD: &str = "[withheld: the text holds a secret]";

/// The fewest characters of a secret's start or end that make a text a piece of
/// an echoed secret ([`Redactor::hides`]).
const PIECE_MIN: usize = 3;

/// Longest unfinished line we hold back before logging it anyway.
const MAX_PENDING: usize = 4096;

/// The secrets of one console, to be masked wherever its text is shown.
#[derive(Debug, Default, Clone)]
pub(crate) struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    pub(crate) fn add(&mut self, secret: &Secret) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.clone());
            // Longest first, so that a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text`, or [`WITHHELD`] when it [`hides`](Redactor::hides) a secret.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.hides(text) {
            WITHHELD.to_string()
        } else {
            text.to_string()
        }
    }

    /// Whether `text` may not be shown: a secret shows in it anywhere, also broken
    /// by a line break or an escape sequence ([`fencekit_core::screen`]); a piece
    /// of one shows anywhere in it ([`fencekit_core::screen::shows_any_piece`]: a
    /// device that cuts an echo to its field's length and goes on with other text
    /// on the same line, `: Sekr3tPassw  Invalid password.`); or it is a piece of
    /// an echo a line break cut: it begins with the end of a secret, or ends with
    /// the start of one (at least [`PIECE_MIN`] characters of it). A device that
    /// echoes the password and wraps it leaves its tail as the last line, which a
    /// dialogue may learn as the prompt and an error would quote.
    pub(crate) fn hides(&self, text: &str) -> bool {
        self.shows_piece(text)
            || self.secrets.iter().any(|s| {
                screen::starts_with_end_of(text, s.expose(), PIECE_MIN)
                    || screen::partial_start(text, s.expose()).is_some_and(|start| {
                        text[start..]
                            .chars()
                            .filter(|c| !c.is_whitespace() && !c.is_control())
                            .count()
                            >= PIECE_MIN
                    })
            })
    }

    /// Whether a secret, or any piece of one of [`screen::PIECE_LEN`] characters
    /// in a row, shows anywhere in `text`.
    fn shows_piece(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| screen::shows(text, s.expose()))
            || screen::shows_any_piece(text, self.secrets.iter().map(|s| s.expose()))
    }

    /// The parts of `text` (byte ranges) that show a secret.
    fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        for secret in &self.secrets {
            let mut from = 0;
            while let Some(found) = screen::find(&text[from..], secret.expose()) {
                spans.push(from + found.start..from + found.end);
                from += found.end;
            }
        }
        spans
    }

    /// Length in bytes of the longest end of `text` that could be a proper start of
    /// a secret, also one a line break interrupted (and so might be completed by
    /// the next read).
    pub(crate) fn partial_suffix(&self, text: &str) -> usize {
        self.secrets
            .iter()
            .filter_map(|s| screen::partial_start(text, s.expose()))
            .min()
            .map_or(0, |start| text.len() - start)
    }

    /// `text` for an error message: withheld whole if a secret or a piece of one
    /// shows in it, or its start is the end of a secret (the text is the tail of
    /// a longer one), a trailing partial secret masked, at most the last
    /// `max_chars` characters, control characters escaped.
    pub(crate) fn for_message(&self, text: &str, max_chars: usize) -> String {
        if self.shows_piece(text)
            || self
                .secrets
                .iter()
                .any(|s| screen::starts_with_end_of(text, s.expose(), PIECE_MIN))
        {
            return WITHHELD.to_string();
        }
        let partial = self.partial_suffix(text);
        let mut shown = text[..text.len() - partial].to_string();
        if partial > 0 {
            shown.push_str(MASK);
        }
        let count = shown.chars().count();
        let tail: String = if count > max_chars {
            let skip = count - max_chars;
            format!("...{}", shown.chars().skip(skip).collect::<String>())
        } else {
            shown
        };
        if tail.is_empty() {
            "nothing".to_string()
        } else {
            format!("{tail:?}")
        }
    }
}

/// The received half of the transcript: whole lines are logged as they arrive.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    pending: String,
}

impl Transcript {
    pub(crate) fn sent(&self, device: &str, shown: &str) {
        tracing::trace!(target: TRANSCRIPT_TARGET, device, direction = "sent", text = ?shown);
    }

    pub(crate) fn received(&mut self, device: &str, text: &str, redactor: &Redactor) {
        self.pending.push_str(text);
        if let Some(end) = self.pending.rfind('\n') {
            // Whole lines, less those ending with what could be the start of a
            // secret a line break interrupted (a terminal wrapping an echo): they
            // wait for the rest.
            let mut cut = end + 1;
            let held = redactor.partial_suffix(&self.pending);
            if held > 0 {
                let from = self.pending.len() - held;
                if from < cut {
                    cut = self.pending[..from].rfind('\n').map_or(0, |i| i + 1);
                }
            }
            if cut > 0 {
                let rest = self.pending.split_off(cut);
                let lines = std::mem::replace(&mut self.pending, rest);
                log_lines(device, &lines, redactor);
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.flush(device, redactor);
        }
    }

    /// Logs the unfinished line (a prompt, a pager), keeping back a possible
    /// start of a secret.
    pub(crate) fn flush(&mut self, device: &str, redactor: &Redactor) {
        if self.pending.is_empty() {
            return;
        }
        let keep = redactor.partial_suffix(&self.pending);
        let rest = self.pending.split_off(self.pending.len() - keep);
        let part = std::mem::replace(&mut self.pending, rest);
        if !part.is_empty() {
            let part = redactor.redact(&part);
            tracing::trace!(target: TRANSCRIPT_TARGET, device, direction = "received", text = ?part);
        }
    }
}

/// Logs whole `lines` one by one; a line that shows a secret, or a part of one that
/// shows across lines, is logged as [`WITHHELD`].
fn log_lines(device: &str, lines: &str, redactor: &Redactor) {
    let spans = redactor.spans(lines);
    let mut at = 0;
    for line in lines.trim_end_matches('\n').split('\n') {
        let range = at..at + line.len();
        at += line.len() + 1;
        let crossed = spans
            .iter()
            .any(|s| s.start < range.end && range.start < s.end);
        let line = if crossed {
            WITHHELD.to_string()
        } else {
            redactor.redact(line)
        };
        tracing::trace!(target: TRANSCRIPT_TARGET, device, direction = "received", text = ?line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(&Secret::new(*s));
        }
        r
    }

    #[test]
    fn a_text_holding_any_secret_is_withheld_whole() {
        let r = redactor(&["pw", "banner"]);
        assert_eq!(r.redact("a pw-long b"), WITHHELD);
        // A secret that is a word of a fixed message does not show where it stood.
        assert_eq!(r.redact("the SSH banner never came"), WITHHELD);
        assert_eq!(r.redact("nothing to hide"), "nothing to hide");
    }

    #[test]
    fn a_partial_secret_at_the_end_is_found() {
        let r = redactor(&["hunter2"]);
        assert_eq!(r.partial_suffix("login: hunt"), 4);
        assert_eq!(r.partial_suffix("login: hunter2"), 0);
        assert_eq!(r.partial_suffix("login: "), 0);
    }

    #[test]
    fn messages_mask_secrets_and_trailing_partial_secrets() {
        let r = redactor(&["hunter2"]);
        assert_eq!(r.for_message("echo hunter2\nhun", 80), WITHHELD);
        assert_eq!(r.for_message("echo\nhun", 80), "\"echo\\n***\"");
        assert_eq!(r.for_message("", 80), "nothing");
        assert_eq!(r.for_message("abcdef", 3), "\"...def\"");
    }

    /// A device that cuts the echo of a password to its field's length and goes on
    /// with other text on the line, or a listing line holding a piece of one
    /// inside other text: the piece shows neither at the text's start nor at its
    /// end, and is withheld all the same.
    #[test]
    fn a_piece_of_a_secret_inside_other_text_is_withheld() {
        let secret = "ADl64uOFLA5tL4oHx2jbkKa9GCPXuX00tb7HPYXK";
        let r = redactor(&[secret]);
        for text in [
            format!("  : {}  Invalid password.\n\n", &secret[..24]),
            format!(" 5)...{} : On Extra", &secret[10..]),
            format!(" 5)...{} : On Extra", &secret[15..25]),
            format!("x {} y", &secret[30..36]),
        ] {
            assert_eq!(r.redact(&text), WITHHELD, "{text}");
            assert_eq!(r.for_message(&text, 160), WITHHELD, "{text}");
        }
        // Five characters of it in a row are not a piece.
        let text = format!("- {} -", &secret[30..35]);
        assert_eq!(r.redact(&text), text);
        assert_eq!(r.redact("Invalid password."), "Invalid password.");
    }
}

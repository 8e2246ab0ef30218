//! The dialogue transcript at `trace` level (target [`TRANSCRIPT_TARGET`]), and the
//! masking of secrets in it and in error messages.
//!
//! Secrets are masked both where we send them and where a device echoes them
//! back. Received text is logged a line at a time, and the end of an unfinished
//! line that could be the start of a secret is held back until the rest arrives,
//! so a secret split across two reads is never logged in halves.

use fencekit_core::Secret;

/// The `tracing` target of transcript events: enable it with
/// `RUST_LOG=fencekit_console::transcript=trace`.
pub const TRANSCRIPT_TARGET: &str = "fencekit_console::transcript";

/// What stands for a secret we send.
pub const MASK: &str = "***";

/// What replaces a whole text that holds a secret. The whole text, not the secret
/// alone: masking the secret in place would show where it stood, and in a text one
/// can guess (a fixed message, a device's usual banner) that says what it is.
pub const WITHHELD: &str = "[withheld: the text holds a secret]";

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

    /// `text`, or [`WITHHELD`] when a secret is in it anywhere.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.secrets.iter().any(|s| text.contains(s.expose())) {
            WITHHELD.to_string()
        } else {
            text.to_string()
        }
    }

    /// Length in bytes of the longest end of `text` that is a proper start of a
    /// secret (and so might be completed by the next read).
    pub(crate) fn partial_suffix(&self, text: &str) -> usize {
        let mut longest = 0;
        for secret in &self.secrets {
            let s = secret.expose();
            let max = s.len().saturating_sub(1).min(text.len());
            for n in (longest + 1..=max).rev() {
                let start = text.len() - n;
                if text.is_char_boundary(start)
                    && s.as_bytes().starts_with(&text.as_bytes()[start..])
                {
                    longest = n;
                    break;
                }
            }
        }
        longest
    }

    /// `text` for an error message: withheld whole if a secret is in it, a
    /// trailing partial secret masked, at most the last `max_chars` characters,
    /// control characters escaped.
    pub(crate) fn for_message(&self, text: &str, max_chars: usize) -> String {
        if self.secrets.iter().any(|s| text.contains(s.expose())) {
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
            let rest = self.pending.split_off(end + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            for line in lines.trim_end_matches('\n').split('\n') {
                let line = redactor.redact(line);
                tracing::trace!(target: TRANSCRIPT_TARGET, device, direction = "received", text = ?line);
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
}

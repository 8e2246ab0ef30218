//! Turns the bytes a console sends into plain text that patterns and parsers can
//! read: ANSI/VT100 escape sequences removed, `\r\n`, `\n\r`, lone `\r` and lone
//! `\n` all made one `\n`, UTF-8 decoded across read boundaries (bad bytes become
//! U+FFFD), other control characters dropped. NEL, IND, RI and the line and
//! paragraph separators end a line as a line feed does; 8-bit C1 controls are read
//! as their 7-bit escape sequences.
//!
//! Why: APC menus redraw with cursor-positioning and erase sequences and end lines
//! with `\r\n`; Baytech strips end lines with `\r\n` or `\n\r` (cluster-glue's
//! `baytech.c` accepts both) and count down with backspaces. A pattern must not
//! fail because a bold attribute sits inside "Press <ENTER>".
//!
//! Screen clears (`ESC [ 2 J`, `ESC [ 3 J`, form feed) become a form feed
//! ([`SCREEN_BREAK`]) so that callers can keep only the last screen of a menu
//! that redrew itself; cursor positioning becomes a line break.

/// Marks where the device cleared its screen.
pub const SCREEN_BREAK: char = '\x0c';

/// Longest escape sequence we follow; a longer one (or an unterminated OSC
/// string) is abandoned so that it cannot swallow the rest of the session.
const MAX_ESCAPE: usize = 256;

/// Where a run of CR and LF bytes stands: a line breaks once for each line feed,
/// as a terminal shows it, and a lone CR after text breaks it too (devices that
/// end lines with CR alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Text (or nothing) since the last line break.
    Text,
    /// A CR broke the line; an LF next belongs to it.
    CrBroke,
    /// An LF broke the line; a CR next belongs to it.
    LfBroke,
    /// A CR LF or LF CR pair ended; a CR now is a carriage return at the start of
    /// a line, an LF a new (blank) line.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain text.
    None,
    /// After ESC.
    Start,
    /// ESC followed by intermediate bytes (`ESC ( B`, `ESC # 8`).
    Intermediate,
    /// Control Sequence Introducer `ESC [`: parameters until a final byte.
    Csi,
    /// A string (OSC `ESC ]`, DCS `ESC P`, PM, APC) until BEL or `ESC \`.
    String,
    /// ESC seen inside a string: a `\` ends it.
    StringEnding,
}

/// The streaming decoder: feed it each chunk as it arrives.
#[derive(Debug)]
pub(crate) struct TerminalFilter {
    escape: Escape,
    escape_len: usize,
    csi_params: Vec<u8>,
    utf8: Vec<u8>,
    utf8_need: usize,
    /// Where the current run of line-ending bytes stands.
    ending: Ending,
    /// The last character emitted (across chunks), to avoid stacking breaks.
    last: Option<char>,
}

impl Default for TerminalFilter {
    fn default() -> Self {
        TerminalFilter {
            escape: Escape::None,
            escape_len: 0,
            csi_params: Vec::new(),
            utf8: Vec::with_capacity(4),
            utf8_need: 0,
            ending: Ending::Text,
            last: None,
        }
    }
}

impl TerminalFilter {
    /// Decodes one chunk and returns its plain text.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        for &b in bytes {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut String) {
        match self.escape {
            Escape::None => self.plain(b, out),
            Escape::Start => {
                self.escape_len += 1;
                match b {
                    b'[' => {
                        self.csi_params.clear();
                        self.escape = Escape::Csi;
                    }
                    b']' | b'P' | b'X' | b'^' | b'_' => self.escape = Escape::String,
                    0x20..=0x2f => self.escape = Escape::Intermediate,
                    // NEL, IND, RI: the cursor moves to another line, as a line end.
                    b'E' | b'D' | b'M' => {
                        self.escape = Escape::None;
                        self.emit_break('\n', out);
                    }
                    0x30..=0x7e => self.escape = Escape::None,
                    _ => {
                        // Not a sequence after all: drop the ESC, keep the byte.
                        self.escape = Escape::None;
                        self.plain(b, out);
                    }
                }
            }
            Escape::Intermediate => {
                self.escape_len += 1;
                match b {
                    0x20..=0x2f if self.escape_len < MAX_ESCAPE => {}
                    0x30..=0x7e => self.escape = Escape::None,
                    _ => {
                        self.escape = Escape::None;
                        self.plain(b, out);
                    }
                }
            }
            Escape::Csi => {
                self.escape_len += 1;
                match b {
                    0x20..=0x3f if self.escape_len < MAX_ESCAPE => self.csi_params.push(b),
                    0x40..=0x7e => {
                        self.escape = Escape::None;
                        self.csi_final(b, out);
                    }
                    _ => {
                        self.escape = Escape::None;
                        self.plain(b, out);
                    }
                }
            }
            Escape::String => {
                self.escape_len += 1;
                match b {
                    // BEL, the 8-bit string terminator, and CAN or SUB (which abort
                    // any sequence) end the string.
                    0x07 | 0x9c | 0x18 | 0x1a => self.escape = Escape::None,
                    0x1b => self.escape = Escape::StringEnding,
                    _ if self.escape_len >= MAX_ESCAPE => self.escape = Escape::None,
                    _ => {}
                }
            }
            Escape::StringEnding => {
                self.escape_len += 1;
                if b == b'\\' || self.escape_len >= MAX_ESCAPE {
                    self.escape = Escape::None;
                } else {
                    self.escape = Escape::String;
                }
            }
        }
    }

    /// What a finished CSI sequence means for the text: only screen clears and
    /// cursor jumps matter (they separate what was drawn before from after).
    fn csi_final(&mut self, b: u8, out: &mut String) {
        match b {
            b'J' if self.csi_params == b"2" || self.csi_params == b"3" => {
                self.emit_break(SCREEN_BREAK, out)
            }
            // Cursor positioning, and every move to another line (up, down, next,
            // previous, to a row): what follows is another line, never glued to
            // this one.
            b'H' | b'f' | b'A' | b'B' | b'E' | b'F' | b'd' => self.emit_break('\n', out),
            _ => {}
        }
    }

    fn emit_break(&mut self, c: char, out: &mut String) {
        self.flush_utf8(out);
        self.ending = Ending::Text;
        match self.last {
            Some(SCREEN_BREAK) => {}
            Some('\n') if c == '\n' => {}
            None if c == '\n' => {}
            _ => self.emit(c, out),
        }
    }

    fn emit(&mut self, c: char, out: &mut String) {
        out.push(c);
        self.last = Some(c);
    }

    fn plain(&mut self, b: u8, out: &mut String) {
        if self.utf8_need > 0 {
            if (0x80..=0xbf).contains(&b) {
                self.utf8.push(b);
                if self.utf8.len() == self.utf8_need {
                    let c = std::str::from_utf8(&self.utf8)
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.utf8.clear();
                    self.utf8_need = 0;
                    match c {
                        // NEL and the line and paragraph separators end a line, as
                        // a line feed does: rows they part are never one row.
                        '\u{84}' | '\u{85}' | '\u{8d}' | '\u{2028}' | '\u{2029}' => {
                            self.emit_break('\n', out)
                        }
                        // Other C1 controls, as the C0 ones, are no text.
                        c if c.is_control() => {}
                        c => {
                            self.ending = Ending::Text;
                            self.emit(c, out);
                        }
                    }
                }
                return;
            }
            // The sequence broke off: mark it and read this byte afresh.
            self.flush_utf8(out);
        }
        match b {
            b'\r' => match self.ending {
                Ending::Text => {
                    self.ending = Ending::CrBroke;
                    self.emit('\n', out);
                }
                // The second half of an LF CR pair.
                Ending::LfBroke => self.ending = Ending::Done,
                // A carriage return at the start of a line moves nothing: CR CR LF
                // (a PTY's ONLCR after a device's own CR) is one line end.
                Ending::CrBroke | Ending::Done => {}
            },
            b'\n' => match self.ending {
                // The second half of a CR LF (or CR CR LF) pair.
                Ending::CrBroke => self.ending = Ending::Done,
                Ending::Text | Ending::LfBroke | Ending::Done => {
                    self.ending = Ending::LfBroke;
                    self.emit('\n', out);
                }
            },
            0x1b => {
                self.escape = Escape::Start;
                self.escape_len = 1;
            }
            0x0c => self.emit_break(SCREEN_BREAK, out),
            // A vertical tab moves down a line, as a line feed does.
            0x0b => self.emit_break('\n', out),
            0x08 => {
                // Backspace: take back the last character of this chunk (a
                // countdown such as "9\b8\b7" reads as its last digit). One that
                // arrives in a later chunk cannot be undone and is dropped.
                if let Some(prev) = out.chars().next_back() {
                    if prev != '\n' && prev != SCREEN_BREAK {
                        out.pop();
                        self.last = out.chars().next_back();
                    }
                }
            }
            b'\t' => {
                self.ending = Ending::Text;
                self.emit('\t', out);
            }
            0x00..=0x1f | 0x7f => {}
            0x20..=0x7e => {
                self.ending = Ending::Text;
                self.emit(char::from(b), out);
            }
            0xc2..=0xdf => self.start_utf8(b, 2),
            0xe0..=0xef => self.start_utf8(b, 3),
            0xf0..=0xf4 => self.start_utf8(b, 4),
            // 8-bit C1 controls (a byte that starts no UTF-8 sequence), read as
            // their 7-bit forms: NEL, IND and RI move to another line; CSI and the
            // string introducers start what `ESC [`, `ESC ]`, `ESC P` ... start.
            0x84 | 0x85 | 0x8d => self.emit_break('\n', out),
            0x9b => {
                self.csi_params.clear();
                self.escape = Escape::Csi;
                self.escape_len = 1;
            }
            0x90 | 0x98 | 0x9d..=0x9f => {
                self.escape = Escape::String;
                self.escape_len = 1;
            }
            0x80..=0x9f => {}
            _ => {
                self.ending = Ending::Text;
                self.emit(char::REPLACEMENT_CHARACTER, out);
            }
        }
    }

    fn start_utf8(&mut self, b: u8, need: usize) {
        self.utf8.clear();
        self.utf8.push(b);
        self.utf8_need = need;
    }

    fn flush_utf8(&mut self, out: &mut String) {
        if self.utf8_need > 0 {
            self.utf8.clear();
            self.utf8_need = 0;
            self.ending = Ending::Text;
            self.emit(char::REPLACEMENT_CHARACTER, out);
        }
    }
}

/// Plain text of a whole byte string (for tests and one-shot use).
pub fn plain_text(bytes: &[u8]) -> String {
    TerminalFilter::default().feed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_line_ending_style_becomes_one_newline() {
        assert_eq!(plain_text(b"a\r\nb\n\rc\nd\re"), "a\nb\nc\nd\ne");
    }

    #[test]
    fn blank_lines_survive_line_ending_normalisation() {
        assert_eq!(plain_text(b"a\r\n\r\nb"), "a\n\nb");
        assert_eq!(plain_text(b"a\n\nb"), "a\n\nb");
        assert_eq!(plain_text(b"a\n\r\n\rb"), "a\n\nb");
        assert_eq!(plain_text(b"a\r\r\n\r\r\nb"), "a\n\nb");
    }

    /// A device's CR LF through a PTY that adds a CR before each LF (ONLCR, as a
    /// telnet server's PTY may): one line end, as a terminal shows it, never a
    /// blank line that would cut a table in two.
    /// A device (or a terminal server) that moves to the next line with NEL or a
    /// cursor movement instead of CR LF: the lines stay apart, so one outlet's row
    /// never takes the next one's state.
    #[test]
    fn moves_to_another_line_break_the_line() {
        for moved in [
            &b"1: db1: On\x1bE2: b: Off"[..],
            b"1: db1: On\x1bD2: b: Off",
            b"1: db1: On\x1b[1E2: b: Off",
            b"1: db1: On\x1b[B2: b: Off",
            b"1: db1: On\x1b[5d2: b: Off",
            b"1: db1: On\x1b[A2: b: Off",
        ] {
            assert_eq!(
                plain_text(moved),
                "1: db1: On\n2: b: Off",
                "{:?}",
                String::from_utf8_lossy(moved)
            );
        }
    }

    #[test]
    fn cr_cr_lf_is_one_line_end_wherever_the_reads_split_it() {
        assert_eq!(plain_text(b"a\r\r\nb"), "a\nb");
        assert_eq!(plain_text(b"a\r\n\rb"), "a\nb");
        let bytes = b"Selection\r\r\n  Number\r\r\n  1 On\r\r\n";
        for cut in 0..bytes.len() {
            let mut f = TerminalFilter::default();
            let text = f.feed(&bytes[..cut]) + &f.feed(&bytes[cut..]);
            assert_eq!(text, "Selection\n  Number\n  1 On\n", "cut at {cut}");
        }
    }

    #[test]
    fn c1_controls_and_line_separators_end_a_line_or_start_their_sequence() {
        for (bytes, text) in [
            (&b"a: On\x853: b"[..], "a: On\n3: b"),
            (b"a: On\xc2\x853: b", "a: On\n3: b"),
            ("a: On\u{2028}3: b".as_bytes(), "a: On\n3: b"),
            ("a: On\u{2029}3: b".as_bytes(), "a: On\n3: b"),
            (b"a: On\x842: b", "a: On\n2: b"),
            (b"a: On\x8d2: b", "a: On\n2: b"),
            (b"a: On\x0b     db1: On", "a: On\n     db1: On"),
            (b"a: On\xc2\x84db1", "a: On\ndb1"),
            (b"a: On\xc2\x8ddb1", "a: On\ndb1"),
            // An 8-bit string ends at its 8-bit terminator, or at CAN or SUB.
            (b"a\x9d0;pdu\x9c 4: db1: On", "a 4: db1: On"),
            (b"a\x1b]0;pdu\x18 4: db1: On", "a 4: db1: On"),
            (b"a\x1b]0;pdu\x1a 4: db1: On", "a 4: db1: On"),
            // 8-bit CSI "2B" (cursor down): a move to another line.
            (b"a: On\x9b2B3: b", "a: On\n3: b"),
            (b"a\x9b1mb", "ab"),
            (b"a\x9dtitle\x07b", "ab"),
            // Other C1 controls are no text, 8-bit or UTF-8.
            (b"a\x81b\xc2\x81c", "abc"),
            // A UTF-8 letter whose second byte is 0x85 stays that letter.
            ("db\u{c5}1".as_bytes(), "db\u{c5}1"),
        ] {
            assert_eq!(plain_text(bytes), text, "{bytes:?}");
        }
    }

    #[test]
    fn escape_sequences_are_removed() {
        assert_eq!(
            plain_text(b"\x1b[1mPress <ENTER>\x1b[0m to continue\x1b]0;title\x07..."),
            "Press <ENTER> to continue..."
        );
        assert_eq!(plain_text(b"\x1b(Bok\x1b#8!"), "ok!");
    }

    #[test]
    fn a_screen_clear_is_marked_and_a_cursor_jump_breaks_the_line() {
        assert_eq!(plain_text(b"old>\x1b[2J\x1b[Hnew menu"), "old>\x0cnew menu");
        assert_eq!(plain_text(b"left\x1b[5;1Hright"), "left\nright");
    }

    #[test]
    fn sequences_split_across_chunks_are_still_removed() {
        let mut f = TerminalFilter::default();
        let mut text = f.feed(b"ab\x1b[");
        text += &f.feed(b"1;3");
        text += &f.feed(b"2mcd\r");
        text += &f.feed(b"\nef\xc3");
        text += &f.feed(b"\xa9");
        assert_eq!(text, "abcd\nef\u{e9}");
    }

    #[test]
    fn backspaces_take_back_characters_of_the_same_chunk() {
        assert_eq!(plain_text(b"Rebooting... 9\x088\x087"), "Rebooting... 7");
    }

    #[test]
    fn bad_utf8_becomes_replacement_characters() {
        assert_eq!(plain_text(b"a\xffb\xc3c"), "a\u{fffd}b\u{fffd}c");
    }

    #[test]
    fn an_unterminated_osc_string_does_not_swallow_the_session() {
        let mut bytes = b"\x1b]".to_vec();
        bytes.extend(std::iter::repeat(b'x').take(MAX_ESCAPE * 2));
        bytes.extend(b"\napc>");
        assert!(plain_text(&bytes).ends_with("\napc>"));
    }

    proptest! {
        #[test]
        fn any_bytes_give_text_without_escape_or_carriage_return(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            split in 0usize..512,
        ) {
            let split = split.min(bytes.len());
            let mut f = TerminalFilter::default();
            let mut text = f.feed(&bytes[..split]);
            text += &f.feed(&bytes[split..]);
            prop_assert!(!text.contains('\x1b'));
            prop_assert!(!text.contains('\r'));
        }
    }
}

//! Whether a text shows a secret, however what printed it broke the secret up, and
//! the process-wide screen every line fencekit writes to a log passes through.
//!
//! A secret rarely comes back byte for byte: a terminal wraps a long echo
//! (`hun\r\nter2`, or ` \r` at the wrap), colours it with escape sequences, a shell
//! tracing a script (`set -x`) quotes it (`'it'\''s'`), an error lower-cases it. So
//! texts and secrets are compared *folded*: without white space, control characters,
//! escape sequences, quotes and backslashes, and in ASCII lower case; the
//! process-wide screen also watches each secret written in hexadecimal (a device
//! that echoes in hex). Folding only ever makes more texts match: a text that
//! shows a secret is withheld, never shown in part.
//!
//! The screen ([`watch`], [`screen`]) is the last gate, behind the redaction each
//! plugin does for its own device's text: the front ends pass every line they log
//! (stderr, `debug_file`, syslog) through it, so that a secret reaching a message by
//! a way nobody foresaw (a value given for the wrong parameter, a site plugin's
//! error text) is withheld there too.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::Secret;

/// What a line that showed a watched secret becomes.
pub const WITHHELD_LINE: &str = "[withheld: the line holds a secret]";

/// Secrets shorter than this (folded) are not screened process-wide: every other
/// log line would show them. Each plugin still withholds its device's texts that
/// hold them exactly.
pub const SCREEN_MIN_LEN: usize = 4;

/// A text without the characters folding drops, and where each kept character
/// starts in the original.
struct Folded {
    text: Zeroizing<String>,
    starts: Vec<usize>,
}

fn fold(text: &str) -> Folded {
    let mut out = Folded {
        text: Zeroizing::new(String::with_capacity(text.len())),
        starts: Vec::with_capacity(text.len()),
    };
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '\u{1b}' {
            match chars.next() {
                // CSI: parameters and intermediates up to a final byte @..~.
                Some((_, '[')) => {
                    for (_, c) in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some((_, ']')) => {
                    while let Some((_, c)) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if(|(_, c)| *c == '\\');
                            break;
                        }
                    }
                }
                // Any other escape is one more character.
                _ => {}
            }
            continue;
        }
        if c == '\\' {
            // A control character written as an escape (`\t`, `\n`, `\r`, `\0`,
            // `\u{1b}`, as a quoted or Debug-formatted message writes it) folds
            // away as the character itself does.
            match chars.peek().map(|&(_, c)| c) {
                Some('t' | 'n' | 'r' | '0') => {
                    chars.next();
                }
                Some('u') => {
                    chars.next();
                    if chars.next_if(|&(_, c)| c == '{').is_some() {
                        while chars.next_if(|&(_, c)| c != '}').is_some() {}
                        chars.next();
                    }
                }
                _ => {}
            }
            continue;
        }
        if c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"') {
            continue;
        }
        // Case folded too (ASCII, which keeps every byte index): a parameter's error
        // that lower-cases the value it quotes shows the secret all the same.
        out.text.push(c.to_ascii_lowercase());
        out.starts.push(at);
    }
    out
}

/// The part of `text` (a byte range) that shows `secret`, folded (see the module
/// documentation); the first such part. A secret that folds to nothing (all white
/// space and quotes) is looked for as it is. An empty secret is never found.
pub fn find(text: &str, secret: &str) -> Option<Range<usize>> {
    if secret.is_empty() {
        return None;
    }
    let wanted = fold(secret);
    if wanted.text.is_empty() {
        return text.find(secret).map(|at| at..at + secret.len());
    }
    let folded = fold(text);
    let at = folded.text.find(wanted.text.as_str())?;
    let first = folded.text[..at].chars().count();
    let count = wanted.text.chars().count();
    let last = first + count - 1;
    let end = folded.starts[last] + text[folded.starts[last]..].chars().next()?.len_utf8();
    Some(folded.starts[first]..end)
}

/// Whether `text` shows `secret` ([`find`]).
pub fn shows(text: &str, secret: &str) -> bool {
    find(text, secret).is_some()
}

/// Where the end of `text` that could be the start of `secret` begins (a byte
/// index), folded: `hun\r\n` could be the start of `hunter2`, to be completed by
/// what a device sends next. `None` if no end of `text` could be.
pub fn partial_start(text: &str, secret: &str) -> Option<usize> {
    let wanted = fold(secret);
    if wanted.text.is_empty() {
        return None;
    }
    let folded = fold(text);
    let kept = folded.starts.len();
    let wanted_chars = wanted.text.chars().count();
    // The longest proper start of the secret the folded text ends with.
    let mut best = None;
    for n in 1..wanted_chars.min(kept + 1) {
        let from = folded.text.char_indices().nth(kept - n).map(|(i, _)| i)?;
        let prefix_end = wanted
            .text
            .char_indices()
            .nth(n)
            .map_or(wanted.text.len(), |(i, _)| i);
        if folded.text[from..] == wanted.text[..prefix_end] {
            best = Some(folded.starts[kept - n]);
        }
    }
    best
}

/// Whether `text` begins with the end of `secret` (at least `min` characters of it,
/// folded): what is left of a secret whose start was cut off a text shown from the
/// middle of a longer one.
pub fn starts_with_end_of(text: &str, secret: &str, min: usize) -> bool {
    let wanted = fold(secret);
    let folded = fold(text);
    let chars: Vec<char> = wanted.text.chars().collect();
    (min.max(1)..chars.len()).any(|n| {
        let end: String = chars[chars.len() - n..].iter().collect();
        let end = Zeroizing::new(end);
        folded.text.starts_with(end.as_str())
    })
}

/// A watched secret as texts are compared with it: folded, or as it is when it
/// folds to nothing.
struct Watched {
    text: Zeroizing<String>,
    folded: bool,
}

/// The secrets of this process's operation, for [`screen`], and a keyed hash of
/// each (so that watching many is not quadratic).
struct Watchlist {
    secrets: Vec<Watched>,
    seen: std::collections::HashSet<u64>,
    keys: std::collections::hash_map::RandomState,
}

static WATCHED: Mutex<Option<Watchlist>> = Mutex::new(None);

fn with_watchlist<T>(f: impl FnOnce(&mut Watchlist) -> T) -> T {
    let mut guard = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    let list = guard.get_or_insert_with(|| Watchlist {
        secrets: Vec::new(),
        seen: std::collections::HashSet::new(),
        keys: std::collections::hash_map::RandomState::new(),
    });
    f(list)
}

/// Adds `secret` to what [`screen`] withholds, for the rest of the process. The
/// parameter schema does this for every secret parameter it reads; code that
/// derives a secret of its own (an encoded credential) adds that. A secret shorter
/// than [`SCREEN_MIN_LEN`] is not screened process-wide.
pub fn watch(secret: &Secret) {
    use std::hash::BuildHasher;
    let folded = fold(secret.expose());
    let (text, is_folded) = if folded.text.is_empty() {
        (Zeroizing::new(secret.expose().to_string()), false)
    } else {
        (folded.text, true)
    };
    if text.chars().count() < SCREEN_MIN_LEN {
        return;
    }
    let hex = hex_of(secret.expose());
    with_watchlist(|list| {
        for (text, folded) in [(text, is_folded), (hex, true)] {
            let hash = list.keys.hash_one((folded, text.as_str()));
            if list.seen.insert(hash) {
                list.secrets.push(Watched { text, folded });
            }
        }
    });
}

/// Whether `text` shows any watched secret ([`watch`]).
pub fn shows_watched(text: &str) -> bool {
    with_watchlist(|list| {
        if list.secrets.is_empty() {
            return false;
        }
        let folded = fold(text);
        list.secrets.iter().any(|w| {
            if w.folded {
                folded.text.contains(w.text.as_str())
            } else {
                text.contains(w.text.as_str())
            }
        })
    })
}

/// Whether `text` shows any of `secrets` ([`find`]), `text` folded once.
pub fn shows_any<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> bool {
    let folded = fold(text);
    secrets.into_iter().any(|secret| {
        if secret.is_empty() {
            return false;
        }
        let wanted = fold(secret);
        if wanted.text.is_empty() {
            text.contains(secret)
        } else {
            folded.text.contains(wanted.text.as_str())
        }
    })
}

/// How long a piece of a secret [`shows_any_piece`] looks for.
pub const PIECE_LEN: usize = 6;

/// Whether a text a program wrote (a script's error line) shows any of `secrets`,
/// however it wrote it: folded ([`find`]); percent-encoded, in `\xNN`, `\uXXXX` or
/// octal `\NNN` escapes (a URL with the credential in it, a tool's byte dump, JSON);
/// in base64 (an HTTP Basic `Authorization` header that `curl -v` prints, whatever
/// came before the secret in it); in hexadecimal with any separators between the
/// pairs; or in part, any [`PIECE_LEN`] characters of it in a row (a message cut
/// short). Stricter than the process-wide screen, for text that comes from a
/// program handed the secret.
pub fn shows_any_piece<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> bool {
    let decoded = decode_escapes(text);
    let unbased = decode_base64_runs(text);
    let folded = [fold(text), fold(&decoded), fold(&unbased)];
    let hex_only: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    secrets.into_iter().any(|secret| {
        if secret.is_empty() {
            return false;
        }
        if text.contains(secret) || decoded.contains(secret) || unbased.contains(secret) {
            return true;
        }
        let wanted = fold(secret);
        let chars: Vec<char> = wanted.text.chars().collect();
        let piece = PIECE_LEN.min(chars.len());
        if piece > 0 {
            for window in chars.windows(piece) {
                let window: Zeroizing<String> = Zeroizing::new(window.iter().collect());
                if folded.iter().any(|f| f.text.contains(window.as_str())) {
                    return true;
                }
            }
        }
        hex_only.contains(hex_of(secret).as_str())
    })
}

/// A secret's bytes in hexadecimal as texts are compared with it folded: lower case,
/// nothing between the pairs.
fn hex_of(secret: &str) -> Zeroizing<String> {
    let mut hex = Zeroizing::new(String::with_capacity(secret.len() * 2));
    for b in secret.bytes() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    hex
}

/// Every run of base64 characters (standard or URL-safe alphabet) in `text` of at
/// least [`PIECE_LEN`], decoded from each of its four alignments (a run may begin
/// before the encoding does), one decoding a line, read as UTF-8 lossily.
fn decode_base64_runs(text: &str) -> Zeroizing<String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let mut out = Zeroizing::new(String::new());
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    for run in text.as_bytes().split(|b| !is_b64(*b)) {
        if run.len() < PIECE_LEN {
            continue;
        }
        let run: Zeroizing<Vec<u8>> = Zeroizing::new(
            run.iter()
                .map(|b| match b {
                    b'-' => b'+',
                    b'_' => b'/',
                    other => *other,
                })
                .collect(),
        );
        for start in 0..4.min(run.len()) {
            let mut part = &run[start..];
            if part.len() % 4 == 1 {
                part = &part[..part.len() - 1];
            }
            if let Ok(bytes) = ENGINE.decode(part) {
                let bytes = Zeroizing::new(bytes);
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
        }
    }
    out
}

/// `text` with `%XX`, `\xNN`, `\uXXXX` and octal `\NNN` escapes decoded (as bytes,
/// read as UTF-8 lossily).
fn decode_escapes(text: &str) -> Zeroizing<String> {
    let bytes = text.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let octal = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(8));
    let byte = |digits: &[Option<u32>], radix: u32| {
        digits
            .iter()
            .try_fold(0u32, |value, d| d.map(|d| value * radix + d))
            .and_then(|value| u8::try_from(value).ok())
    };
    let mut i = 0;
    while i < bytes.len() {
        // HTML and XML entities (`&amp;`, `&#65;`, `&#x41;`), as a web interface or
        // an XML error body writes a secret's special characters.
        if bytes[i] == b'&' {
            if let Some((skip, c)) = entity(&bytes[i..]) {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                i += skip;
                continue;
            }
        }
        let at = |k: usize| bytes.get(i + k);
        let (skip, value) = match (bytes[i], at(1), at(2), at(3)) {
            (b'%', ..) => (3, byte(&[hex(at(1)), hex(at(2))], 16)),
            (b'\\', Some(b'x' | b'X'), ..) => (4, byte(&[hex(at(2)), hex(at(3))], 16)),
            // JSON's `\u00XX` (a secret's ASCII characters escaped one by one).
            (b'\\', Some(b'u'), Some(b'0'), Some(b'0')) => (6, byte(&[hex(at(4)), hex(at(5))], 16)),
            // Octal `\NNN`, as `printf %q`, `od -b` and C strings write a byte.
            (b'\\', ..) => (4, byte(&[octal(at(1)), octal(at(2)), octal(at(3))], 8)),
            _ => (1, None),
        };
        match value {
            Some(value) => {
                out.push(value);
                i += skip;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Zeroizing::new(String::from_utf8_lossy(&out).into_owned())
}

/// The HTML or XML entity at the start of `text` (which begins with `&`): its length
/// with the `;` and the character it stands for.
fn entity(text: &[u8]) -> Option<(usize, char)> {
    let end = text.iter().take(12).position(|b| *b == b';')?;
    let name = std::str::from_utf8(&text[1..end]).ok()?;
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let value = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(value)?
        }
    };
    Some((end + 1, c))
}

/// `text`, or [`WITHHELD_LINE`] if it shows a watched secret ([`watch`]).
pub fn screen(text: &str) -> Cow<'_, str> {
    if shows_watched(text) {
        Cow::Borrowed(WITHHELD_LINE)
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` with each line that shows a watched secret replaced by
/// [`WITHHELD_LINE`]; all of it replaced if the secret only shows across lines.
pub fn screen_lines(text: &str) -> Cow<'_, str> {
    if !shows_watched(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if shows_watched(body) {
            out.push_str(WITHHELD_LINE);
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    if shows_watched(&out) {
        let mut whole = WITHHELD_LINE.to_string();
        if text.ends_with('\n') {
            whole.push('\n');
        }
        return Cow::Owned(whole);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_holding_a_control_character_is_found_in_its_escaped_forms() {
        let secret = "Sekr\tit99";
        for text in [
            format!("waiting for prompt {:?}", format!("Foo {secret} >")),
            "prompt \"Foo Sekr\\nit99 >\"".to_string(),
            "prompt Sekr\\u{9}it99".to_string(),
            format!("plain {secret}"),
        ] {
            assert!(shows(&text, secret), "{text}");
        }
        assert!(shows("Foo Sekr\\tit99", "Sekrit99"));
        assert!(!shows("Foo Sekr\\tat99", secret));
    }

    #[test]
    fn a_secret_is_found_as_it_is() {
        assert_eq!(find("say hunter2 now", "hunter2"), Some(4..11));
        assert!(!shows("say hunter now", "hunter2"));
        assert!(!shows("anything", ""));
    }

    #[test]
    fn a_programs_text_showing_a_secret_encoded_or_in_part_is_caught() {
        let secret = "Zq8$ecret/Pw+15";
        for text in [
            "curl: (22) https://admin:Zq8%24ecret%2FPw%2B15@bmc/redfish failed",
            "dump: \\x5a\\x71\\x38\\x24\\x65\\x63\\x72\\x65\\x74\\x2f\\x50\\x77\\x2b\\x31\\x35",
            "bytes 5a:71:38:24:65:63:72:65:74:2f:50:77:2b:31:35",
            "login failed for password Zq8$ecret/P",
            // curl -v with HTTP Basic: base64 of `admin:` and the secret
            "> Authorization: Basic YWRtaW46WnE4JGVjcmV0L1B3KzE1",
            "token WnE4JGVjcmV0L1B3KzE1 refused",
            "hdr=BasicYWRtaW46WnE4JGVjcmV0L1B3KzE1",
            "{\"password\": \"\\u005a\\u0071\\u0038\\u0024\\u0065\\u0063\\u0072\\u0065\\u0074\\u002f\"}",
            "\\132\\161\\070\\044\\145\\143\\162\\145\\164",
        ] {
            assert!(shows_any_piece(text, [secret]), "{text}");
        }
        assert!(!shows_any_piece("outlet 3 is off; 100% done", [secret]));
        assert!(!shows_any_piece("anything", [""]));
    }

    #[test]
    fn a_programs_text_showing_a_secret_as_html_or_xml_entities_is_caught() {
        // Special characters every few letters: no piece of the secret shows as is.
        let secret = "Se<cr>et&Pw\"42";
        assert!(shows_any_piece(
            "login failed: https://admin:Se&lt;cr&gt;et&amp;Pw&quot;42@pdu/",
            [secret]
        ));
        let secret = "Tr0ub@dor:x/9 Zz&";
        let numeric: String = secret
            .chars()
            .map(|c| format!("&#{};", u32::from(c)))
            .collect();
        assert!(shows_any_piece(
            &format!("<pass>{numeric}</pass>"),
            [secret]
        ));
        let hex: String = secret
            .chars()
            .map(|c| format!("&#x{:X};", u32::from(c)))
            .collect();
        assert!(shows_any_piece(&hex, [secret]));
        assert!(!shows_any_piece(
            "R&amp;D outlet &lt;3&gt; &#;&#xZZ; &",
            [secret]
        ));
    }

    #[test]
    fn a_secret_in_other_case_or_in_hexadecimal_is_screened() {
        assert!(shows("bad value `hunter2x`", "HUNTER2x"));
        let secret = Secret::new("Case-And-Hex-7q".to_string());
        watch(&secret);
        assert!(shows_watched("workarounds: case-and-hex-7q is not known"));
        // "Case-And-Hex-7q" in hex, as a device might echo it, in pairs and in capitals.
        assert!(shows_watched(
            "last received: 43 61 73 65 2D 41 6E 64 2D 48 65 78 2D 37 71"
        ));
        assert!(shows_watched("436173652d416e642d4865782d3771"));
        assert!(!shows_watched("436173652d416e642d48"));
    }

    #[test]
    fn a_secret_broken_by_a_terminal_is_found() {
        assert!(shows("pw: hun\r\nter2\r\n> ", "hunter2"));
        assert!(shows("hunte \rr2", "hunter2"));
        assert!(shows("\u{1b}[1mhun\u{1b}[0mter2", "hunter2"));
        assert!(shows("\u{1b}]0;title\u{7}hunter2", "hunter2"));
        let text = "echo: hun\r\nter2!";
        let range = find(text, "hunter2").unwrap();
        assert_eq!(&text[range], "hun\r\nter2");
    }

    #[test]
    fn a_secret_quoted_by_a_shell_is_found() {
        assert!(shows("+ pw='it'\\''s a pw'", "it's a pw"));
        assert!(shows("+ curl -u \"admin:pa\\$\\$\"", "pa$$"));
    }

    #[test]
    fn a_secret_of_quotes_and_blanks_only_is_found_as_it_is() {
        assert!(shows("x ' ' y", "' '"));
        assert!(!shows("x '' y", "' '"));
    }

    #[test]
    fn the_start_of_a_secret_at_the_end_of_a_text_is_found() {
        assert_eq!(partial_start("login ok\r\nhun\r\n", "hunter2"), Some(10));
        assert_eq!(partial_start("login ok\r\n", "hunter2"), None);
        // The whole secret is not a proper start of itself.
        assert_eq!(partial_start("x hunter2", "hunter2"), None);
        assert_eq!(partial_start("héhé", "héhéa"), Some(0));
    }

    #[test]
    fn the_end_of_a_secret_at_the_start_of_a_text_is_found() {
        assert!(starts_with_end_of("ter2\r\n> ", "hunter2", 3));
        assert!(!starts_with_end_of("r2\r\n> ", "hunter2", 3));
        assert!(!starts_with_end_of("hunter2", "hunter2", 3));
    }

    #[test]
    fn unicode_texts_fold_on_character_boundaries() {
        let text = "é\r\nmot de passe: ü\r\nber";
        let range = find(text, "über").unwrap();
        assert_eq!(&text[range], "ü\r\nber");
        for text in ["ééé", "\u{1b}", "\u{1b}[", "\u{1b}]", "ü"] {
            let _ = find(text, "ü");
            let _ = partial_start(text, "üü");
            let _ = starts_with_end_of(text, "üü", 1);
        }
    }

    #[test]
    fn a_watched_secret_is_screened_line_by_line() {
        watch(&Secret::new("Wq7-screen-test"));
        watch(&Secret::new("ab"));
        assert_eq!(screen("all fine"), "all fine");
        assert_eq!(screen("tried Wq7-screen-test"), WITHHELD_LINE);
        // Too short to screen process-wide.
        assert_eq!(screen("ab cd"), "ab cd");
        assert_eq!(
            screen_lines("one\nsaid 'Wq7-screen-test'\nthree\n"),
            format!("one\n{WITHHELD_LINE}\nthree\n")
        );
        assert_eq!(
            screen_lines("one Wq7-scr\neen-test three\n"),
            format!("{WITHHELD_LINE}\n")
        );
    }
}

//! [`Console`]: one dialogue with a device over any async byte stream. It sends
//! lines and keys, waits for patterns by a deadline, pages through pagers,
//! answers confirmations and learns prompts. Every wait ends at the deadline the
//! caller passes; nothing loops on silence.

use std::time::Duration;

use fencekit_core::{Instant, Secret};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::error::ConsoleError;
use crate::pattern::{describe, last_line, Pattern};
use crate::terminal::{TerminalFilter, SCREEN_BREAK};
use crate::transcript::{Redactor, Transcript, MASK, WITHHELD};

/// What Enter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\r\n`: fence-agents' default `eol` for every console agent.
    CrLf,
    /// `\r`: what a terminal's Enter key sends (the seed's expect scripts).
    Cr,
    /// `\n`.
    Lf,
}

impl LineEnding {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::CrLf => b"\r\n",
            LineEnding::Cr => b"\r",
            LineEnding::Lf => b"\n",
        }
    }
}

/// A key sent on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The console's line ending.
    Enter,
    /// 0x03: backs out of APC menus (the seed sends it five times).
    CtrlC,
    /// 0x1b: "<ESC>- Back" in APC menus.
    Escape,
    /// One printable ASCII character without Enter (menus that act on a key).
    Char(char),
}

/// How a console behaves. The defaults suit APC and Baytech consoles.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The device's name, for messages and the transcript.
    pub device: String,
    pub line_ending: LineEnding,
    /// Most unconsumed text kept; beyond it the oldest text is dropped, so a
    /// device that floods cannot eat memory.
    pub buffer_limit: usize,
    /// How long a prompt must stay the last thing received before it counts.
    pub prompt_settle: Duration,
    /// [`Console::learn_prompt`]: how long a non-prompt-looking last line must
    /// stay unchanged before it is taken as the prompt.
    pub quiet_period: Duration,
    /// [`Console::answer_confirmations`]: most questions answered in one call.
    pub max_confirmations: u32,
    /// Line endings that are prompts of this device although they do not end with
    /// `>` (a menu's `Enter Request :`): [`Console::learn_prompt`] takes them after
    /// `prompt_settle`, not `quiet_period`.
    pub prompt_endings: &'static [&'static str],
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            device: "console".to_string(),
            line_ending: LineEnding::CrLf,
            buffer_limit: 64 * 1024,
            prompt_settle: Duration::from_millis(150),
            quiet_period: Duration::from_secs(2),
            max_confirmations: 3,
            prompt_endings: &[],
        }
    }
}

/// What [`Console::expect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Which of the patterns matched (its position in the slice).
    pub index: usize,
    /// Plain text received before the match. It may hold a secret the device
    /// echoed: pass it through [`Console::redact`] before showing it.
    pub before: String,
    /// The matched text (for a prompt, the prompt line without blanks).
    pub matched: String,
}

impl Match {
    /// The text after the last screen clear in `before`: the final drawing of a
    /// menu that redrew itself.
    pub fn last_screen(&self) -> &str {
        match self.before.rfind(SCREEN_BREAK) {
            Some(i) => &self.before[i + SCREEN_BREAK.len_utf8()..],
            None => &self.before,
        }
    }
}

/// What [`Console::expect_through_pagers`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedMatch {
    /// Which target matched.
    pub index: usize,
    /// All text before the target, every page joined (pager prompts left out).
    pub before: String,
    pub matched: String,
    /// How many pagers were answered with Enter.
    pub pages: u32,
}

enum Found {
    /// A pattern matched: index, byte range.
    Now(usize, usize, usize),
    /// A prompt is at the end but the device has not been silent long enough.
    Settling,
    Nothing,
}

/// A dialogue with one device over a byte stream `S` (an SSH channel adapted to
/// tokio, or `tokio::io::duplex` in tests).
pub struct Console<S> {
    stream: S,
    options: ConsoleOptions,
    filter: TerminalFilter,
    /// Plain text received and not yet consumed by a match.
    buffer: String,
    /// When the last bytes arrived.
    last_data: Instant,
    /// Why the stream ended, once it has.
    ended: Option<String>,
    /// Whether it ended because the operation's deadline passed (the stream's
    /// thread drops input it can no longer write in time): a timeout, not a lost
    /// connection, for whoever weighs the reasons of several attempts.
    out_of_time: bool,
    redactor: Redactor,
    transcript: Transcript,
    chunk: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Console<S> {
    pub fn new(stream: S, options: ConsoleOptions) -> Console<S> {
        Console {
            stream,
            options,
            filter: TerminalFilter::default(),
            buffer: String::new(),
            last_data: Instant::now(),
            ended: None,
            out_of_time: false,
            redactor: Redactor::default(),
            transcript: Transcript::default(),
            chunk: vec![0; 4096],
        }
    }

    pub fn options(&self) -> &ConsoleOptions {
        &self.options
    }

    /// Also takes lines ending with one of `endings` as prompts
    /// ([`ConsoleOptions::prompt_endings`]).
    pub fn also_prompts(&mut self, endings: &'static [&'static str]) {
        self.options.prompt_endings = endings;
    }

    /// Gives the stream back (to close it or hand it on).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Masks `secret` from now on wherever this console shows text, also when a
    /// device echoes it. [`Console::send_secret_line`] does this by itself.
    pub fn add_secret(&mut self, secret: &Secret) {
        self.redactor.add(secret);
    }

    /// `text` with every known secret masked, for messages and logs.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Sends `text` and Enter. Refuses text holding a control character, so an
    /// outlet name from a configuration cannot smuggle in extra menu input.
    pub async fn send_line(&mut self, text: &str, deadline: Instant) -> Result<(), ConsoleError> {
        self.check_sendable(text, || format!("line {:?}", text))?;
        self.transcript.sent(
            &self.options.device,
            &format!("{}<Enter>", self.redactor.redact(text)),
        );
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(self.options.line_ending.as_bytes());
        self.write(&bytes, "sending a line", deadline).await
    }

    /// Sends a secret and Enter; the transcript shows `***`, and the secret is
    /// masked from then on in everything this console shows.
    pub async fn send_secret_line(
        &mut self,
        secret: &Secret,
        deadline: Instant,
    ) -> Result<(), ConsoleError> {
        self.check_sendable(secret.expose(), || "the secret".to_string())?;
        self.redactor.add(secret);
        self.transcript
            .sent(&self.options.device, &format!("{MASK}<Enter>"));
        let mut bytes = Zeroizing::new(Vec::with_capacity(secret.len() + 2));
        bytes.extend_from_slice(secret.expose().as_bytes());
        bytes.extend_from_slice(self.options.line_ending.as_bytes());
        self.write(&bytes, "sending a secret", deadline).await
    }

    /// Sends one key.
    pub async fn send_key(&mut self, key: Key, deadline: Instant) -> Result<(), ConsoleError> {
        let (bytes, shown): (Vec<u8>, String) = match key {
            Key::Enter => (
                self.options.line_ending.as_bytes().to_vec(),
                "<Enter>".into(),
            ),
            Key::CtrlC => (vec![0x03], "<Ctrl-C>".into()),
            Key::Escape => (vec![0x1b], "<ESC>".into()),
            Key::Char(c) if c.is_ascii_graphic() || c == ' ' => (vec![c as u8], c.to_string()),
            Key::Char(c) => {
                return Err(ConsoleError::Unsendable {
                    device: self.options.device.clone(),
                    what: format!("key {c:?}"),
                })
            }
        };
        self.transcript.sent(&self.options.device, &shown);
        self.write(&bytes, "sending a key", deadline).await
    }

    /// Waits for the first of `patterns` to match and consumes the text through
    /// the match. Where several match, the one starting earliest wins; on a tie,
    /// the one listed first. Ends with [`ConsoleError::TimedOut`] at `deadline`
    /// and [`ConsoleError::ConnectionLost`] when the stream ends.
    pub async fn expect(
        &mut self,
        patterns: &[Pattern],
        deadline: Instant,
    ) -> Result<Match, ConsoleError> {
        let started = Instant::now();
        // A pattern learned from the device (a prompt) may be a piece of an echoed
        // secret that no whole-secret mask finds: not named then.
        let withheld = patterns.iter().any(|p| self.redactor.hides(p.text_of()));
        let activity = || {
            if withheld {
                format!("waiting for a prompt learned from the device {WITHHELD}")
            } else {
                format!("waiting for {}", describe(patterns))
            }
        };
        loop {
            let now = Instant::now();
            let quiet = self.ended.is_some()
                || now.saturating_duration_since(self.last_data) >= self.options.prompt_settle;
            let wake = match self.find(patterns, quiet) {
                Found::Now(index, start, end) => {
                    return Ok(self.take(index, start, end, patterns[index].is_prompt()))
                }
                Found::Settling => (self.last_data + self.options.prompt_settle).min(deadline),
                Found::Nothing => deadline,
            };
            if let Some(cause) = &self.ended {
                let cause = cause.clone();
                return Err(self.lost(activity(), cause, started));
            }
            if now >= deadline {
                return Err(self.timed_out(activity(), started));
            }
            self.read_until(wake).await;
        }
    }

    /// Waits for one of `targets`, answering each of `pagers` ("Press <ENTER> to
    /// continue", "--More--") with Enter on the way. Targets win ties with
    /// pagers. Ends at `deadline` like [`Console::expect`]: a pager that stalls
    /// or repeats for ever costs the deadline, never more.
    pub async fn expect_through_pagers(
        &mut self,
        targets: &[Pattern],
        pagers: &[Pattern],
        deadline: Instant,
    ) -> Result<PagedMatch, ConsoleError> {
        let all: Vec<Pattern> = targets.iter().chain(pagers).cloned().collect();
        let mut before = String::new();
        let mut pages = 0u32;
        loop {
            let m = self
                .expect(&all, deadline)
                .await
                .map_err(|e| with_pages(e, pages))?;
            if pages > 0 {
                // What followed the last pager's matched words is the rest of
                // the pager ("...", ".>"), not page text.
                before.push_str(m.before.trim_start_matches(['.', '>', ':', ' ', '\t']));
            } else {
                before.push_str(&m.before);
            }
            if m.index < targets.len() {
                return Ok(PagedMatch {
                    index: m.index,
                    before,
                    matched: m.matched,
                    pages,
                });
            }
            pages = pages.saturating_add(1);
            before.push('\n');
            let pager = m.matched;
            self.send_key(Key::Enter, deadline)
                .await
                .map_err(|e| with_pages(answering(e, &pager), pages))?;
        }
    }

    /// Waits for one of `questions` ("Enter 'YES' to continue", "(Y/N)") and
    /// answers it with `answer` and Enter.
    pub async fn confirm(
        &mut self,
        questions: &[Pattern],
        answer: &str,
        deadline: Instant,
    ) -> Result<Match, ConsoleError> {
        let m = self.expect(questions, deadline).await?;
        self.send_line(answer, deadline).await?;
        Ok(m)
    }

    /// Waits for one of `outcomes`, answering any of `questions` on the way (for
    /// devices where confirmation is a setting, as on Baytech strips). Outcomes
    /// win ties. Asked more than `max_confirmations` times, it gives up with
    /// [`ConsoleError::Unexpected`] rather than answer for ever.
    pub async fn answer_confirmations(
        &mut self,
        questions: &[Pattern],
        answer: &str,
        outcomes: &[Pattern],
        deadline: Instant,
    ) -> Result<Match, ConsoleError> {
        let all: Vec<Pattern> = outcomes.iter().chain(questions).cloned().collect();
        let mut asked = 0u32;
        loop {
            let m = self.expect(&all, deadline).await?;
            if m.index < outcomes.len() {
                return Ok(m);
            }
            asked += 1;
            if asked > self.options.max_confirmations {
                return Err(ConsoleError::Unexpected {
                    device: self.options.device.clone(),
                    what: self.redactor.redact(&format!(
                        "asked {} again after {} answers of {:?}",
                        all[m.index], self.options.max_confirmations, answer
                    )),
                    last_seen: self.last_seen(),
                });
            }
            self.send_line(answer, deadline).await?;
        }
    }

    /// Learns the device's prompt instead of assuming it: reads until the last
    /// line looks like a prompt (ends in `>`, e.g. `RPC-28A>`, `apc>`) and the
    /// device has been silent for `prompt_settle`, or until any non-blank last
    /// line has stood unchanged for `quiet_period` (e.g. "Enter Request :").
    /// Returns that line as `matched` (build [`Pattern::prompt`] from it) and the
    /// banner before it as `before`.
    pub async fn learn_prompt(&mut self, deadline: Instant) -> Result<Match, ConsoleError> {
        let started = Instant::now();
        let activity = "waiting for a prompt to learn".to_string();
        loop {
            let now = Instant::now();
            let silent = now.saturating_duration_since(self.last_data);
            let (start, line) = last_line(&self.buffer);
            let line = line.trim_matches([' ', '\t']);
            let prompt_like = looks_like_prompt(line)
                || self
                    .options
                    .prompt_endings
                    .iter()
                    .any(|e| line.ends_with(e));
            let ended = self.ended.is_some();
            if !line.is_empty()
                && (ended
                    || (prompt_like && silent >= self.options.prompt_settle)
                    || silent >= self.options.quiet_period)
            {
                let lead = self.buffer[start..].len()
                    - self.buffer[start..].trim_start_matches([' ', '\t']).len();
                return Ok(self.take(0, start + lead, self.buffer.len(), true));
            }
            if let Some(cause) = &self.ended {
                let cause = cause.clone();
                return Err(self.lost(activity, cause, started));
            }
            if now >= deadline {
                return Err(self.timed_out(activity, started));
            }
            let wake = if line.is_empty() {
                deadline
            } else if prompt_like {
                (self.last_data + self.options.prompt_settle).min(deadline)
            } else {
                (self.last_data + self.options.quiet_period).min(deadline)
            };
            self.read_until(wake).await;
        }
    }

    /// Reads and returns everything until the device has been silent for
    /// `quiet` (to let a redrawing menu settle before acting), or fails at
    /// `deadline` if it never does. Consumes the buffer.
    pub async fn drain_until_quiet(
        &mut self,
        quiet: Duration,
        deadline: Instant,
    ) -> Result<String, ConsoleError> {
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if self.ended.is_some() || now.saturating_duration_since(self.last_data) >= quiet {
                self.transcript.flush(&self.options.device, &self.redactor);
                return Ok(std::mem::take(&mut self.buffer));
            }
            if now >= deadline {
                return Err(self.timed_out("waiting for the device to fall silent".into(), started));
            }
            self.read_until((self.last_data + quiet).min(deadline))
                .await;
        }
    }

    /// Waits for the device to close the session (after a logout) and returns
    /// what it said last.
    pub async fn expect_eof(&mut self, deadline: Instant) -> Result<String, ConsoleError> {
        let started = Instant::now();
        loop {
            if self.ended.is_some() {
                self.transcript.flush(&self.options.device, &self.redactor);
                return Ok(std::mem::take(&mut self.buffer));
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out("waiting for the session to close".into(), started));
            }
            self.read_until(deadline).await;
        }
    }

    /// Drops unconsumed text (an old screen whose prompt must not satisfy the
    /// next wait) and returns it.
    pub fn discard_pending(&mut self) -> String {
        self.transcript.flush(&self.options.device, &self.redactor);
        std::mem::take(&mut self.buffer)
    }

    /// Reads once, or until `wake`, whichever is first. Records data, end of
    /// stream or a read error in `self`.
    async fn read_until(&mut self, wake: Instant) {
        match tokio::time::timeout_at(wake, self.stream.read(&mut self.chunk)).await {
            Err(_elapsed) => {}
            Ok(Ok(0)) => {
                self.ended = Some("the device closed the session".into());
                self.transcript.flush(&self.options.device, &self.redactor);
            }
            Ok(Ok(n)) => {
                let n = n.min(self.chunk.len());
                let text = self.filter.feed(&self.chunk[..n]);
                self.last_data = Instant::now();
                self.transcript
                    .received(&self.options.device, &text, &self.redactor);
                self.buffer.push_str(&text);
                self.enforce_limit();
            }
            Ok(Err(e)) => {
                self.out_of_time = e.kind() == std::io::ErrorKind::TimedOut;
                self.ended = Some(format!("read failed: {e}"));
                self.transcript.flush(&self.options.device, &self.redactor);
            }
        }
    }

    fn enforce_limit(&mut self) {
        let limit = self.options.buffer_limit.max(1024);
        if self.buffer.len() > limit {
            // Keep the newest three quarters, so that a flood costs one copy per
            // quarter of the limit rather than one per read.
            let mut cut = self.buffer.len() - limit * 3 / 4;
            while !self.buffer.is_char_boundary(cut) {
                cut += 1;
            }
            self.buffer.drain(..cut);
        }
    }

    fn find(&self, patterns: &[Pattern], quiet: bool) -> Found {
        let mut best: Option<(usize, usize, usize)> = None;
        for (index, pattern) in patterns.iter().enumerate() {
            if let Some((start, end)) = pattern.find(&self.buffer) {
                if best.map_or(true, |(_, s, _)| start < s) {
                    best = Some((index, start, end));
                }
            }
        }
        match best {
            Some((index, _, _)) if patterns[index].is_prompt() && !quiet => Found::Settling,
            Some((index, start, end)) => Found::Now(index, start, end),
            None => Found::Nothing,
        }
    }

    fn take(&mut self, index: usize, start: usize, end: usize, trim: bool) -> Match {
        self.transcript.flush(&self.options.device, &self.redactor);
        let matched = &self.buffer[start..end];
        let matched = if trim {
            matched.trim_matches([' ', '\t']).to_string()
        } else {
            matched.to_string()
        };
        let before = self.buffer[..start].to_string();
        self.buffer.drain(..end);
        Match {
            index,
            before,
            matched,
        }
    }

    fn check_sendable(&self, text: &str, what: impl Fn() -> String) -> Result<(), ConsoleError> {
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ConsoleError::Unsendable {
                device: self.options.device.clone(),
                what: what(),
            });
        }
        Ok(())
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        activity: &'static str,
        deadline: Instant,
    ) -> Result<(), ConsoleError> {
        let started = Instant::now();
        if started >= deadline {
            return Err(self.timed_out(activity.to_string(), started));
        }
        let stream = &mut self.stream;
        let written = tokio::time::timeout_at(deadline, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => match e.kind() {
                std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::WriteZero => {
                    self.ended = Some(format!("write failed: {e}"));
                    Err(self.lost(activity.to_string(), format!("write failed: {e}"), started))
                }
                _ => Err(ConsoleError::Io {
                    device: self.options.device.clone(),
                    operation: activity,
                    cause: e.to_string(),
                }),
            },
            Err(_) => Err(self.timed_out(activity.to_string(), started)),
        }
    }

    fn last_seen(&self) -> String {
        self.redactor.for_message(&self.buffer, 160)
    }

    fn lost(&mut self, activity: String, cause: String, started: Instant) -> ConsoleError {
        if self.out_of_time {
            return self.timed_out(activity, started);
        }
        self.transcript.flush(&self.options.device, &self.redactor);
        // The activity names patterns learned from the device (a prompt), and the
        // cause may quote it: both masked like the text received.
        ConsoleError::ConnectionLost {
            device: self.options.device.clone(),
            activity: self.redactor.redact(&activity),
            cause: self.redactor.redact(&cause),
            last_seen: self.last_seen(),
        }
    }

    fn timed_out(&mut self, activity: String, started: Instant) -> ConsoleError {
        self.transcript.flush(&self.options.device, &self.redactor);
        ConsoleError::TimedOut {
            device: self.options.device.clone(),
            activity: self.redactor.redact(&activity),
            waited: Instant::now().saturating_duration_since(started),
            last_seen: self.last_seen(),
        }
    }
}

/// A prompt-looking line: short, ends in `>`, and not a pager's "<ENTER>".
fn looks_like_prompt(line: &str) -> bool {
    line.ends_with('>') && !line.contains('<') && line.chars().count() <= 48
}

/// A timeout while answering a pager names the pager, which is what kept the
/// console from its prompt.
fn answering(e: ConsoleError, pager: &str) -> ConsoleError {
    match e {
        ConsoleError::TimedOut {
            device,
            activity,
            waited,
            last_seen,
        } => ConsoleError::TimedOut {
            device,
            activity: format!("{activity} to answer the pager {:?}", pager.trim()),
            waited,
            last_seen,
        },
        other => other,
    }
}

fn with_pages(e: ConsoleError, pages: u32) -> ConsoleError {
    match e {
        ConsoleError::TimedOut {
            device,
            activity,
            waited,
            last_seen,
        } if pages > 0 => ConsoleError::TimedOut {
            device,
            activity: format!("{activity} (after answering {pages} pagers)"),
            waited,
            last_seen,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{duplex, DuplexStream};

    fn console(stream: DuplexStream) -> Console<DuplexStream> {
        Console::new(
            stream,
            ConsoleOptions {
                device: "pdu-test".into(),
                ..Default::default()
            },
        )
    }

    fn in_secs(s: u64) -> Instant {
        Instant::now() + Duration::from_secs(s)
    }

    /// Reads what the console sent up to and including its line ending.
    async fn read_line(device: &mut DuplexStream) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if device.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            line.push(byte[0]);
        }
        String::from_utf8(line).unwrap()
    }

    async fn pause(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn expect_returns_the_match_and_the_text_before_it() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device
            .write_all(b"\x1b[1mUser Name :\x1b[0m ")
            .await
            .unwrap();
        let m = c
            .expect(
                &[Pattern::text("assword"), Pattern::text("User Name")],
                in_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(m.index, 1);
        assert_eq!(m.matched, "User Name");
        assert_eq!(m.before, "");
        // The rest stays for the next wait.
        let m = c.expect(&[Pattern::text(":")], in_secs(5)).await.unwrap();
        assert_eq!(m.before, " ");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pattern_split_across_reads_is_found() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device.write_all(b"menu\r\nPress <EN").await.unwrap();
            pause(30).await;
            device.write_all(b"TER> to con").await.unwrap();
            pause(30).await;
            device.write_all(b"tinue...").await.unwrap();
            device
        });
        let m = c
            .expect(&[Pattern::text("Press <ENTER> to continue")], in_secs(5))
            .await
            .unwrap();
        assert_eq!(m.before, "menu\n");
        drop(dev.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_earliest_match_wins_and_ties_go_to_the_first_pattern() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device.write_all(b"abc (Y/N) def").await.unwrap();
        let m = c
            .expect(&[Pattern::text("def"), Pattern::text("(Y/N)")], in_secs(5))
            .await
            .unwrap();
        assert_eq!(m.index, 1);
        let m = c
            .expect(&[Pattern::text("def"), Pattern::text("de")], in_secs(5))
            .await
            .unwrap();
        assert_eq!(m.index, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_counts_only_once_the_device_falls_silent() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device.write_all(b"Outlet list\r\n> ").await.unwrap();
            // Shorter than prompt_settle: the first ">" was not the end.
            pause(20).await;
            device.write_all(b"\r\nmore outlets\r\n> ").await.unwrap();
            device
        });
        let m = c.expect(&[Pattern::prompt(">")], in_secs(5)).await.unwrap();
        assert!(m.before.contains("more outlets"), "{:?}", m.before);
        assert_eq!(m.matched, ">");
        drop(dev.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn pagers_are_answered_until_the_target_appears() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            for page in 1..=3 {
                let text = format!("   {page}- Outlet {page}   ON\r\nPress <ENTER> to continue...");
                device.write_all(text.as_bytes()).await.unwrap();
                assert_eq!(read_line(&mut device).await, "\r\n");
            }
            device
                .write_all(b"\r\n   4- Outlet 4   OFF\r\n> ")
                .await
                .unwrap();
            device
        });
        let m = c
            .expect_through_pagers(
                &[Pattern::prompt(">")],
                &crate::common_pagers(),
                in_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(m.pages, 3);
        let outlets = crate::parse::apc_menu::parse_outlet_menu(&m.before).unwrap();
        assert_eq!(outlets.len(), 4);
        drop(dev.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_pager_ends_at_the_deadline_with_timed_out() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device
                .write_all(b"page 1\r\nPress <ENTER> to continue...")
                .await
                .unwrap();
            read_line(&mut device).await;
            device.write_all(b"\r\npage 2, then silence").await.unwrap();
            // Keep the session open and say nothing more.
            pause(3_600_000).await;
            device
        });
        let err = c
            .expect_through_pagers(
                &[Pattern::prompt(">")],
                &crate::common_pagers(),
                in_secs(10),
            )
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        let text = err.to_string();
        assert!(text.contains("timed out"), "{text}");
        assert!(text.contains("page 2, then silence"), "{text}");
        assert!(text.contains("prompt \">\""), "{text}");
        assert!(text.contains("after answering 1 pagers"), "{text}");
        dev.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_pager_that_never_ends_is_cut_off_by_the_deadline() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            loop {
                if device
                    .write_all(b"more\r\nPress <ENTER> to continue")
                    .await
                    .is_err()
                {
                    break;
                }
                if read_line(&mut device).await.is_empty() {
                    break;
                }
                pause(100).await;
            }
        });
        let err = c
            .expect_through_pagers(&[Pattern::prompt(">")], &crate::common_pagers(), in_secs(5))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        drop(c);
        dev.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_closed_mid_dialogue_is_connection_lost() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device
            .write_all(b"Outlet 1 ON\r\npartial scr")
            .await
            .unwrap();
        drop(device);
        let err = c
            .expect(&[Pattern::prompt(">")], in_secs(30))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConsoleError::ConnectionLost { .. }), "{text}");
        assert!(text.starts_with("Connection lost"), "{text}");
        assert!(text.contains("partial scr"), "{text}");
        // And it stays lost.
        let again = c
            .expect(&[Pattern::text("x")], in_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(again, ConsoleError::ConnectionLost { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn text_already_received_still_matches_after_the_session_closed() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device.write_all(b"E000: Success\r\napc>").await.unwrap();
        drop(device);
        let m = c
            .expect(&[Pattern::prompt("apc>")], in_secs(5))
            .await
            .unwrap();
        assert_eq!(m.before, "E000: Success\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_confirmation_is_answered() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device
                .write_all(b"Enter 'YES' to continue or <ENTER> to cancel : ")
                .await
                .unwrap();
            let answer = read_line(&mut device).await;
            device
                .write_all(b"\r\nCommand successfully issued.\r\n> ")
                .await
                .unwrap();
            (answer, device)
        });
        c.confirm(
            &[Pattern::text("Enter 'YES' to continue")],
            "YES",
            in_secs(5),
        )
        .await
        .unwrap();
        let m = c.expect(&[Pattern::prompt(">")], in_secs(5)).await.unwrap();
        assert!(m.before.contains("successfully issued"));
        let (answer, _device) = dev.await.unwrap();
        assert_eq!(answer, "YES\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn an_optional_confirmation_is_answered_when_asked() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device
                .write_all(b"Turn Off Outlet 3 (Y/N)? ")
                .await
                .unwrap();
            let answer = read_line(&mut device).await;
            device.write_all(b"\r\nRPC-28>").await.unwrap();
            (answer, device)
        });
        let m = c
            .answer_confirmations(
                &[Pattern::text("(Y/N)")],
                "Y",
                &[Pattern::prompt_ending(">")],
                in_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(m.matched, "RPC-28>");
        let (answer, _device) = dev.await.unwrap();
        assert_eq!(answer, "Y\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_confirmation_asked_again_and_again_is_refused() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            loop {
                if device.write_all(b"Sure (Y/N)? ").await.is_err() {
                    break;
                }
                if read_line(&mut device).await.is_empty() {
                    break;
                }
            }
        });
        let err = c
            .answer_confirmations(
                &[Pattern::text("(Y/N)")],
                "Y",
                &[Pattern::prompt(">")],
                in_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ConsoleError::Unexpected { .. }), "{err}");
        drop(c);
        dev.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_is_learned_not_assumed() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device
            .write_all(b"RPC-28 Series\r\n(C) 2000 by BayTech\r\nF3.01\r\n\r\nRPC-28A>")
            .await
            .unwrap();
        let m = c.learn_prompt(in_secs(10)).await.unwrap();
        assert_eq!(m.matched, "RPC-28A>");
        assert!(m.before.contains("F3.01"));
        // What was learned is then waited for.
        device
            .write_all(b"\r\nInput error\r\n\r\nRPC-28A>")
            .await
            .unwrap();
        let m = c
            .expect(&[Pattern::prompt(&m.matched)], in_secs(10))
            .await
            .unwrap();
        assert!(m.before.contains("Input error"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_without_angle_bracket_is_learned_once_the_device_goes_quiet() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device
            .write_all(b"Baytech DS-series\r\nEnter Request :")
            .await
            .unwrap();
        let m = c.learn_prompt(in_secs(10)).await.unwrap();
        assert_eq!(m.matched, "Enter Request :");
    }

    #[tokio::test(start_paused = true)]
    async fn learning_a_prompt_from_silence_times_out() {
        let (ours, _device) = duplex(4096);
        let mut c = console(ours);
        let err = c.learn_prompt(in_secs(3)).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(err.to_string().contains("last received: nothing"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_send_their_bytes() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        c.send_key(Key::CtrlC, in_secs(1)).await.unwrap();
        c.send_key(Key::Escape, in_secs(1)).await.unwrap();
        c.send_key(Key::Char('4'), in_secs(1)).await.unwrap();
        c.send_key(Key::Enter, in_secs(1)).await.unwrap();
        let mut got = [0u8; 5];
        device.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x03\x1b4\r\n");
        assert!(c.send_key(Key::Char('\r'), in_secs(1)).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn lines_with_control_characters_are_refused_and_not_sent() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let err = c.send_line("3\r4", in_secs(1)).await.unwrap_err();
        assert!(matches!(err, ConsoleError::Unsendable { .. }), "{err}");
        let err = c
            .send_secret_line(&Secret::new("a\nb"), in_secs(1))
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("a\nb"));
        c.send_line("olStatus all", in_secs(1)).await.unwrap();
        assert_eq!(read_line(&mut device).await, "olStatus all\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_device_never_reads_ends_at_the_deadline() {
        let (ours, _device) = duplex(16);
        let mut c = console(ours);
        let err = c
            .send_line(&"x".repeat(1000), in_secs(2))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_capped_and_the_prompt_still_found() {
        let (ours, mut device) = duplex(64 * 1024);
        let mut c = Console::new(
            ours,
            ConsoleOptions {
                buffer_limit: 4096,
                ..Default::default()
            },
        );
        let dev = tokio::spawn(async move {
            let junk = vec![b'x'; 8192];
            for _ in 0..128 {
                device.write_all(&junk).await.unwrap();
            }
            device.write_all(b"\r\napc>").await.unwrap();
            device
        });
        let m = c
            .expect(&[Pattern::prompt("apc>")], in_secs(60))
            .await
            .unwrap();
        assert!(m.before.len() <= 4096, "{}", m.before.len());
        drop(dev.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn logout_waits_for_the_session_to_close() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            assert_eq!(read_line(&mut device).await, "4\r\n");
            device.write_all(b"\r\nBye.\r\n").await.unwrap();
        });
        c.send_line("4", in_secs(1)).await.unwrap();
        let last = c.expect_eof(in_secs(5)).await.unwrap();
        assert!(last.contains("Bye."));
        dev.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_menu_that_redraws_settles_and_its_last_screen_is_kept() {
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device
                .write_all(b"\x1b[2J\x1b[H   1- a   ON\r\n> ")
                .await
                .unwrap();
            pause(50).await;
            device
                .write_all(b"\x1b[2J\x1b[H   1- a   OFF\r\n> ")
                .await
                .unwrap();
            device
        });
        let stale = c
            .drain_until_quiet(Duration::from_millis(500), in_secs(5))
            .await
            .unwrap();
        assert!(stale.contains("OFF"));
        drop(dev.await.unwrap());
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        device
            .write_all(b"\x1b[2J\x1b[H   1- a   ON\r\n\x1b[2J\x1b[H   1- a   OFF\r\n> ")
            .await
            .unwrap();
        let m = c.expect(&[Pattern::prompt(">")], in_secs(5)).await.unwrap();
        let outlets = crate::parse::apc_menu::parse_outlet_menu(m.last_screen()).unwrap();
        assert_eq!(outlets[0].state, fencekit_core::PowerState::Off);
        assert!(crate::parse::apc_menu::parse_outlet_menu(&m.before).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_learned_prompt_holding_a_secret_is_masked_in_errors() {
        let (ours, _device) = duplex(4096);
        let mut c = console(ours);
        c.add_secret(&Secret::new("uniq-Zq81x"));
        // A prompt learned from a device that prints the password in it.
        let err = c
            .expect(&[Pattern::prompt("uniq-Zq81x>")], in_secs(2))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(err.is_timeout(), "{text}");
        assert!(!text.contains("Zq81x") && text.contains(WITHHELD), "{text}");
        drop(_device);
        let err = c
            .expect(&[Pattern::prompt("uniq-Zq81x>")], in_secs(2))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConsoleError::ConnectionLost { .. }), "{text}");
        assert!(!text.contains("Zq81x"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_learned_from_a_wrapped_echo_of_the_password_is_not_named() {
        let (ours, _device) = duplex(4096);
        let mut c = console(ours);
        c.add_secret(&Secret::new("Sekrit99q"));
        // The echo broke after `Sekr`: its tail became the last line.
        for prompt in ["it99q >", "Foo Sekr"] {
            let err = c
                .expect(&[Pattern::prompt(prompt)], in_secs(2))
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(err.is_timeout(), "{text}");
            assert!(
                !text.contains("it99q") && !text.contains("Sekr") && text.contains(WITHHELD),
                "{text}"
            );
        }
        // A prompt sharing two characters with the secret's end is named.
        let err = c
            .expect(&[Pattern::prompt("9q>")], in_secs(2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("9q>"), "{err}");
    }

    /// A device that cuts the echo of the password to its field's length and
    /// says more on the same line, then closes: neither the error quoting what it
    /// said last nor the transcript shows the piece.
    #[tokio::test(start_paused = true)]
    async fn a_password_echo_cut_to_a_field_and_followed_by_text_is_never_shown() {
        let (captured, _guard) = Captured::trace();

        let secret = Secret::new("ADl64uOFLA5tL4oHx2jbkKa9GCPXuX00tb7HPYXK");
        for close in [true, false] {
            let (ours, mut device) = duplex(4096);
            let mut c = console(ours);
            let dev = tokio::spawn(async move {
                device.write_all(b"Password  : ").await.unwrap();
                let _ = read_line(&mut device).await;
                device
                    .write_all(b"ADl64uOFLA5tL4oHx2jbkKa9  Invalid password.\r\n\r\n")
                    .await
                    .unwrap();
                if !close {
                    pause(3_600_000).await;
                }
            });
            c.expect(&[Pattern::text("Password  :")], in_secs(5))
                .await
                .unwrap();
            c.send_secret_line(&secret, in_secs(5)).await.unwrap();
            let err = c
                .expect(&[Pattern::prompt("never printed>")], in_secs(5))
                .await
                .unwrap_err();
            dev.abort();
            let text = err.to_string();
            assert_eq!(err.is_timeout(), !close, "{text}");
            assert!(!text.contains("OFLA5") && text.contains(WITHHELD), "{text}");
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("Password  :"), "transcript missing: {log}");
        assert!(!log.contains("OFLA5"), "{log}");
    }

    /// A `tracing` writer that keeps everything in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    thread_local! {
        static CAPTURING: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
    }

    /// Ends the capture of its thread when dropped.
    struct CaptureGuard;

    impl Drop for CaptureGuard {
        fn drop(&mut self) {
            CAPTURING.with(|c| c.borrow_mut().take());
        }
    }

    impl Captured {
        /// Everything logged at trace level on this thread from now on, while the
        /// guard lives.
        ///
        /// One global subscriber, set once, writes to the capture of the thread
        /// that logs. A subscriber per test (`set_default`) is not used: each one
        /// set while another test thread registers a callsite can leave that
        /// callsite cached as "never" and its events lost.
        fn trace() -> (Captured, CaptureGuard) {
            static GLOBAL: std::sync::Once = std::sync::Once::new();
            GLOBAL.call_once(|| {
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::TRACE)
                    .with_writer(ThreadWriter)
                    .with_ansi(false)
                    .finish();
                let _ = tracing::subscriber::set_global_default(subscriber);
                tracing::callsite::rebuild_interest_cache();
            });
            let captured = Captured::default();
            CAPTURING.with(|c| *c.borrow_mut() = Some(captured.clone()));
            (captured, CaptureGuard)
        }
    }

    /// Writes to the capture of the current thread, or nowhere.
    struct ThreadWriter;

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadWriter {
        type Writer = Box<dyn std::io::Write>;
        fn make_writer(&'a self) -> Self::Writer {
            match CAPTURING.with(|c| c.borrow().clone()) {
                Some(captured) => Box::new(captured),
                None => Box::new(std::io::sink()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn secrets_never_reach_the_transcript_or_errors_even_when_echoed() {
        let (captured, _guard) = Captured::trace();

        let secret = Secret::new("hunter2");
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device.write_all(b"Password: ").await.unwrap();
            let line = read_line(&mut device).await;
            // A careless device echoes the password, split over two reads.
            device.write_all(b"hun").await.unwrap();
            pause(30).await;
            device
                .write_all(b"ter2\r\nWelcome hunter2\r\nhunt")
                .await
                .unwrap();
            pause(3_600_000).await;
            (line, device)
        });
        c.expect(&[Pattern::text("Password:")], in_secs(5))
            .await
            .unwrap();
        c.send_secret_line(&secret, in_secs(5)).await.unwrap();
        let err = c
            .expect(&[Pattern::text("never printed")], in_secs(5))
            .await
            .unwrap_err();
        dev.abort();

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("Password:"), "transcript missing: {log}");
        assert!(log.contains(WITHHELD), "{log}");
        assert!(
            !log.contains("Welcome"),
            "the line holding the secret is withheld whole: {log}"
        );
        for leak in ["hunter2", "ter2", "\"hun\"", "hunt"] {
            assert!(!log.contains(leak), "{leak} leaked: {log}");
        }
        let text = err.to_string();
        assert!(text.contains("timed out"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("hunt"),
            "{text}"
        );
        assert!(text.contains(WITHHELD), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_echoed_across_a_line_break_never_shows_in_pieces() {
        let (captured, _guard) = Captured::trace();

        let secret = Secret::new("Kx93-longpass");
        let (ours, mut device) = duplex(4096);
        let mut c = console(ours);
        let dev = tokio::spawn(async move {
            device.write_all(b"Password: ").await.unwrap();
            let line = read_line(&mut device).await;
            // A terminal wrapping the echo at its width, then colouring a
            // second echo: no line holds the whole secret.
            device.write_all(b"Kx93-lo\r\n").await.unwrap();
            pause(30).await;
            device
                .write_all(b"ngpass\r\nok\r\n\x1b[1mKx93\x1b[0m-longpass\r\nsaid Kx9")
                .await
                .unwrap();
            pause(30).await;
            device.write_all(b"3-\r\nlongpass\r\n").await.unwrap();
            pause(3_600_000).await;
            (line, device)
        });
        c.expect(&[Pattern::text("Password:")], in_secs(5))
            .await
            .unwrap();
        c.send_secret_line(&secret, in_secs(5)).await.unwrap();
        let err = c
            .expect(&[Pattern::text("never printed")], in_secs(5))
            .await
            .unwrap_err();
        dev.abort();

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("ok"), "transcript missing: {log}");
        for leak in ["Kx93", "ngpass", "longpass", "-lo", "Kx9"] {
            assert!(!log.contains(leak), "{leak} leaked: {log}");
        }
        let text = err.to_string();
        for leak in ["Kx9", "ngpass", "longpass"] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
    }
}

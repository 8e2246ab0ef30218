//! Telnet, for old consoles that speak nothing else, and only when asked for
//! (`telnet=1`): the login and password cross the network in clear text.
//!
//! The client is as small as a console dialogue needs. It refuses every option the
//! server asks us to enable (`DO x` → `WONT x`), accepts the server echoing and
//! suppressing go-ahead (`WILL ECHO`, `WILL SUPPRESS-GO-AHEAD` → `DO`), refuses the
//! rest, and answers each option once, so two peers can never loop. Subnegotiations
//! and other commands are dropped; `IAC IAC` is a data byte 255, and so is a 255 we
//! send (doubled). A carriage return we send alone goes out as `CR NUL`, as the
//! network virtual terminal wants. The login itself is the console dialogue's
//! ([`crate::target`]): a telnet server asks for it as text.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use fencekit_core::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ssh::SshError;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;
const SUPPRESS_GO_AHEAD: u8 = 3;

/// Where the parser is in the byte stream from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    /// After a carriage return: a NUL that follows is dropped.
    Cr,
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`: the option byte.
    Option(u8),
    /// Inside `IAC SB ... IAC SE`.
    Sub,
    SubIac,
}

/// The telnet side of a byte stream: data out of what the server sent, and the
/// answers to its option requests.
#[derive(Debug, Default)]
pub(crate) struct Codec {
    state: State,
    answered: BTreeSet<(u8, u8)>,
}

impl Codec {
    /// Feeds bytes from the server; appends the data to `data` and our answers to
    /// `replies`.
    pub(crate) fn receive(&mut self, input: &[u8], data: &mut Vec<u8>, replies: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data | State::Cr, IAC) => State::Iac,
                (State::Cr, 0) => State::Data,
                (State::Data | State::Cr, b'\r') => {
                    data.push(b);
                    State::Cr
                }
                (State::Data | State::Cr, b) => {
                    data.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    data.push(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Option(b),
                (State::Iac, SB) => State::Sub,
                // NOP, GA, AYT and the like carry nothing for a dialogue.
                (State::Iac, _) => State::Data,
                (State::Option(command), option) => {
                    self.answer(command, option, replies);
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
    }

    fn answer(&mut self, command: u8, option: u8, replies: &mut Vec<u8>) {
        let reply = match (command, option) {
            (WILL, ECHO | SUPPRESS_GO_AHEAD) => DO,
            (WILL, _) => DONT,
            (DO, _) => WONT,
            // A peer turning an option off needs no answer from one that never
            // turned anything on.
            _ => return,
        };
        if self.answered.insert((command, option)) {
            replies.extend_from_slice(&[IAC, reply, option]);
        }
    }

    /// What goes on the wire for `data`: 255 doubled, a lone carriage return
    /// followed by NUL.
    pub(crate) fn send(data: &[u8], out: &mut Vec<u8>) {
        for (i, &b) in data.iter().enumerate() {
            match b {
                IAC => out.extend_from_slice(&[IAC, IAC]),
                b'\r' if data.get(i + 1) != Some(&b'\n') => out.extend_from_slice(b"\r\0"),
                b => out.push(b),
            }
        }
    }
}

/// A telnet session as a tokio stream of the data alone.
#[derive(Debug)]
pub struct TelnetStream {
    tcp: TcpStream,
    codec: Codec,
    /// Data received and not yet read.
    data: Vec<u8>,
    /// Bytes for the wire not yet written: answers and data.
    out: Vec<u8>,
}

impl TelnetStream {
    fn new(tcp: TcpStream) -> TelnetStream {
        TelnetStream {
            tcp,
            codec: Codec::default(),
            data: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Writes what is waiting for the wire, as far as the socket takes it now.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.tcp).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TelnetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Answers go out while we wait for data: a server may wait for them.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            if !this.data.is_empty() {
                let n = this.data.len().min(buf.remaining());
                buf.put_slice(&this.data[..n]);
                this.data.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut raw = [0u8; 4096];
            let mut raw_buf = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.tcp).poll_read(cx, &mut raw_buf) {
                Poll::Ready(Ok(())) => {
                    let got = raw_buf.filled();
                    if got.is_empty() {
                        // The end of the stream.
                        return Poll::Ready(Ok(()));
                    }
                    let mut replies = Vec::new();
                    this.codec.receive(got, &mut this.data, &mut replies);
                    // After what is already on its way: a reply put before it could
                    // split a half-written `IAC IAC` or `CR NUL`.
                    this.out.extend_from_slice(&replies);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for TelnetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Hold at most one write's worth: a peer that reads nothing stops us here.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        if !this.out.is_empty() {
            return Poll::Pending;
        }
        Codec::send(buf, &mut this.out);
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_shutdown(cx),
            other => other,
        }
    }
}

/// Connects to the first of `addrs` that answers, by `deadline`.
pub(crate) async fn connect(
    device: &str,
    endpoint: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(TelnetStream, SocketAddr), SshError> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok((TelnetStream::new(tcp), *addr));
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {
                return Err(SshError::TimedOut {
                    device: device.to_string(),
                    activity: format!("connecting to {endpoint} (telnet)"),
                })
            }
        }
    }
    Err(SshError::Connect {
        device: device.to_string(),
        endpoint: endpoint.to_string(),
        cause: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(codec: &mut Codec, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        codec.receive(input, &mut data, &mut replies);
        (data, replies)
    }

    #[test]
    fn options_are_answered_once_and_never_enabled_on_our_side() {
        let mut codec = Codec::default();
        let (data, replies) = receive(
            &mut codec,
            &[
                IAC,
                DO,
                24,
                IAC,
                WILL,
                ECHO,
                IAC,
                WILL,
                SUPPRESS_GO_AHEAD,
                IAC,
                WILL,
                5,
                b'U',
            ],
        );
        assert_eq!(data, b"U");
        assert_eq!(
            replies,
            [
                IAC,
                WONT,
                24,
                IAC,
                DO,
                ECHO,
                IAC,
                DO,
                SUPPRESS_GO_AHEAD,
                IAC,
                DONT,
                5
            ]
        );
        // Asked again: no second answer, so two peers cannot loop.
        let (_, replies) = receive(&mut codec, &[IAC, DO, 24, IAC, DONT, 1, IAC, WONT, 1]);
        assert!(replies.is_empty());
    }

    #[test]
    fn subnegotiations_and_commands_carry_no_data_and_iac_iac_is_255() {
        let mut codec = Codec::default();
        let (data, _) = receive(
            &mut codec,
            &[
                b'a', IAC, SB, 24, 1, IAC, IAC, 7, IAC, SE, b'b', IAC, 241, IAC, IAC, b'\r', 0,
                b'c', b'\r', b'\n',
            ],
        );
        assert_eq!(data, [b'a', b'b', 255, b'\r', b'c', b'\r', b'\n']);
    }

    #[test]
    fn a_sequence_split_across_reads_is_parsed_whole() {
        let mut codec = Codec::default();
        let all = [IAC, DO, 31, b'x', IAC, SB, 1, 2, IAC, SE, b'y'];
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        for b in all {
            codec.receive(&[b], &mut data, &mut replies);
        }
        assert_eq!(data, b"xy");
        assert_eq!(replies, [IAC, WONT, 31]);
    }

    #[test]
    fn what_we_send_doubles_255_and_pads_a_lone_carriage_return() {
        let mut out = Vec::new();
        Codec::send(b"a\xffb\rc\r\n\r", &mut out);
        assert_eq!(out, b"a\xff\xffb\r\0c\r\n\r\0");
    }

    #[tokio::test]
    async fn a_stream_answers_options_while_it_reads_and_sends_escaped_data() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(&[IAC, DO, 24, b'h', b'i']).await.unwrap();
            let mut got = [0u8; 3];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [IAC, WONT, 24]);
            let mut line = [0u8; 4];
            peer.read_exact(&mut line).await.unwrap();
            line
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let (mut stream, _) = connect("dev", "here", &[addr], deadline).await.unwrap();
        let mut hi = [0u8; 2];
        stream.read_exact(&mut hi).await.unwrap();
        assert_eq!(&hi, b"hi");
        stream.write_all(b"\xff\r").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(server.await.unwrap(), [IAC, IAC, b'\r', 0]);
    }
}

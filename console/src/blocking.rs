//! [`ThreadStream`]: a blocking `Read + Write` (an `ssh2::Channel`) driven on a
//! thread of its own and presented as a tokio stream, so that [`crate::Console`]
//! can run a dialogue over it.
//!
//! One thread does both reading and writing. That is deliberate: libssh2 (and so
//! `ssh2`) serialises every call on a session behind one lock, so a reader thread
//! blocked in `read` would starve a separate writer thread. The thread therefore
//! needs reads that return now and then: give the session a timeout
//! (`Session::set_timeout(100)`, reads then fail with `TimedOut`) or make it
//! non-blocking (reads fail with `WouldBlock`; the thread then naps `idle`).
//! Between reads it writes whatever the console queued.
//!
//! Deadlines stay with the console: its waits end on time whatever the thread
//! does. Dropping the stream stops the thread at its next read timeout.
//!
//! What the console queued is written by the thread later, between reads: a
//! stream made with [`ThreadStream::spawn_until`] never starts writing after the
//! operation's deadline. Input queued in time but not yet written then (the thread
//! was in a long read, or the device's window was full) is dropped with all that
//! follows, and the session ends: a switch command typed after the deadline, when
//! the fence has already been reported failed, is what must never happen.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// Chunks read ahead before the thread waits for the console to catch up.
const READ_AHEAD: usize = 64;
/// Without a deadline, the longest one queued chunk may wait for the peer.
const WRITE_BUDGET: Duration = Duration::from_secs(10);

/// The async side of a blocking stream run on its own thread.
pub struct ThreadStream {
    incoming: mpsc::Receiver<io::Result<Vec<u8>>>,
    leftover: Vec<u8>,
    /// What the console wrote, for the thread: wiped once written, since it may
    /// be a password ([`crate::Console::send_secret_line`]).
    outgoing: Option<std_mpsc::Sender<Zeroizing<Vec<u8>>>>,
}

impl ThreadStream {
    /// Moves `io` onto a new thread named `name`. `io`'s reads must return from
    /// time to time (a read timeout or non-blocking mode, see the module notes);
    /// after a `WouldBlock` the thread sleeps `idle` before reading again.
    pub fn spawn<T>(io: T, name: &str, idle: Duration) -> io::Result<ThreadStream>
    where
        T: Read + Write + Send + 'static,
    {
        ThreadStream::spawn_until(io, name, idle, None)
    }

    /// [`ThreadStream::spawn`] for a session that ends by `not_after`: no write to
    /// `io` starts at or after it (see the module notes). `io`'s writes must return
    /// now and then too (`TimedOut` or `WouldBlock` when the peer is not reading),
    /// so that a write waiting for the peer stops at the deadline.
    pub fn spawn_until<T>(
        io: T,
        name: &str,
        idle: Duration,
        not_after: Option<std::time::Instant>,
    ) -> io::Result<ThreadStream>
    where
        T: Read + Write + Send + 'static,
    {
        let (in_tx, incoming) = mpsc::channel(READ_AHEAD);
        let (outgoing, out_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || pump(io, in_tx, out_rx, idle, not_after))?;
        Ok(ThreadStream {
            incoming,
            leftover: Vec::new(),
            outgoing: Some(outgoing),
        })
    }
}

fn pump<T: Read + Write>(
    mut io: T,
    incoming: mpsc::Sender<io::Result<Vec<u8>>>,
    outgoing: std_mpsc::Receiver<Zeroizing<Vec<u8>>>,
    idle: Duration,
    not_after: Option<std::time::Instant>,
) {
    let mut buf = vec![0u8; 4096];
    let mut writing = true;
    loop {
        while writing {
            match outgoing.try_recv() {
                Ok(bytes) => {
                    if let Err(e) = write_by(&mut io, &bytes, not_after, idle) {
                        let _ = incoming.blocking_send(Err(e));
                        return;
                    }
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                // The console shut its writing half: keep reading.
                Err(std_mpsc::TryRecvError::Disconnected) => writing = false,
            }
        }
        if incoming.is_closed() {
            return;
        }
        match io.read(&mut buf) {
            Ok(0) => return, // end of stream: dropping `incoming` tells the console
            Ok(n) => {
                if incoming.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(idle),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                let _ = incoming.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// Writes all of `bytes`, starting no write at or after `not_after` (or after
/// [`WRITE_BUDGET`] without one). A write that returns `TimedOut`/`WouldBlock`
/// (the peer's window is full) is tried again until then.
fn write_by<T: Write>(
    io: &mut T,
    mut bytes: &[u8],
    not_after: Option<std::time::Instant>,
    idle: Duration,
) -> io::Result<()> {
    let end = not_after.unwrap_or_else(|| std::time::Instant::now() + WRITE_BUDGET);
    while !bytes.is_empty() {
        if std::time::Instant::now() >= end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline passed before the console's input was written; \
                 it was dropped and the session closed",
            ));
        }
        match io.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(idle),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    io.flush()
}

impl AsyncRead for ThreadStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.leftover.is_empty() {
            match self.incoming.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(bytes))) => self.leftover = bytes,
            }
        }
        let n = self.leftover.len().min(out.remaining());
        out.put_slice(&self.leftover[..n]);
        self.leftover.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ThreadStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let sent = match &self.outgoing {
            Some(tx) => tx.send(Zeroizing::new(buf.to_vec())).is_ok(),
            None => false,
        };
        if sent {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream's thread has stopped",
            )))
        }
    }

    /// Queued bytes are written by the thread between reads; there is nothing
    /// to wait for here.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Console, ConsoleError, ConsoleOptions, Pattern};
    use fencekit_core::Instant;
    use std::io::BufRead;
    use std::os::unix::net::UnixStream;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    #[tokio::test]
    async fn a_blocking_socket_carries_a_dialogue() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let device = std::thread::spawn(move || {
            let mut writer = theirs.try_clone().unwrap();
            writer.write_all(b"banner\r\napc>").unwrap();
            let mut reader = io::BufReader::new(theirs);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            writer
                .write_all(b"\r\nE000: Success\r\n 1: web: On\r\napc>")
                .unwrap();
            line
        });
        let stream = ThreadStream::spawn(ours, "console-test", Duration::from_millis(5)).unwrap();
        let mut c = Console::new(stream, ConsoleOptions::default());
        let prompt = Pattern::prompt(c.learn_prompt(deadline()).await.unwrap().matched);
        c.send_line("olStatus all", deadline()).await.unwrap();
        let m = c.expect(&[prompt], deadline()).await.unwrap();
        let outlets = crate::parse::apc_cli::parse_ol_status(&m.before).unwrap();
        assert_eq!(outlets[0].name, "web");
        assert_eq!(device.join().unwrap(), "olStatus all\r\n");
    }

    #[tokio::test]
    async fn input_queued_before_the_deadline_is_never_written_after_it() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // The thread sits in a read for 600 ms: the console's line waits in the
        // queue past the deadline.
        ours.set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(150);
        let stream = ThreadStream::spawn_until(
            ours,
            "console-test",
            Duration::from_millis(5),
            Some(deadline.into_std()),
        )
        .unwrap();
        let mut c = Console::new(stream, ConsoleOptions::default());
        // Give the thread time to enter its read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.send_line("olOff 3", deadline).await.unwrap();
        // The device reads for well past the deadline: nothing may arrive.
        let device = std::thread::spawn(move || {
            theirs
                .set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                match (&theirs).read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let got = device.join().unwrap();
        assert!(got.is_empty(), "written after the deadline: {got:?}");
        // The console hears that the session is over, as a timeout: the deadline
        // ended it, not the device (a fence weighing its failed reads must not
        // take it for the device's answer).
        let err = c
            .expect(
                &[Pattern::prompt(">")],
                Instant::now() + Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ConsoleError::TimedOut { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_far_end_closing_is_connection_lost() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        drop(theirs);
        let stream = ThreadStream::spawn(ours, "console-test", Duration::from_millis(5)).unwrap();
        let mut c = Console::new(stream, ConsoleOptions::default());
        let err = c
            .expect(&[Pattern::prompt(">")], deadline())
            .await
            .unwrap_err();
        assert!(matches!(err, ConsoleError::ConnectionLost { .. }), "{err}");
    }
}

//! Opening the files a configuration names (a secret, a CA bundle, the
//! configuration itself, the sim's state, a log, a lock) so that none can hang an
//! operation or exhaust memory: only regular files (a FIFO's open or read, a
//! device's read, can block for ever), opened without blocking, and read up to a
//! stated size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The one device a log may be sent to instead of a file.
const DEV_NULL: &str = "/dev/null";

/// Opens `path` with `options`, refusing anything but a regular file (or
/// `/dev/null`): the open itself never blocks (`O_NONBLOCK`: a FIFO with no writer
/// opens at once, and is then refused; one with no reader fails to open for
/// writing), nor does a read or write of what is accepted.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A FIFO opened for writing with no reader.
            Some(nix::libc::ENXIO) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a FIFO (with no reader), not a regular file",
            ),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() || (kind.is_char_device() && path == Path::new(DEV_NULL)) {
        return Ok(file);
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not a regular file"),
    ))
}

/// The contents of the regular file `path`, at most `limit` bytes; a larger file
/// is an error, never read whole.
pub fn read_bounded(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = open_regular(path, OpenOptions::new().read(true))?;
    let mut out = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: usize) -> io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// Standard input's first line (without its end), at most `limit` bytes, read by
/// `by`: what `password_file=/dev/stdin` means. A writer that never sends a line
/// end nor closes is given up on at `by`, never waited for longer.
pub fn read_stdin_line(limit: usize, by: std::time::Instant) -> io::Result<Vec<u8>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let left = by.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "standard input sent no line in time",
            ));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms)).map_err(io::Error::from)?;
        if ready == 0 {
            continue;
        }
        // One byte at a time: nothing past the line is taken from standard input.
        match nix::unistd::read(stdin.as_fd(), &mut byte).map_err(io::Error::from)? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => {
                if line.len() == limit {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("its first line is longer than {limit} bytes"),
                    ));
                }
                line.push(byte[0]);
            }
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fifo_is_refused_at_once_for_reading_and_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let started = Instant::now();
        let err = read_bounded(&fifo, 100).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(open_regular(&fifo, OpenOptions::new().append(true)).is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn devices_and_directories_are_refused_and_dev_null_takes_a_log() {
        assert!(read_bounded(Path::new("/dev/zero"), 100).is_err());
        assert!(read_bounded(Path::new("/tmp"), 100).is_err());
        assert!(open_regular(Path::new("/dev/null"), OpenOptions::new().append(true)).is_ok());
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        let err = read_bounded(&path, 4).unwrap_err();
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
    }
}

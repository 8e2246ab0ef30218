//! Blanking secrets in the environment and argument blocks the process started
//! with.
//!
//! `std::env::remove_var` takes a variable out of the C library's list, so that no
//! child inherits it; but the text the kernel copied onto the new process's stack
//! stays where it was, and `/proc/PID/environ` shows that block for the whole run
//! (to root, as the process is made non-dumpable; and a script plugin or notify
//! command often runs as root). cluster-glue hands a plugin its `passwd` that way.
//! Here each given variable's value in that block is overwritten with NUL bytes,
//! through `/proc/self/mem`: the block's place is read from `/proc/self/stat`
//! (`env_start`, `env_end`, proc(5)).
//!
//! Call after the variables were removed with `std::env::remove_var` and read into
//! the process's own memory, while the process has one thread: nothing then points
//! into the text overwritten.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;

/// The most of the environment block read (the kernel caps argv and environment
/// together at a quarter of the stack limit; 8 MiB covers any usual limit).
const MAX_BLOCK: u64 = 8 << 20;

/// Overwrites the value of every variable named in `names` in the process's
/// initial environment block. Gives how many values were blanked.
pub fn blank_initial(names: &[&str]) -> io::Result<usize> {
    if names.is_empty() {
        return Ok(0);
    }
    let (start, end) = env_block()?;
    if end <= start || end - start > MAX_BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the environment block's bounds are not usable",
        ));
    }
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut block = vec![0u8; (end - start) as usize];
    mem.read_exact_at(&mut block, start)?;
    let mut blanked = 0;
    let mut offset = 0usize;
    for entry in block.split(|b| *b == 0) {
        let at = offset;
        offset += entry.len() + 1;
        let Some(eq) = entry.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if value.is_empty() || !names.iter().any(|n| n.as_bytes() == name) {
            continue;
        }
        let zeros = vec![0u8; value.len()];
        mem.write_all_at(&zeros, start + (at + eq + 1) as u64)?;
        blanked += 1;
    }
    Ok(blanked)
}

/// Overwrites, in the process's argument block (what `/proc/PID/cmdline` and `ps`
/// show), every argument that is one of `secrets` (`-p SECRET`) and the part of one
/// that ends with it after `=` or a short option (`--password=SECRET`, `-pSECRET`).
/// The program name is left alone. Gives how many arguments were blanked.
pub fn blank_initial_args(secrets: &[&str]) -> io::Result<usize> {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.as_bytes())
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Ok(0);
    }
    let (start, end) = block(48, 49)?;
    if end <= start || end - start > MAX_BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the argument block's bounds are not usable",
        ));
    }
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut args = vec![0u8; (end - start) as usize];
    mem.read_exact_at(&mut args, start)?;
    let mut blanked = 0;
    let mut offset = 0usize;
    for (n, arg) in args.split(|b| *b == 0).enumerate() {
        let at = offset;
        offset += arg.len() + 1;
        if n == 0 {
            continue;
        }
        let hit = secrets.iter().find_map(|secret| {
            if arg == *secret {
                return Some(0);
            }
            let from = arg.len().checked_sub(secret.len())?;
            let before = arg[..from].last().copied()?;
            (arg.ends_with(secret) && arg[0] == b'-' && (before == b'=' || from == 2))
                .then_some(from)
        });
        if let Some(from) = hit {
            let zeros = vec![0u8; arg.len() - from];
            mem.write_all_at(&zeros, start + (at + from) as u64)?;
            blanked += 1;
        }
    }
    Ok(blanked)
}

/// `env_start` and `env_end` from `/proc/self/stat` (fields 50 and 51).
fn env_block() -> io::Result<(u64, u64)> {
    block(50, 51)
}

/// Two address fields of `/proc/self/stat` (1-based numbers, proc(5)).
fn block(first: usize, second: usize) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold anything; the
    // fields after the last ')' start with field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ')' in /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("field {n} of /proc/self/stat is missing"),
                )
            })
    };
    Ok((field(first)?, field(second)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_block_is_found_and_holds_path() {
        let (start, end) = env_block().unwrap();
        assert!(end > start);
        let mem = std::fs::File::open("/proc/self/mem").unwrap();
        let mut block = vec![0u8; (end - start) as usize];
        mem.read_exact_at(&mut block, start).unwrap();
        // The test runner is started with some environment; PATH is in every one.
        assert!(block.windows(5).any(|w| w == b"PATH="));
    }

    #[test]
    fn no_names_blank_nothing() {
        assert_eq!(blank_initial(&[]).unwrap(), 0);
        assert_eq!(
            blank_initial(&["FENCEKIT_NO_SUCH_VARIABLE_7f3a"]).unwrap(),
            0
        );
    }
}

//! A small power device kept in a directory, for the plugins whose device is a
//! program of the user's (the `script` plugin) or a shared object (an external
//! plugin): a shell script, or the `faulty` test plugin, plays the device against
//! the same files, and a test reads the true state and the command log from them.
//!
//! Files in the device directory:
//! * `plugs`: one line per plug, `N STATE PENDING NAME` (`1 on - db1`); PENDING is `-`
//!   or `STATE@MS`, the state the plug reaches at that Unix time in milliseconds;
//! * `fault`: how the device behaves, one word: `obey`, `lie` (accepts, never
//!   changes), `slow:MS` (reaches the state MS after accepting), `pending:MS` (the
//!   same, and status reads `pending` meanwhile), `error` (refuses everything),
//!   `hang` (never answers), `drop` (carries a command out, then the connection
//!   drops: no answer, an error);
//! * `log`: one line per accepted command, `ACCEPTED_MS N on|off EFFECTIVE_MS|-`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::matrix::{now_ms, parse_log, Record};

/// One toy device.
#[derive(Debug)]
pub struct ToyDevice {
    dir: PathBuf,
}

impl ToyDevice {
    /// A device in `dir` (created) with one plug per name, in the given states.
    pub fn create(dir: &Path, names: &[&str], on: &[bool], fault: &str) -> ToyDevice {
        std::fs::create_dir_all(dir).expect("create the toy device's directory");
        let plugs: String = names
            .iter()
            .zip(on)
            .enumerate()
            .map(|(i, (name, on))| {
                format!("{} {} - {name}\n", i + 1, if *on { "on" } else { "off" })
            })
            .collect();
        std::fs::write(dir.join("plugs"), plugs).expect("write plugs");
        std::fs::write(dir.join("fault"), format!("{fault}\n")).expect("write fault");
        std::fs::write(dir.join("log"), "").expect("write log");
        ToyDevice {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Record for ToyDevice {
    fn states(&self) -> Vec<(u32, bool)> {
        let text = std::fs::read_to_string(self.dir.join("plugs")).unwrap_or_default();
        let now = now_ms();
        text.lines()
            .filter_map(|line| {
                let mut w = line.split_whitespace();
                let n: u32 = w.next()?.parse().ok()?;
                let mut on = w.next()? == "on";
                if let Some((state, at)) = w.next()?.split_once('@') {
                    if at.parse::<u64>().is_ok_and(|at| now >= at) {
                        on = state == "on";
                    }
                }
                Some((n, on))
            })
            .collect()
    }

    fn log(&self) -> Vec<(u64, u32, bool, Option<u64>)> {
        parse_log(&self.dir.join("log"))
    }
}

/// The device script for fencekit's `script` plugin, playing the toy device in
/// `dir`, written into `dir/device.sh`.
pub fn write_script(dir: &Path) -> PathBuf {
    let dir_text = dir.to_string_lossy();
    assert!(
        !dir_text.contains(['\'', '\n']),
        "unusable directory {dir_text}"
    );
    let script = format!(
        r#"#!/bin/sh
# A power device for fencekit's script plugin (see fencekit-tests' toy module).
dir='{dir_text}'
fault=$(cat "$dir/fault")
now=$(date +%s%3N)
case "$fault" in
hang) exec sleep 600 ;;
error) echo "device refused: error 42" >&2; exit 1 ;;
esac
# Apply pending changes whose time has come.
awk -v now="$now" '{{ if ($3 != "-") {{ split($3, p, "@"); if (now + 0 >= p[2] + 0) {{ $2 = p[1]; $3 = "-" }} }} print }}' \
    "$dir/plugs" > "$dir/plugs.$$" && mv "$dir/plugs.$$" "$dir/plugs"
case "$1" in
list) awk '{{ print $1, $4 }}' "$dir/plugs"; exit 0 ;;
check)
    if [ "$fault" = drop ]; then echo "Connection reset by peer" >&2; exit 255; fi
    exit 0 ;;
esac
# The first plug whose number or name matches, as a simple device does.
n=$(awk -v p="$FENCEKIT_PLUG" '$1 == p || $4 == p {{ print $1; exit }}' "$dir/plugs")
if [ -z "$n" ]; then echo "no such outlet: $FENCEKIT_PLUG" >&2; exit 1; fi
case "$1" in
status)
    case "$fault" in
    pending*) echo pending; exit 0 ;;
    drop) echo "Connection reset by peer" >&2; exit 255 ;;
    esac
    awk -v n="$n" '$1 == n {{ print $2 }}' "$dir/plugs"
    ;;
on|off)
    to=$1
    case "$fault" in
    obey|drop) eff=$now ;;
    slow:*|pending:*) eff=$((now + ${{fault#*:}})) ;;
    *) eff=- ;;
    esac
    echo "$now $n $to $eff" >> "$dir/log"
    case "$fault" in
    obey|drop) awk -v n="$n" -v to="$to" '$1 == n {{ $2 = to; $3 = "-" }} {{ print }}' "$dir/plugs" > "$dir/plugs.$$" ;;
    slow:*|pending:*) awk -v n="$n" -v to="$to@$eff" '$1 == n {{ $3 = to }} {{ print }}' "$dir/plugs" > "$dir/plugs.$$" ;;
    *) cp "$dir/plugs" "$dir/plugs.$$" ;;
    esac
    mv "$dir/plugs.$$" "$dir/plugs"
    if [ "$fault" = drop ]; then echo "Connection reset by peer" >&2; exit 255; fi
    ;;
*) echo "unknown action $1" >&2; exit 1 ;;
esac
exit 0
"#
    );
    let path = dir.join("device.sh");
    std::fs::write(&path, script).expect("write the device script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the device script executable");
    path
}

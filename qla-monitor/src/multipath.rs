//! dm-multipath as the kernel and multipathd see it (`storage.md` §3): the
//! `dmsetup status` multipath line (per-path `A`/`F`, no multipathd needed, no I/O to
//! the LUN), `dmsetup table`'s `queue_if_no_path`, and multipathd's
//! `show paths raw format` rows when multipathd answers.

use std::collections::HashMap;

use serde::Serialize;

/// Bounds on counts read from the line, so garbage cannot make us loop or allocate.
const MAX_ARGS: usize = 64;
const MAX_PATHS: usize = 4096;

/// One path of a multipath map in the kernel's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmPath {
    /// `major:minor`.
    pub devt: String,
    /// `A` (usable) rather than `F` (failed).
    pub active: bool,
    /// Cumulative fail count.
    pub fail_count: u64,
    /// Path group number, from 1.
    pub group: usize,
    /// The group's state letter: `A` active, `E` enabled, `D` disabled.
    pub group_state: char,
}

/// A parsed `dmsetup status` multipath line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmStatus {
    /// The first feature value: I/O is being queued (§3.4).
    pub queue_io: bool,
    pub path_groups: usize,
    pub paths: Vec<DmPath>,
}

impl DmStatus {
    pub fn usable(&self) -> usize {
        self.paths.iter().filter(|p| p.active).count()
    }
}

/// Parses the output of `dmsetup status <map>` (with or without the `name: ` prefix
/// that `dmsetup status` without a map name prints). The first multipath target line
/// counts. Counts are always honoured as given (§3.4: never hard-code the selector's
/// per-path argument count).
pub fn parse_dm_status(text: &str) -> Result<DmStatus, String> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|t| t == "multipath"))
        .ok_or_else(|| "no multipath target in dmsetup status".to_string())?;
    let mut tokens = line
        .split_whitespace()
        .skip_while(|t| *t != "multipath")
        .skip(1);
    let mut next = |what: &str| {
        tokens
            .next()
            .ok_or_else(|| format!("dmsetup status line ends before {what}"))
    };
    let count = |tok: &str, what: &str, max: usize| -> Result<usize, String> {
        match tok.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("bad {what} {tok:?} in dmsetup status")),
        }
    };

    let features = count(next("features")?, "feature count", MAX_ARGS)?;
    let mut queue_io = false;
    for i in 0..features {
        let v = next("feature values")?;
        if i == 0 {
            queue_io = v == "1";
        }
    }
    let hw = count(
        next("hardware handler")?,
        "hardware handler count",
        MAX_ARGS,
    )?;
    for _ in 0..hw {
        next("hardware handler values")?;
    }
    let groups = count(next("path group count")?, "path group count", MAX_PATHS)?;
    next("current path group")?;
    let mut paths = Vec::new();
    for g in 1..=groups {
        let state = next("path group state")?;
        let group_state = match state {
            "A" | "E" | "D" => state.chars().next().unwrap_or('?'),
            other => return Err(format!("bad path group state {other:?} in dmsetup status")),
        };
        let status_args = count(
            next("selector status count")?,
            "selector status count",
            MAX_ARGS,
        )?;
        for _ in 0..status_args {
            next("selector status")?;
        }
        let n_paths = count(next("path count")?, "path count", MAX_PATHS)?;
        let per_path = count(
            next("per-path selector count")?,
            "per-path selector count",
            MAX_ARGS,
        )?;
        for _ in 0..n_paths {
            let devt = next("path device")?;
            if !is_devt(devt) {
                return Err(format!("bad path device {devt:?} in dmsetup status"));
            }
            let active = match next("path state")? {
                "A" => true,
                "F" => false,
                other => return Err(format!("bad path state {other:?} in dmsetup status")),
            };
            let fail_count = next("fail count")?.parse::<u64>().unwrap_or(0);
            for _ in 0..per_path {
                next("per-path selector values")?;
            }
            if paths.len() < MAX_PATHS {
                paths.push(DmPath {
                    devt: devt.to_string(),
                    active,
                    fail_count,
                    group: g,
                    group_state,
                });
            }
        }
    }
    Ok(DmStatus {
        queue_io,
        path_groups: groups,
        paths,
    })
}

fn is_devt(s: &str) -> bool {
    match s.split_once(':') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.len() <= 10
                && b.len() <= 10
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether a `dmsetup table` multipath line has the `queue_if_no_path` feature: with
/// no path left, I/O then queues forever instead of failing (§3.3), so `umount` in
/// the following stop will hang.
pub fn table_queues_if_no_path(text: &str) -> Option<bool> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|t| t == "multipath"))?;
    let mut tokens = line
        .split_whitespace()
        .skip_while(|t| *t != "multipath")
        .skip(1);
    let n = tokens.next()?.parse::<usize>().ok()?.min(MAX_ARGS);
    Some(tokens.take(n).any(|t| t == "queue_if_no_path"))
}

/// The format we ask multipathd for: orphan-safe wildcards only (no `%c`, see
/// `opensvc/multipath-tools#62`), separated by `|` because chk_st values hold
/// spaces (`i/o pending`).
pub const MULTIPATHD_FORMAT: &str = "%d|%D|%m|%t|%T|%o|%i";

/// One row of `multipathd show paths raw format MULTIPATHD_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckerRow {
    pub dev: String,
    pub devt: String,
    /// Map alias, `[orphan]` for orphans.
    pub map: String,
    pub dm_state: String,
    pub checker_state: String,
    pub dev_state: String,
    pub hcil: String,
}

impl CheckerRow {
    /// What the checker adds to the kernel's view (§3.1).
    pub fn checker_verdict(&self) -> CheckerVerdict {
        match self.checker_state.as_str() {
            "faulty" | "shaky" | "i/o timeout" | "disconnected" => CheckerVerdict::Down,
            "ghost" => CheckerVerdict::Standby,
            "delayed" => CheckerVerdict::Marginal,
            _ => CheckerVerdict::NoOpinion,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckerVerdict {
    Down,
    Standby,
    Marginal,
    NoOpinion,
}

/// Parses multipathd's rows, keyed by `major:minor`. Lines that are not rows (a
/// header from an old multipathd without `raw`, an error text) are skipped.
pub fn parse_checker_rows(text: &str) -> HashMap<String, CheckerRow> {
    let mut rows = HashMap::new();
    for line in text.lines().take(MAX_PATHS) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() != 7 || !is_devt(f[1]) {
            continue;
        }
        rows.insert(
            f[1].to_string(),
            CheckerRow {
                dev: f[0].to_string(),
                devt: f[1].to_string(),
                map: f[2].to_string(),
                dm_state: f[3].to_string(),
                checker_state: f[4].to_string(),
                dev_state: f[5].to_string(),
                hcil: f[6].to_string(),
            },
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_failed_path_of_two_is_counted() {
        let s = parse_dm_status("0 41943040 multipath 2 0 0 0 1 1 A 0 2 0 8:48 A 0 8:144 F 3\n")
            .unwrap();
        assert_eq!(s.paths.len(), 2);
        assert_eq!(s.usable(), 1);
        assert_eq!(s.paths[1].fail_count, 3);
        assert!(!s.queue_io);
    }

    #[test]
    fn no_active_path_across_two_groups_means_no_path() {
        let s =
            parse_dm_status("0 41943040 multipath 2 1 0 0 2 1 E 0 1 0 8:48 F 1 E 0 1 0 8:144 F 2")
                .unwrap();
        assert_eq!(s.usable(), 0);
        assert_eq!(s.paths.len(), 2);
        assert!(s.queue_io);
    }

    #[test]
    fn per_path_selector_args_are_skipped_by_their_count() {
        let s =
            parse_dm_status("mpatha: 0 1024 multipath 2 0 0 0 1 1 A 0 2 1 253:4 A 0 7 253:5 A 0 0")
                .unwrap();
        assert_eq!(s.usable(), 2);
        let st =
            parse_dm_status("0 1024 multipath 2 0 0 1 alua 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1")
                .unwrap();
        assert_eq!(st.usable(), 2);
        assert_eq!(st.paths[1].devt, "8:32");
    }

    #[test]
    fn truncated_or_foreign_lines_are_errors_not_panics() {
        assert!(parse_dm_status("0 1024 multipath 2 0 0 0 1 1 A 0 2 0 8:48 A").is_err());
        assert!(parse_dm_status("0 1024 linear").is_err());
        assert!(parse_dm_status("0 1024 multipath 2 0 0 0 1 1 X 0 1 0 8:48 A 0").is_err());
        assert!(parse_dm_status("0 1024 multipath 99999999999 0").is_err());
    }

    #[test]
    fn queue_if_no_path_is_seen_in_the_table() {
        assert_eq!(
            table_queues_if_no_path(
                "0 41943040 multipath 1 queue_if_no_path 1 alua 1 1 service-time 0 1 2 8:48 1 1"
            ),
            Some(true)
        );
        assert_eq!(
            table_queues_if_no_path("0 41943040 multipath 0 0 1 1 round-robin 0 1 1 8:48 1000"),
            Some(false)
        );
        assert_eq!(table_queues_if_no_path("garbage"), None);
    }

    #[test]
    fn checker_rows_key_by_devt_and_keep_spaced_states() {
        let rows = parse_checker_rows(
            "sdd|8:48|mpathb|active|ready|running|3:0:1:4\n\
             sdj|8:144|mpathb|active|i/o timeout|running|4:0:1:4\n\
             dev|dev_t|multipath|dm_st|chk_st|dev_st|hcil\n",
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows["8:144"].checker_verdict(), CheckerVerdict::Down);
        assert_eq!(rows["8:48"].checker_verdict(), CheckerVerdict::NoOpinion);
    }

    proptest! {
        #[test]
        fn dm_status_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_dm_status(&s);
            let _ = table_queues_if_no_path(&s);
            let _ = parse_checker_rows(&s);
        }

        #[test]
        fn dm_status_parser_never_panics_on_plausible_tokens(
            toks in proptest::collection::vec(
                prop_oneof![Just("A".to_string()), Just("F".to_string()), Just("E".to_string()),
                            Just("8:16".to_string()), Just("multipath".to_string()),
                            (0u32..6).prop_map(|n| n.to_string())], 0..60)
        ) {
            let line = format!("0 100 multipath {}", toks.join(" "));
            if let Ok(s) = parse_dm_status(&line) {
                prop_assert!(s.usable() <= s.paths.len());
            }
        }
    }
}

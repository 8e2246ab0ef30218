//! The session-sequence receive window (IPMI v2.0 §6.12.13): a packet is accepted
//! when its number is within +15 / −16 of the highest accepted one (RMCP+), or
//! ±8 (IPMI 1.5 sessions), and was not seen before; 0 is never valid inside a
//! session.

#[derive(Debug, Clone)]
pub struct SeqWindow {
    highest: Option<u32>,
    /// Bit n set: `highest - n` was accepted.
    seen: u32,
    ahead: i32,
    behind: i32,
}

impl Default for SeqWindow {
    /// The RMCP+ window, +15 / −16.
    fn default() -> SeqWindow {
        SeqWindow {
            highest: None,
            seen: 0,
            ahead: 15,
            behind: 16,
        }
    }
}

impl SeqWindow {
    /// The IPMI 1.5 window, ±8 (§6.12.13; ipmi_sim's lanserv checks the same),
    /// placed so that `first` is the first number expected: a number far from
    /// it (a reply of another session, a replay) is refused from the start.
    pub fn v15_expecting(first: u32) -> SeqWindow {
        SeqWindow {
            highest: Some(first.wrapping_sub(1)),
            // The number before `first` counts as seen: it was never sent.
            seen: 1,
            ahead: 8,
            behind: 8,
        }
    }

    /// Accepts `seq` and records it, or refuses it as out of window or a duplicate.
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return true;
        };
        let ahead = seq.wrapping_sub(highest) as i32;
        if (1..=self.ahead).contains(&ahead) {
            self.seen = (self.seen << ahead) | 1;
            self.highest = Some(seq);
            true
        } else if (-self.behind..=0).contains(&ahead) {
            let bit = 1u32 << (-ahead);
            if self.seen & bit != 0 {
                return false;
            }
            self.seen |= bit;
            true
        } else {
            false
        }
    }
}

/// The next outbound session sequence number: starts at 1, skips 0 on wrap (§5).
pub fn next_seq(seq: &mut u32) -> u32 {
    *seq = seq.wrapping_add(1);
    if *seq == 0 {
        *seq = 1;
    }
    *seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_far_numbers_are_refused() {
        let mut w = SeqWindow::default();
        assert!(w.accept(5));
        assert!(!w.accept(5));
        assert!(w.accept(20));
        assert!(!w.accept(36));
        assert!(w.accept(6));
        assert!(!w.accept(6));
        assert!(w.accept(4));
        assert!(!w.accept(3));
        assert!(!w.accept(0));
    }

    #[test]
    fn the_window_survives_wrap_around() {
        let mut w = SeqWindow::default();
        assert!(w.accept(u32::MAX - 1));
        assert!(w.accept(2));
        assert!(w.accept(u32::MAX));
    }

    #[test]
    fn the_ipmi_1_5_window_is_8_either_way_from_the_first_expected_number() {
        let mut w = SeqWindow::v15_expecting(100);
        assert!(!w.accept(99), "the number before the first was never sent");
        assert!(!w.accept(200));
        assert!(w.accept(100));
        assert!(!w.accept(100));
        assert!(w.accept(108));
        assert!(!w.accept(117));
        assert!(w.accept(101));
        assert!(!w.accept(99));
        let mut w = SeqWindow::v15_expecting(5);
        assert!(
            w.accept(6),
            "a BMC may start one after the number it was given"
        );
    }

    #[test]
    fn outbound_numbers_start_at_1_and_skip_0() {
        let mut s = 0;
        assert_eq!(next_seq(&mut s), 1);
        let mut s = u32::MAX;
        assert_eq!(next_seq(&mut s), 1);
    }
}

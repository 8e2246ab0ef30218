//! The session-sequence receive window (IPMI v2.0 §6.12.13): a packet is accepted
//! when its number is within +15 / −16 of the highest accepted one and was not seen
//! before; 0 is never valid inside a session.

#[derive(Debug, Clone, Default)]
pub struct SeqWindow {
    highest: Option<u32>,
    /// Bit n set: `highest - n` was accepted.
    seen: u32,
}

impl SeqWindow {
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
        if (1..=15).contains(&ahead) {
            self.seen = (self.seen << ahead) | 1;
            self.highest = Some(seq);
            true
        } else if (-16..=0).contains(&ahead) {
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
    fn outbound_numbers_start_at_1_and_skip_0() {
        let mut s = 0;
        assert_eq!(next_seq(&mut s), 1);
        let mut s = u32::MAX;
        assert_eq!(next_seq(&mut s), 1);
    }
}

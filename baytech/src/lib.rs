//! Baytech RPC power strips for fencekit, over the SSH console, directly or behind a
//! DS/MMP management module: [`BaytechSwitch`] implements `PowerSwitch` with the
//! strip's prompt learned (not the seed's hard-coded `RPC-28A>`), every `On`/`Off`/
//! `Reboot` confirmed with `Y`, and the outlet table read for state by number or
//! name; its parameters are [`SCHEMA`]. [`sim`] is the strip simulator tests run
//! behind a real sshd (binary `fencekit-baytech-sim`).

pub mod sim;
pub mod switch;

pub use switch::{BaytechSwitch, SCHEMA};

//! Baytech RPC power strips for fencekit, over the SSH console, directly or behind a
//! DS/MMP management module; implements `PowerSwitch` with the outlet table read back
//! after every switch.
//!
//! Nothing is implemented here yet: this crate only reserves its place in the
//! workspace.

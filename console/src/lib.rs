//! The console dialogue engine shared by the APC and Baytech plugins: send a line or a
//! key, wait for one of several patterns by a deadline, page through "Press <ENTER> to
//! continue", answer confirmations, over any byte stream (so it is testable without a
//! network), with a transcript at trace level that masks secrets.
//!
//! Nothing is implemented here yet: this crate only reserves its place in the
//! workspace.

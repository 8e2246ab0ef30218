//! Native IPMI v2.0 RMCP+ ("lanplus") for fencekit: one sans-IO codec for RMCP,
//! the IPMI 2.0 session wrapper and IPMI messages; the client session state machine
//! (Open Session, RAKP 1-4, Set Session Privilege Level, chassis commands, Close
//! Session) fed datagrams and time; a BMC responder built on the same codec for the
//! demo, fault tests and fleet benchmark; a thin tokio UDP driver; and the
//! `PowerSwitch` implementation for BMCs.
//!
//! Nothing is implemented here yet: this crate only reserves its place in the
//! workspace.

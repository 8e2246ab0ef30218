//! Native IPMI v2.0 RMCP+ ("lanplus") for fencekit, and IPMI 1.5 ("lan") where a
//! configuration asks for it: one sans-IO codec for RMCP, the IPMI 1.5 and 2.0
//! session wrappers and IPMI messages; the client session state machine (Open
//! Session, RAKP 1-4 — or IPMI 1.5's Get Session Challenge and Activate Session —
//! then Set Session Privilege Level, chassis commands, Close Session) fed datagrams
//! and time; a BMC responder built on the same codec for
//! the demo, fault tests and fleet benchmark; a thin tokio UDP driver; and
//! [`IpmiSwitch`], the `PowerSwitch` for BMCs.

pub mod crypto;
pub mod driver;
pub mod error;
pub mod message;
pub mod packet;
pub mod responder;
pub mod rmcp;
pub mod session;
pub mod setup;
pub mod suite;
pub mod switch;
pub mod v15;
mod wire;

pub use error::{CodecError, IpmiError, Phase};
pub use switch::{IpmiSwitch, SCHEMA};

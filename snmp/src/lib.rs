//! SNMP for fencekit's devices, shared by every plugin that speaks it: SNMPv1/v2c
//! with a community and SNMPv3 with the user-based security model (RFC 3414) at any
//! security level, as a manager sends GetRequest, GetNextRequest (walks) and
//! SetRequest to one agent by a deadline. Shaped like `ipmi`: the protocol is a
//! sans-IO state machine fed datagrams and time ([`exchange`]), and a thin tokio UDP
//! driver runs it ([`driver`]: [`Agent`], [`Session`]).
//!
//! Layers: [`ber`] (the BER we write and the SNMPv3 parts we read ourselves),
//! [`message`] (varbind values and Response PDUs), [`usm`] (engine, keys, Report
//! PDUs told apart, with `snmp2` doing the cryptography), [`credentials`] and
//! [`params`] (the parameter group `community`, `snmp_version`, `username`,
//! `password`, `snmp_auth_prot`, `snmp_sec_level`, `snmp_priv_prot`,
//! `snmp_priv_passwd`, declared once and read by [`Credentials::from_params`]),
//! [`exchange`] (retries within the deadline, stale answers skipped, discovery and
//! time-window resynchronisation, and the rule that a write which must not happen
//! twice is never sent twice), and [`driver`]. [`pass_persist`] is the other end:
//! the agent's side of snmpd's `pass_persist` protocol, which the device emulators
//! of the tests speak.

pub mod ber;
pub mod credentials;
pub mod driver;
pub mod exchange;
pub mod message;
pub mod params;
pub mod pass_persist;
pub mod usm;

pub use credentials::{AuthProtocol, Credentials, PrivProtocol, SecLevel, Usm, Version};
pub use driver::{Agent, Session};
pub use exchange::{Exchange, PduKind, Peer, Request, Resend};
pub use message::{community_response, integer_pairs, status_name, Response, VarValue};

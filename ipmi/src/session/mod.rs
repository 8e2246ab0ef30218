//! RMCP+ sessions as sans-IO state machines: the console side ([`client`]) and the
//! receive window both ends keep ([`window`]).

pub mod client;
pub mod window;

#[cfg(test)]
mod tests;

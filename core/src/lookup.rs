//! Name lookups that end by a deadline.
//!
//! The system resolver (`getaddrinfo`) cannot be interrupted. A lookup runs on a
//! detached thread of its own that nothing waits for, not even the runtime when the
//! process ends (as it would for a blocking task): a resolver that hangs costs that
//! thread, never the deadline or the exit of the process.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use thiserror::Error;

use crate::Instant;

/// Why a name gave no address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("cannot resolve {host}: {cause}")]
    Failed { host: String, cause: String },
    /// The resolver did not answer by the deadline.
    #[error("resolving {host}: the resolver did not answer in time")]
    NotInTime { host: String },
}

impl LookupError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, LookupError::NotInTime { .. })
    }
}

/// Whether `addr` reaches an IPv6 host: an IPv6 address that carries an IPv4 one
/// (`::ffff:a.b.c.d`, NAT64's `64:ff9b::a.b.c.d`) reaches an IPv4 host, and counts
/// as IPv4 wherever a family is chosen (`inet4_only`, `inet6_only`, one address
/// per family).
pub fn reaches_ipv6(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(_) => false,
        IpAddr::V6(ip) => {
            let [a, b, ..] = ip.segments();
            ip.to_ipv4_mapped().is_none() && !(a == 0x64 && b == 0xff9b)
        }
    }
}

/// The addresses of `host` (a name, an address, or an IPv6 address in brackets) on
/// `port`, by `deadline`. An address written as one needs no lookup.
pub async fn lookup(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, LookupError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = bare.to_string();
    std::thread::Builder::new()
        .name("name lookup".into())
        .spawn(move || {
            let found = (owned.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = tx.send(found);
        })
        .map_err(|e| LookupError::Failed {
            host: host.to_string(),
            cause: format!("cannot start the lookup: {e}"),
        })?;
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(Ok(addrs))) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(Ok(_))) => Err(LookupError::NoAddress {
            host: host.to_string(),
        }),
        Ok(Ok(Err(e))) => Err(LookupError::Failed {
            host: host.to_string(),
            cause: e.to_string(),
        }),
        Ok(Err(_)) => Err(LookupError::Failed {
            host: host.to_string(),
            cause: "the lookup stopped".into(),
        }),
        Err(_) => Err(LookupError::NotInTime {
            host: host.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_ipv6_address_carrying_an_ipv4_one_reaches_an_ipv4_host() {
        for (addr, v6) in [
            ("192.0.2.1:1", false),
            ("[::ffff:192.0.2.1]:1", false),
            ("[64:ff9b::c000:201]:1", false),
            ("[2001:db8::1]:1", true),
            ("[::1]:1", true),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(reaches_ipv6(&addr), v6, "{addr}");
        }
    }

    #[tokio::test]
    async fn addresses_need_no_lookup_and_names_resolve() {
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            lookup("127.0.0.1", 623, soon).await.unwrap(),
            vec!["127.0.0.1:623".parse().unwrap()]
        );
        assert_eq!(
            lookup("[::1]", 22, soon).await.unwrap(),
            vec!["[::1]:22".parse().unwrap()]
        );
        assert!(!lookup("localhost", 161, soon).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_deadline_already_past_ends_the_lookup_at_once() {
        let past = Instant::now();
        match lookup("bmc1.fencekit.test", 623, past).await {
            Err(e) => assert!(e.is_timeout() || matches!(e, LookupError::Failed { .. })),
            Ok(addrs) => panic!("no address expected, got {addrs:?}"),
        }
    }
}

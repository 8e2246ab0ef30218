//! Free loopback ports for peers: bind 127.0.0.1:0, read the port the kernel chose,
//! release it, and hand the number to the daemon.
//!
//! This has a small race: between our release and the daemon's bind another process
//! (often a client socket taking an ephemeral port) may take the port. The launchers
//! mitigate it with [`retry_on_address_in_use`]: a daemon that exits with "address
//! already in use" is started again on a fresh port.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use crate::HarnessError;

/// How many ports a launcher tries before it gives up.
pub const START_ATTEMPTS: usize = 4;

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> Result<u16, HarnessError> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| HarnessError::io("bind a UDP socket on 127.0.0.1:0", e))?;
    let addr = socket
        .local_addr()
        .map_err(|e| HarnessError::io("read the UDP port the kernel chose", e))?;
    Ok(addr.port())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| HarnessError::io("bind a TCP socket on 127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HarnessError::io("read the TCP port the kernel chose", e))?;
    Ok(addr.port())
}

/// Runs `start` up to [`START_ATTEMPTS`] times while it fails because its port was
/// taken (see the module doc); any other error, or the last one, is returned as is.
pub fn retry_on_address_in_use<T>(
    mut start: impl FnMut() -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(e) if e.is_address_in_use() && attempt < START_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_nonzero_and_bindable_again() {
        let udp = free_udp_port().unwrap();
        assert_ne!(udp, 0);
        UdpSocket::bind((Ipv4Addr::LOCALHOST, udp)).unwrap();
        let tcp = free_tcp_port().unwrap();
        assert_ne!(tcp, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, tcp)).unwrap();
    }

    fn in_use() -> HarnessError {
        HarnessError::Exited {
            name: "peer".into(),
            status: "exit status 1".into(),
            log_tail: "Unable to bind to LAN port: Address already in use".into(),
        }
    }

    #[test]
    fn a_start_that_lost_its_port_is_retried_until_it_succeeds() {
        let mut calls = 0;
        let result = retry_on_address_in_use(|| {
            calls += 1;
            if calls < 3 {
                Err(in_use())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn retrying_stops_after_the_last_attempt() {
        let mut calls = 0;
        let result: Result<(), _> = retry_on_address_in_use(|| {
            calls += 1;
            Err(in_use())
        });
        assert!(result.unwrap_err().is_address_in_use());
        assert_eq!(calls, START_ATTEMPTS);
    }

    #[test]
    fn other_start_failures_are_not_retried() {
        let mut calls = 0;
        let result: Result<(), _> = retry_on_address_in_use(|| {
            calls += 1;
            Err(HarnessError::Exited {
                name: "peer".into(),
                status: "exit status 1".into(),
                log_tail: "bad config line 3".into(),
            })
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}

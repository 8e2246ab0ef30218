//! The IF-MIB objects fabric fencing uses (RFC 2863) and what their values mean for
//! a fence.

use fencekit_core::PowerState;
use fencekit_snmp::ber::Oid;

/// ifNumber (interfaces group): how many interfaces the agent has, ifTable's rows.
pub const IF_NUMBER: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 1, 0];
/// ifDescr (ifTable): the interface's description, the names fence_ifmib matches a
/// plug against (`GigabitEthernet1/0/1` on a switch, `eth0` on Linux).
pub const IF_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
/// ifAdminStatus (ifTable): the state the manager asks for; read-write.
pub const IF_ADMIN_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 7];
/// ifOperStatus (ifTable): the state the interface is really in (link, carrier).
pub const IF_OPER_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
/// ifName (ifXTable): the short name (`Gi1/0/1`); agents without ifXTable have none.
pub const IF_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
/// ifAlias (ifXTable): the description an operator gave the port (`db1 storage`);
/// fence_ifmib lists it beside ifDescr. Never matched against a plug.
pub const IF_ALIAS: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18];

/// ifAdminStatus up(1): the port passes traffic.
pub const ADMIN_UP: i64 = 1;
/// ifAdminStatus down(2): the port passes no traffic.
pub const ADMIN_DOWN: i64 = 2;

/// The object of `column` for interface `index`.
pub fn object(column: &[u32], index: u32) -> Oid {
    let mut oid = column.to_vec();
    oid.push(index);
    oid
}

/// The ifIndex of a row of `column`: exactly one arc after it, 1 or more (RFC 2863
/// gives ifIndex the range 1..2147483647).
pub fn index_of(column: &[u32], oid: &[u32]) -> Option<u32> {
    match oid.strip_prefix(column)? {
        [index] if *index > 0 => Some(*index),
        _ => None,
    }
}

/// What an ifAdminStatus value means for a fence. testing(3) is neither: the port
/// is in a test mode, and only down(2) is a fenced port. (fence_ifmib reads every
/// value but up(1) as off; confirming a fence on a port in test mode would be
/// confirming what nobody asked for.)
pub fn admin_state(value: i64) -> PowerState {
    match value {
        ADMIN_UP => PowerState::On,
        ADMIN_DOWN => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

/// What a port's (ifAdminStatus, ifOperStatus) mean for a fence: down only when the
/// port is set down *and* reports a state that passes nothing (not up(1), testing(3)
/// or unknown(4)). IF-MIB says a port set down
/// goes down (RFC 2863 §3.1.13); one that still reads up is on its way down or
/// still forwarding, and is not fenced yet. (fence_ifmib reads ifAdminStatus only.)
/// An agent without ifOperStatus is judged by ifAdminStatus alone.
pub fn port_state(admin: i64, oper: Option<i64>) -> PowerState {
    match (admin_state(admin), oper) {
        // down(2), dormant(5), notPresent(6), lowerLayerDown(7): passing nothing.
        (PowerState::Off, None | Some(2 | 5 | 6 | 7)) => PowerState::Off,
        // up(1), testing(3), unknown(4) or a value IF-MIB does not define.
        (PowerState::Off, Some(_)) => PowerState::Unknown,
        (state, _) => state,
    }
}

/// The name of an ifAdminStatus value, for logs.
pub fn admin_name(value: i64) -> &'static str {
    match value {
        1 => "up",
        2 => "down",
        3 => "testing",
        _ => "not an ifAdminStatus value",
    }
}

/// The name of an ifOperStatus value, for logs.
pub fn oper_name(value: i64) -> &'static str {
    match value {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => "not an ifOperStatus value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_down_reads_off_and_only_up_reads_on() {
        assert_eq!(admin_state(1), PowerState::On);
        assert_eq!(admin_state(2), PowerState::Off);
        for other in [0, 3, 4, -1, i64::MAX] {
            assert_eq!(admin_state(other), PowerState::Unknown, "{other}");
        }
    }

    #[test]
    fn a_port_set_down_that_still_reads_up_is_not_off_yet() {
        assert_eq!(port_state(2, Some(1)), PowerState::Unknown);
        assert_eq!(port_state(2, Some(2)), PowerState::Off);
        assert_eq!(port_state(2, Some(7)), PowerState::Off);
        assert_eq!(port_state(2, Some(4)), PowerState::Unknown);
        assert_eq!(port_state(2, Some(3)), PowerState::Unknown);
        assert_eq!(port_state(2, Some(99)), PowerState::Unknown);
        assert_eq!(port_state(2, None), PowerState::Off);
        // Set up without a link is not fenced: on.
        assert_eq!(port_state(1, Some(2)), PowerState::On);
        assert_eq!(port_state(3, Some(2)), PowerState::Unknown);
    }

    #[test]
    fn a_row_index_is_one_positive_arc_after_its_column() {
        assert_eq!(index_of(IF_DESCR, &object(IF_DESCR, 3)), Some(3));
        assert_eq!(index_of(IF_DESCR, &object(IF_ADMIN_STATUS, 3)), None);
        assert_eq!(index_of(IF_DESCR, &object(IF_DESCR, 0)), None);
        assert_eq!(index_of(IF_DESCR, IF_DESCR), None);
        let mut deeper = object(IF_DESCR, 3);
        deeper.push(1);
        assert_eq!(index_of(IF_DESCR, &deeper), None);
    }
}

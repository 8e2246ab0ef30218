//! Device profiles: which PowerNet-MIB tables an APC unit has, chosen from its
//! `sysObjectID`, and the objects and values each one reads and writes.
//!
//! Object names and numbers are from APC's PowerNet-MIB (v4.x). The families:
//!
//! | profile | sysObjectID (PowerNet-MIB name) | units |
//! |---|---|---|
//! | `rpdu` | `.1.3.6.1.4.1.318.1.3.4.5` (masterSwitchrPDU) | AP78xx/AP79xx rack PDUs |
//! | `rpdu2` | `.1.3.6.1.4.1.318.1.3.4.6` (masterSwitchrPDU2) | AP8xxx rack PDUs |
//! | `masterswitch` | `.1.3.6.1.4.1.318.1.3.4.1`, `.2` (masterSwitchV1, V2) | AP9211/AP9212 MasterSwitch |
//! | `masterswitchplus` | `.1.3.6.1.4.1.318.1.3.4.4` (masterSwitchMSP) | MasterSwitch Plus, daisy-chained |
//!
//! fence_apc_snmp calls `.4.6` "MasterSwitch firmware 6.x" and mixes the old sPDU status
//! table with the rPDU control table for it; the MIB names it masterSwitchrPDU2, and we
//! use the rPDU2 tables it defines.

use fencekit_core::PowerState;

use fencekit_snmp::ber::Oid;

/// The PowerNet-MIB families we drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Rpdu,
    Rpdu2,
    MasterSwitch,
    MasterSwitchPlus,
}

/// The APC enterprise: 1.3.6.1.4.1.318.
const APC: [u32; 7] = [1, 3, 6, 1, 4, 1, 318];

/// The middle part of a MasterSwitch Plus outlet's index (`.unit.1.outlet`).
const MSP_MODULE: u32 = 1;

fn apc(tail: &[u32]) -> Oid {
    let mut oid = APC.to_vec();
    oid.extend_from_slice(tail);
    oid
}

/// sysObjectID.0 (SNMPv2-MIB).
pub fn sys_object_id() -> Oid {
    vec![1, 3, 6, 1, 2, 1, 1, 2, 0]
}

/// An outlet's instance suffix in the tables: `[n]`, or `[unit, n]` on a
/// MasterSwitch Plus chain.
pub type Instance = Vec<u32>;

/// Commands the profiles write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    On,
    Off,
    Reboot,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Rpdu,
        Family::Rpdu2,
        Family::MasterSwitch,
        Family::MasterSwitchPlus,
    ];

    /// The `profile` parameter's word for this family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Rpdu => "rpdu",
            Family::Rpdu2 => "rpdu2",
            Family::MasterSwitch => "masterswitch",
            Family::MasterSwitchPlus => "masterswitchplus",
        }
    }

    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }

    /// What people call it.
    pub fn title(self) -> &'static str {
        match self {
            Family::Rpdu => "APC rack PDU (rPDU, AP78xx/AP79xx)",
            Family::Rpdu2 => "APC rack PDU (rPDU2, AP8xxx)",
            Family::MasterSwitch => "APC MasterSwitch (sPDU)",
            Family::MasterSwitchPlus => "APC MasterSwitch Plus",
        }
    }

    /// The family a sysObjectID names (PowerNet-MIB `masterSwitch` products,
    /// 1.3.6.1.4.1.318.1.3.4.N).
    pub fn from_sys_object_id(oid: &[u32]) -> Option<Family> {
        match oid.strip_prefix(&apc(&[1, 3, 4])[..])? {
            [1] | [2] => Some(Family::MasterSwitch), // masterSwitchV1, masterSwitchV2
            [4] => Some(Family::MasterSwitchPlus),   // masterSwitchMSP
            [5] => Some(Family::Rpdu),               // masterSwitchrPDU
            [6] => Some(Family::Rpdu2),              // masterSwitchrPDU2
            _ => None,
        }
    }

    /// The sysObjectID a unit of this family reports (for the emulator and tests).
    pub fn sys_object_id(self) -> Oid {
        apc(&[
            1,
            3,
            4,
            match self {
                Family::MasterSwitch => 2,
                Family::MasterSwitchPlus => 4,
                Family::Rpdu => 5,
                Family::Rpdu2 => 6,
            },
        ])
    }

    /// Whether outlets are addressed as `unit:outlet`.
    pub fn chained(self) -> bool {
        self == Family::MasterSwitchPlus
    }

    /// Where the unit says how many switched outlets it has (PowerNet-MIB): a walk
    /// that ends early (an agent losing its last rows) lists fewer, and the count
    /// tells.
    pub fn outlet_count(self) -> OutletCount {
        match self {
            Family::Rpdu => OutletCount::Total {
                oid: apc(&[1, 1, 12, 3, 1, 3, 0]),
                object: "rPDUOutletDevNumCntrlOutlets",
            },
            Family::MasterSwitch => OutletCount::Total {
                oid: apc(&[1, 1, 4, 4, 1, 0]),
                object: "sPDUOutletControlTableSize",
            },
            // rPDU2DeviceTableSize PDUs (a chain), each with
            // rPDU2DevicePropertiesNumSwitchedOutlets; their outlets are numbered
            // through one index.
            Family::Rpdu2 => OutletCount::PerUnit {
                units: apc(&[1, 1, 26, 3, 0]),
                column: apc(&[1, 1, 26, 4, 2, 1, 5]),
                object: "rPDU2DevicePropertiesNumSwitchedOutlets",
                by_unit: false,
            },
            // sPDUMasterStatusMSPTableSize units, each with
            // sPDUMasterStatusMSPOutletCount; rows are per unit.
            Family::MasterSwitchPlus => OutletCount::PerUnit {
                units: apc(&[1, 1, 6, 4, 1, 0]),
                column: apc(&[1, 1, 6, 4, 2, 1, 3]),
                object: "sPDUMasterStatusMSPOutletCount",
                by_unit: true,
            },
        }
    }

    /// The read-only column of outlet names we walk to list outlets.
    pub fn name_column(self) -> Oid {
        match self {
            // rPDUOutletStatusOutletName (rPDUOutletStatusEntry 2)
            Family::Rpdu => apc(&[1, 1, 12, 3, 5, 1, 1, 2]),
            // rPDU2OutletSwitchedStatusName (rPDU2OutletSwitchedStatusEntry 3)
            Family::Rpdu2 => apc(&[1, 1, 26, 9, 2, 3, 1, 3]),
            // sPDUOutletCtlName (sPDUOutletControlEntry 4)
            Family::MasterSwitch => apc(&[1, 1, 4, 4, 2, 1, 4]),
            // sPDUOutletStatusMSPOutletName (sPDUOutletStatusMSPEntry 4), rows .unit.1.outlet
            Family::MasterSwitchPlus => apc(&[1, 1, 6, 7, 1, 1, 4]),
        }
    }

    /// The column's object for an outlet. A MasterSwitch Plus outlet `unit:outlet`
    /// is `.unit.1.outlet` (the middle part the module, always 1): what the units
    /// answer and fence_apc_snmp writes (`.%d.1.%d`), although the PowerNet-MIB's
    /// INDEX clause names two parts only.
    fn with(self, column: Oid, instance: &[u32]) -> Oid {
        let mut oid = column;
        match (self, instance) {
            (Family::MasterSwitchPlus, [unit, outlet]) => oid.extend([*unit, MSP_MODULE, *outlet]),
            _ => oid.extend_from_slice(instance),
        }
        oid
    }

    /// The object holding the outlet's power state.
    pub fn state_oid(self, instance: &[u32]) -> Oid {
        let column = match self {
            // rPDUOutletStatusOutletState: outletStatusOn(1), outletStatusOff(2)
            Family::Rpdu => apc(&[1, 1, 12, 3, 5, 1, 1, 4]),
            // rPDU2OutletSwitchedStatusState: off(1), on(2)
            Family::Rpdu2 => apc(&[1, 1, 26, 9, 2, 3, 1, 5]),
            // sPDUOutletCtl read: outletOn(1), outletOff(2), outletReboot(3),
            // outletUnknown(4), ...WithDelay(5..7)
            Family::MasterSwitch => apc(&[1, 1, 4, 4, 2, 1, 3]),
            // sPDUOutletStatusMSPOutletState: outletStatusMSPOn(1), outletStatusMSPOff(2)
            Family::MasterSwitchPlus => apc(&[1, 1, 6, 7, 1, 1, 5]),
        };
        self.with(column, instance)
    }

    /// The object saying whether a command is still pending on the outlet.
    pub fn pending_oid(self, instance: &[u32]) -> Oid {
        let column = match self {
            // rPDUOutletStatusCommandPending: outletStatusCommandPending(1), ...No...(2)
            Family::Rpdu => apc(&[1, 1, 12, 3, 5, 1, 1, 5]),
            // rPDU2OutletSwitchedStatusCommandPending: commandPending(1), noCommandPending(2),
            // commandPendingUnknown(3)
            Family::Rpdu2 => apc(&[1, 1, 26, 9, 2, 3, 1, 6]),
            // sPDUOutletPending: commandPending(1), noCommandPending(2), commandPendingUnknown(3)
            Family::MasterSwitch => apc(&[1, 1, 4, 4, 2, 1, 2]),
            // sPDUOutletStatusMSPCommandPending: ...MSPCommandPending(1), ...MSPNoCommandPending(2)
            Family::MasterSwitchPlus => apc(&[1, 1, 6, 7, 1, 1, 6]),
        };
        self.with(column, instance)
    }

    /// The object a command is written to.
    pub fn control_oid(self, instance: &[u32]) -> Oid {
        let column = match self {
            // rPDUOutletControlOutletCommand (rPDUOutletControlEntry 4)
            Family::Rpdu => apc(&[1, 1, 12, 3, 3, 1, 1, 4]),
            // rPDU2OutletSwitchedControlCommand (rPDU2OutletSwitchedControlEntry 5)
            Family::Rpdu2 => apc(&[1, 1, 26, 9, 2, 4, 1, 5]),
            // sPDUOutletCtl (sPDUOutletControlEntry 3)
            Family::MasterSwitch => apc(&[1, 1, 4, 4, 2, 1, 3]),
            // sPDUOutletControlMSPOutletCommand (sPDUOutletControlMSPEntry 5), at
            // .unit.1.outlet as fence_apc_snmp writes it (see `with`).
            Family::MasterSwitchPlus => apc(&[1, 1, 6, 5, 1, 1, 5]),
        };
        self.with(column, instance)
    }

    /// A harmless writable object of the outlet: its configured name. `check` writes
    /// the name back unchanged to prove the credentials may write.
    pub fn writable_name_oid(self, instance: &[u32]) -> Oid {
        let column = match self {
            // rPDUOutletConfigOutletName (rPDUOutletConfigEntry 2), read-write
            Family::Rpdu => apc(&[1, 1, 12, 3, 4, 1, 1, 2]),
            // rPDU2OutletSwitchedConfigName (rPDU2OutletSwitchedConfigEntry 3), read-write
            Family::Rpdu2 => apc(&[1, 1, 26, 9, 2, 1, 1, 3]),
            // sPDUOutletName (sPDUOutletConfigEntry 3), read-write
            Family::MasterSwitch => apc(&[1, 1, 4, 5, 2, 1, 3]),
            // sPDUOutletConfigMSPallOutletName (sPDUOutletConfigMSPallEntry 4), read-write
            Family::MasterSwitchPlus => apc(&[1, 1, 6, 6, 1, 1, 1, 4]),
        };
        self.with(column, instance)
    }

    /// The value written for a command.
    pub fn command_value(self, command: Command) -> i64 {
        match (self, command) {
            // immediateOn(1), immediateOff(2), immediateReboot(3) in rPDU, rPDU2;
            // outletOn(1), outletOff(2), outletReboot(3) in sPDUOutletCtl.
            (Family::Rpdu | Family::Rpdu2 | Family::MasterSwitch, Command::On) => 1,
            (Family::Rpdu | Family::Rpdu2 | Family::MasterSwitch, Command::Off) => 2,
            (Family::Rpdu | Family::Rpdu2 | Family::MasterSwitch, Command::Reboot) => 3,
            // immediateOnMSP(1), immediateOffMSP(3), immediateRebootMSP(5)
            (Family::MasterSwitchPlus, Command::On) => 1,
            (Family::MasterSwitchPlus, Command::Off) => 3,
            (Family::MasterSwitchPlus, Command::Reboot) => 5,
        }
    }

    /// Decodes the state object's value; anything unexpected is `Unknown`, never a guess.
    pub fn decode_state(self, value: i64) -> PowerState {
        match (self, value) {
            (Family::Rpdu | Family::MasterSwitch | Family::MasterSwitchPlus, 1) => PowerState::On,
            (Family::Rpdu | Family::MasterSwitch | Family::MasterSwitchPlus, 2) => PowerState::Off,
            (Family::Rpdu2, 1) => PowerState::Off,
            (Family::Rpdu2, 2) => PowerState::On,
            _ => PowerState::Unknown,
        }
    }

    /// Whether the pending object's value says a command is still under way (or the
    /// unit does not know, which we treat alike).
    pub fn decode_pending(self, value: i64) -> bool {
        match self {
            Family::Rpdu | Family::MasterSwitchPlus => value == 1,
            Family::Rpdu2 | Family::MasterSwitch => value == 1 || value == 3,
        }
    }

    /// The outlet a row of [`Family::name_column`] is about: `None` for an object
    /// outside the column, an error for a row whose index has another shape (never
    /// skipped: an outlet left out of a listing could be the second power supply of
    /// a node named like the first).
    pub fn instance_of(self, name: &[u32]) -> Option<Result<Instance, String>> {
        let rest = name.strip_prefix(&self.name_column()[..])?;
        Some(match (self, rest) {
            (Family::MasterSwitchPlus, [unit, MSP_MODULE, outlet]) => Ok(vec![*unit, *outlet]),
            (Family::MasterSwitchPlus, _) => Err(format!(
                "outlet table row .{} is not unit.{MSP_MODULE}.outlet",
                rest.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            )),
            (_, [outlet]) => Ok(vec![*outlet]),
            _ => Err(format!(
                "outlet table row .{} is not one outlet number",
                rest.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            )),
        })
    }
}

/// How a family tells its outlet count ([`Family::outlet_count`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutletCount {
    /// One scalar: every outlet of the unit.
    Total { oid: Oid, object: &'static str },
    /// A scalar counting units, and a column (indexed by unit) counting each one's
    /// outlets; `by_unit`: the outlet table's rows name their unit, and each unit's
    /// rows are checked against its own count (else the total against the sum).
    PerUnit {
        units: Oid,
        column: Oid,
        object: &'static str,
        by_unit: bool,
    },
}

/// The error for a sysObjectID we have no profile for.
pub fn unknown_family_message(dotted: &str) -> String {
    format!(
        "sysObjectID {dotted} is not an APC family fencekit knows, so the MasterSwitch \
         outlet table was tried (as fence_apc_snmp does); if the unit has another \
         PowerNet-MIB outlet table, force a profile with `profile=` one of rpdu, rpdu2, \
         masterswitch, masterswitchplus"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencekit_snmp::ber;
    use proptest::prelude::*;

    #[test]
    fn sys_object_ids_pick_the_powernet_families() {
        for family in Family::ALL {
            assert_eq!(
                Family::from_sys_object_id(&family.sys_object_id()),
                Some(family)
            );
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
        let rpdu = ber::parse_dotted(".1.3.6.1.4.1.318.1.3.4.5").unwrap();
        assert_eq!(Family::from_sys_object_id(&rpdu), Some(Family::Rpdu));
        let ups = ber::parse_dotted(".1.3.6.1.4.1.318.1.3.2.12").unwrap();
        assert_eq!(Family::from_sys_object_id(&ups), None);
    }

    #[test]
    fn rpdu_objects_are_the_ones_fence_apc_snmp_uses() {
        let f = Family::Rpdu;
        assert_eq!(
            ber::dotted(&f.control_oid(&[3])),
            ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3"
        );
        assert_eq!(
            ber::dotted(&f.state_oid(&[3])),
            ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3"
        );
        assert_eq!(
            ber::dotted(&f.name_column()),
            ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.2"
        );
        assert_eq!(f.command_value(Command::Off), 2);
    }

    #[test]
    fn masterswitch_plus_turns_off_with_three_not_two() {
        assert_eq!(Family::MasterSwitchPlus.command_value(Command::Off), 3);
        assert_eq!(Family::MasterSwitchPlus.command_value(Command::Reboot), 5);
        assert_eq!(
            ber::dotted(&Family::MasterSwitchPlus.control_oid(&[2, 7])),
            ".1.3.6.1.4.1.318.1.1.6.5.1.1.5.2.1.7"
        );
    }

    #[test]
    fn rpdu2_counts_off_as_one() {
        assert_eq!(Family::Rpdu2.decode_state(1), PowerState::Off);
        assert_eq!(Family::Rpdu2.decode_state(2), PowerState::On);
        assert_eq!(Family::Rpdu.decode_state(1), PowerState::On);
    }

    #[test]
    fn instances_come_from_name_rows_of_the_right_shape() {
        let msp = Family::MasterSwitchPlus;
        let row = |column: Oid, rest: &[u32]| {
            let mut row = column;
            row.extend_from_slice(rest);
            row
        };
        assert_eq!(
            msp.instance_of(&row(msp.name_column(), &[2, 1, 5])),
            Some(Ok(vec![2, 5]))
        );
        assert_eq!(
            Family::Rpdu.instance_of(&row(msp.name_column(), &[2, 1, 5])),
            None
        );
        // Rows of another shape are errors, never skipped.
        for rest in [&[2, 5][..], &[2, 2, 5], &[2], &[2, 1, 5, 1]] {
            assert!(
                matches!(msp.instance_of(&row(msp.name_column(), rest)), Some(Err(_))),
                "{rest:?}"
            );
        }
        assert!(matches!(
            Family::Rpdu.instance_of(&row(Family::Rpdu.name_column(), &[1, 2])),
            Some(Err(_))
        ));
    }

    #[test]
    fn masterswitch_plus_objects_are_the_ones_fence_apc_snmp_uses() {
        let f = Family::MasterSwitchPlus;
        assert_eq!(
            ber::dotted(&f.state_oid(&[2, 7])),
            ".1.3.6.1.4.1.318.1.1.6.7.1.1.5.2.1.7"
        );
        assert_eq!(
            ber::dotted(&f.name_column()),
            ".1.3.6.1.4.1.318.1.1.6.7.1.1.4"
        );
    }

    #[test]
    fn an_unknown_sys_object_id_error_names_it_and_the_way_out() {
        let text = unknown_family_message(".1.3.6.1.4.1.9.1.1");
        assert!(text.contains(".1.3.6.1.4.1.9.1.1"));
        assert!(text.contains("profile="));
    }

    proptest! {
        #[test]
        fn state_decoding_never_guesses(value in any::<i64>()) {
            for family in Family::ALL {
                let state = family.decode_state(value);
                if !(1..=2).contains(&value) {
                    prop_assert_eq!(state, PowerState::Unknown);
                }
            }
        }

        #[test]
        fn family_lookup_never_panics(oid in proptest::collection::vec(any::<u32>(), 0..16)) {
            let _ = Family::from_sys_object_id(&oid);
            for family in Family::ALL { let _ = family.instance_of(&oid); }
        }
    }
}

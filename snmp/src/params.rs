//! The SNMP parameter group every SNMP plugin takes, with fence-agents' names, short
//! options and aliases (`fencing_snmp.py` and its agents), declared once here and
//! read by [`crate::Credentials::from_params`]. Secrets (`community`, `password`,
//! `snmp_priv_passwd`) come with the schema's secret forms (`_file`, `_script`,
//! `_env`).
//!
//! A plugin whose fence-agents agent gives one of these a default of its own
//! (fence_apc_snmp's version 1, fence_ifmib's 2c) sets it with the schema's
//! `.default(...)` builder on the constant here; the name, short option, aliases and
//! secrecy stay as declared.

use fencekit_core::device_params;
use fencekit_core::schema::{ParamSpec, ParamType};

use crate::credentials::{AUTH_PROTOCOLS, PRIV_PROTOCOLS};

/// `community` (`-c`): the SNMPv1/v2c community.
pub const COMMUNITY: ParamSpec =
    ParamSpec::new("community", "SNMPv1/v2c community with write access")
        .short('c')
        .secret();

/// `snmp_version` (`-d`).
pub const SNMP_VERSION: ParamSpec = ParamSpec::new("snmp_version", "SNMP version: 1, 2c or 3")
    .short('d')
    .ty(ParamType::Select(&["1", "2c", "3"]));

/// `username` (`-l`, alias `login`): the SNMPv3 security name.
pub const USERNAME: ParamSpec = device_params::username("SNMPv3 user (security name)");

/// `password` (`-p`, alias `passwd`): the SNMPv3 authentication pass phrase.
pub const PASSWORD: ParamSpec =
    device_params::password("SNMPv3 authentication pass phrase (at least 8 characters)");

/// `snmp_auth_prot` (`-b`).
pub const SNMP_AUTH_PROT: ParamSpec = ParamSpec::new(
    "snmp_auth_prot",
    "SNMPv3 authentication protocol (MD5 when not given)",
)
.short('b')
.ty(ParamType::Select(AUTH_PROTOCOLS));

/// `snmp_sec_level` (`-E`).
pub const SNMP_SEC_LEVEL: ParamSpec = ParamSpec::new(
    "snmp_sec_level",
    "SNMPv3 security level (when not given: authPriv with a privacy pass phrase, \
     authNoPriv with a password, else noAuthNoPriv)",
)
.short('E')
.ty(ParamType::Select(&[
    "noAuthNoPriv",
    "authNoPriv",
    "authPriv",
]));

/// `snmp_priv_prot` (`-B`).
pub const SNMP_PRIV_PROT: ParamSpec = ParamSpec::new(
    "snmp_priv_prot",
    "SNMPv3 privacy protocol (DES when not given; AES is AES-128; AES192C/AES256C \
     use the key extension Cisco and net-snmp's *C variants use)",
)
.short('B')
.ty(ParamType::Select(PRIV_PROTOCOLS));

/// `snmp_priv_passwd` (`-P`).
pub const SNMP_PRIV_PASSWD: ParamSpec = ParamSpec::new(
    "snmp_priv_passwd",
    "SNMPv3 privacy pass phrase (at least 8 characters)",
)
.short('P')
.secret();

/// The whole group, in fence-agents' order, for a schema that takes it as it is.
pub const GROUP: &[ParamSpec] = &[
    COMMUNITY,
    SNMP_VERSION,
    USERNAME,
    PASSWORD,
    SNMP_AUTH_PROT,
    SNMP_SEC_LEVEL,
    SNMP_PRIV_PROT,
    SNMP_PRIV_PASSWD,
];

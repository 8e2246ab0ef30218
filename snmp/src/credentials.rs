//! How a manager proves who it is to an SNMP agent: a community (SNMPv1/v2c) or an
//! SNMPv3 user of the user-based security model (RFC 3414) at one of its security
//! levels, and the reading of those from the shared parameter group
//! ([`crate::params`]) with fence-agents' meanings.

use fencekit_core::{DeviceError, Params, Secret};
use snmp2::v3;

/// SNMP message versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2c,
    V3,
}

/// USM authentication protocols (RFC 3414, RFC 7860).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AuthProtocol {
    pub(crate) fn snmp2(self) -> v3::AuthProtocol {
        match self {
            AuthProtocol::Md5 => v3::AuthProtocol::Md5,
            AuthProtocol::Sha1 => v3::AuthProtocol::Sha1,
            AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
            AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
            AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
            AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
        }
    }
}

/// USM privacy protocols. AES-192/256 come in two key-extension flavours: the
/// draft-blumenthal-aes-usm one (net-snmp's `AES192`/`AES256`) and the one Cisco
/// and others use (net-snmp's `AES192C`/`AES256C`, after Reeder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    Des,
    Aes128,
    Aes192,
    Aes256,
    Aes192Reeder,
    Aes256Reeder,
}

impl PrivProtocol {
    pub(crate) fn snmp2(self) -> (v3::Cipher, v3::KeyExtension) {
        match self {
            PrivProtocol::Des => (v3::Cipher::Des, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes128 => (v3::Cipher::Aes128, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes192 => (v3::Cipher::Aes192, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes256 => (v3::Cipher::Aes256, v3::KeyExtension::Blumenthal),
            PrivProtocol::Aes192Reeder => (v3::Cipher::Aes192, v3::KeyExtension::Reeder),
            PrivProtocol::Aes256Reeder => (v3::Cipher::Aes256, v3::KeyExtension::Reeder),
        }
    }
}

/// USM security levels (RFC 3411 §3.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecLevel {
    NoAuthNoPriv,
    AuthNoPriv,
    AuthPriv,
}

impl SecLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SecLevel::NoAuthNoPriv => "noAuthNoPriv",
            SecLevel::AuthNoPriv => "authNoPriv",
            SecLevel::AuthPriv => "authPriv",
        }
    }
}

/// An SNMPv3 user.
#[derive(Debug, Clone)]
pub struct Usm {
    pub user: String,
    pub level: SecLevel,
    pub auth: AuthProtocol,
    pub auth_pass: Option<Secret>,
    pub privacy: PrivProtocol,
    pub priv_pass: Option<Secret>,
}

/// How we prove who we are.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// SNMPv1 or v2c.
    Community {
        version: Version,
        community: Secret,
    },
    Usm(Usm),
}

impl Credentials {
    /// Reads the SNMP parameter group ([`crate::params::GROUP`]) as fence-agents'
    /// SNMP agents do. `factory_community` is what the device's fence-agents agent
    /// assumes when no community is given (fence_apc_snmp: APC's `private`); `None`
    /// makes a community required for SNMPv1/v2c. `snmp_version` is read with the
    /// default the plugin's schema gives it (fence_apc_snmp 1, fence_ifmib 2c), and
    /// SNMPv1 when it gives none.
    pub fn from_params(
        params: &Params,
        factory_community: Option<&'static str>,
    ) -> Result<Credentials, DeviceError> {
        let config = |text: String| DeviceError::Failed(text);
        let version = match params.text("snmp_version").unwrap_or("1") {
            "1" => Version::V1,
            "2c" | "2C" => Version::V2c,
            "3" => Version::V3,
            other => {
                return Err(config(format!(
                    "parameter `snmp_version`: {other} is not 1, 2c or 3"
                )))
            }
        };
        if version != Version::V3 {
            // fence-agents ignore these below SNMPv3 and speak v1/v2c, the
            // community in clear: a configuration that asks for SNMPv3's
            // security is refused rather than sent with less.
            let named = ["snmp_sec_level", "snmp_auth_prot", "snmp_priv_prot"]
                .into_iter()
                .filter(|name| params.text(name).is_some())
                .chain(
                    params
                        .secret("snmp_priv_passwd")
                        .map(|_| "snmp_priv_passwd"),
                )
                .next();
            if let Some(name) = named {
                return Err(config(format!(
                    "parameter `{name}` is SNMPv3's, but snmp_version is {}: set \
                     snmp_version=3 to use it, or leave it out (fence-agents ignore it and \
                     speak SNMPv{0}, the community in clear)",
                    if version == Version::V1 { "1" } else { "2c" }
                )));
            }
        }
        Ok(match version {
            Version::V1 | Version::V2c => Credentials::Community {
                version,
                community: match (params.secret("community"), factory_community) {
                    (Some(community), _) => community.clone(),
                    // The fence-agents agent assumes the factory write community;
                    // so do we, so that its configurations work unchanged, but say
                    // so: a device still on its factory community is a risk.
                    (None, Some(factory)) => {
                        tracing::warn!(
                            device = %params.text("ip").unwrap_or("?"),
                            "no `community` given: using the device's factory default, as \
                             fence-agents do; set community (or community_file)"
                        );
                        Secret::new(factory)
                    }
                    (None, None) => {
                        return Err(config(format!(
                            "parameter `community` is required for SNMP version {}",
                            if version == Version::V1 { "1" } else { "2c" }
                        )))
                    }
                },
            },
            Version::V3 => {
                let user = params
                    .text("username")
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| config("parameter `username` is required for SNMPv3".into()))?
                    .to_string();
                let auth_pass = params.secret("password").cloned();
                let priv_pass = params.secret("snmp_priv_passwd").cloned();
                let level = match params.text("snmp_sec_level") {
                    Some(text) => parse_level(text)?,
                    // As fence-agents infer it: privacy pass phrase → authPriv,
                    // password → authNoPriv, neither → noAuthNoPriv.
                    None if priv_pass.is_some() => SecLevel::AuthPriv,
                    None if auth_pass.is_some() => SecLevel::AuthNoPriv,
                    None => SecLevel::NoAuthNoPriv,
                };
                Credentials::Usm(Usm {
                    user,
                    level,
                    auth: parse_auth(params.text("snmp_auth_prot").unwrap_or("MD5"))?,
                    auth_pass,
                    privacy: parse_priv(params.text("snmp_priv_prot").unwrap_or("DES"))?,
                    priv_pass,
                })
            }
        })
    }

    pub fn version(&self) -> Version {
        match self {
            Credentials::Community { version, .. } => *version,
            Credentials::Usm(_) => Version::V3,
        }
    }

    /// The SNMPv3 user, or "" for a community.
    pub(crate) fn user(&self) -> &str {
        match self {
            Credentials::Usm(usm) => &usm.user,
            Credentials::Community { .. } => "",
        }
    }
}

/// The `snmp_auth_prot` values, as net-snmp's `-a` spells them.
pub const AUTH_PROTOCOLS: &[&str] = &["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"];
/// The `snmp_priv_prot` values, as net-snmp's `-x` spells them.
pub const PRIV_PROTOCOLS: &[&str] = &["DES", "AES", "AES192", "AES256", "AES192C", "AES256C"];

fn parse_level(text: &str) -> Result<SecLevel, DeviceError> {
    match text.to_ascii_lowercase().as_str() {
        "noauthnopriv" => Ok(SecLevel::NoAuthNoPriv),
        "authnopriv" => Ok(SecLevel::AuthNoPriv),
        "authpriv" => Ok(SecLevel::AuthPriv),
        _ => Err(DeviceError::Failed(format!(
            "parameter `snmp_sec_level`: {text} is not noAuthNoPriv, authNoPriv or authPriv"
        ))),
    }
}

fn parse_auth(text: &str) -> Result<AuthProtocol, DeviceError> {
    match text.to_ascii_uppercase().replace('-', "").as_str() {
        "MD5" => Ok(AuthProtocol::Md5),
        "SHA" | "SHA1" => Ok(AuthProtocol::Sha1),
        "SHA224" => Ok(AuthProtocol::Sha224),
        "SHA256" => Ok(AuthProtocol::Sha256),
        "SHA384" => Ok(AuthProtocol::Sha384),
        "SHA512" => Ok(AuthProtocol::Sha512),
        _ => Err(DeviceError::Failed(format!(
            "parameter `snmp_auth_prot`: {text} is not one of {}",
            AUTH_PROTOCOLS.join(", ")
        ))),
    }
}

fn parse_priv(text: &str) -> Result<PrivProtocol, DeviceError> {
    match text.to_ascii_uppercase().replace('-', "").as_str() {
        "DES" => Ok(PrivProtocol::Des),
        "AES" | "AES128" => Ok(PrivProtocol::Aes128),
        "AES192" => Ok(PrivProtocol::Aes192),
        "AES256" => Ok(PrivProtocol::Aes256),
        "AES192C" => Ok(PrivProtocol::Aes192Reeder),
        "AES256C" => Ok(PrivProtocol::Aes256Reeder),
        _ => Err(DeviceError::Failed(format!(
            "parameter `snmp_priv_prot`: {text} is not one of {}",
            PRIV_PROTOCOLS.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::GROUP;
    use fencekit_core::schema::{validate, Origin, PluginKind, RawParam, Schema, Unknown};

    const SCHEMA: Schema = Schema {
        plugin: "snmp-test",
        kind: PluginKind::Power,
        summary: "",
        description: "",
        url: "",
        multi_plug: false,
        plug_optional: true,
        commands: &[],
        params: GROUP,
        open: false,
    };

    fn read(
        pairs: &[(&str, &str)],
        factory: Option<&'static str>,
    ) -> Result<Credentials, DeviceError> {
        let raw: Vec<RawParam> = pairs
            .iter()
            .map(|(k, v)| RawParam::text(*k, *v, Origin::new("test")))
            .collect();
        let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .unwrap()
            .params;
        Credentials::from_params(&params, factory)
    }

    fn credentials(pairs: &[(&str, &str)], factory: Option<&'static str>) -> Credentials {
        read(pairs, factory).unwrap()
    }

    #[test]
    fn the_security_level_is_inferred_as_fence_agents_do() {
        let level = |pairs: &[(&str, &str)]| match credentials(pairs, None) {
            Credentials::Usm(usm) => usm.level,
            other => panic!("not v3: {other:?}"),
        };
        let v3 = [("snmp_version", "3"), ("username", "u")];
        assert_eq!(level(&v3), SecLevel::NoAuthNoPriv);
        assert_eq!(
            level(&[v3[0], v3[1], ("password", "12345678")]),
            SecLevel::AuthNoPriv
        );
        assert_eq!(
            level(&[
                v3[0],
                v3[1],
                ("password", "12345678"),
                ("snmp_priv_passwd", "87654321")
            ]),
            SecLevel::AuthPriv
        );
    }

    #[test]
    fn snmpv3_security_below_snmpv3_is_refused_never_dropped() {
        let refused =
            |pairs: &[(&str, &str)]| read(pairs, Some("private")).unwrap_err().to_string();
        for (name, value) in [
            ("snmp_sec_level", "authPriv"),
            ("snmp_auth_prot", "SHA"),
            ("snmp_priv_prot", "AES"),
            ("snmp_priv_passwd", "87654321"),
        ] {
            let err = refused(&[(name, value)]);
            assert!(
                err.contains(name) && err.contains("snmp_version=3"),
                "{err}"
            );
            let err = refused(&[("snmp_version", "2c"), ("community", "c"), (name, value)]);
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn fence_agents_aliases_and_spellings_are_taken() {
        match credentials(
            &[
                ("snmp_version", "3"),
                ("login", "alice"),
                ("passwd", "authpass1"),
                ("snmp_auth_prot", "sha"),
                ("snmp_priv_prot", "AES256C"),
            ],
            None,
        ) {
            Credentials::Usm(usm) => {
                assert_eq!(usm.user, "alice");
                assert_eq!(usm.auth, AuthProtocol::Sha1);
                assert_eq!(usm.privacy, PrivProtocol::Aes256Reeder);
            }
            other => panic!("not v3: {other:?}"),
        }
    }

    #[test]
    fn a_missing_community_is_the_factory_one_only_where_the_device_has_one() {
        match credentials(&[("snmp_version", "2c")], Some("private")) {
            Credentials::Community { version, community } => {
                assert_eq!(version, Version::V2c);
                assert_eq!(community.expose(), "private");
            }
            other => panic!("not a community: {other:?}"),
        }
        let raw = [RawParam::text("snmp_version", "2c", Origin::new("test"))];
        let params = validate(&[&SCHEMA], &raw, Unknown::Reject, None)
            .unwrap()
            .params;
        let err = Credentials::from_params(&params, None).unwrap_err();
        assert!(err.to_string().contains("`community` is required"), "{err}");
    }
}

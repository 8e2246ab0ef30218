//! The manager's side of the user-based security model (RFC 3414): the agent's
//! engine as we know it (localised keys, snmpEngineBoots/Time and the instant we
//! learnt them), requests signed and encrypted with it, answers verified and read,
//! and Report PDUs told apart by their usmStats counter.
//!
//! `snmp2` does the cryptography (key localisation, HMAC, DES/AES) and decodes
//! verified answers; the plaintext header and Report reading are [`crate::ber`]'s,
//! because `snmp2` does not say which USM check an agent failed us on. No clock:
//! every function that needs the time is given it.

use fencekit_core::{DeviceError, Instant, Secret};
use snmp2::v3;

use crate::ber::{self, ReportKind};
use crate::credentials::{Credentials, SecLevel, Usm};
use crate::message::{response_of, Response};

/// The SNMPv3 engine state a manager keeps between requests and operations.
#[derive(Clone)]
pub struct Engine {
    security: v3::Security,
    engine_id: Vec<u8>,
    boots: i64,
    time: i64,
    /// When we learnt `time`: the agent's clock now is `time` plus what has passed.
    at: Instant,
}

/// The snmpEngineID, boots and time an agent put in a message's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentClock {
    pub engine_id: Vec<u8>,
    pub boots: i64,
    pub time: i64,
}

/// What one SNMPv3 datagram meant for the request we wait on.
#[derive(Debug)]
pub(crate) enum Reply {
    Pdu(Response),
    Report(ReportKind),
}

impl Engine {
    /// Localises the user's keys to the discovered engine (RFC 3414 §2.6).
    pub(crate) fn new(
        usm: &Usm,
        engine_id: &[u8],
        boots: i64,
        time: i64,
        now: Instant,
    ) -> Result<Engine, DeviceError> {
        let bad = |what: &str| DeviceError::Failed(format!("SNMPv3 user {}: {what}", usm.user));
        // Our copies of the pass phrases are wiped when dropped; `snmp2` keeps its
        // own inside `v3::Security` (moved in, not copied).
        let pass = |secret: &Option<Secret>,
                    name: &str|
         -> Result<zeroize::Zeroizing<Vec<u8>>, DeviceError> {
            let secret = secret.as_ref().ok_or_else(|| {
                bad(&format!(
                    "security level {} needs `{name}`",
                    usm.level.as_str()
                ))
            })?;
            // RFC 3414 §11.2 and net-snmp: pass phrases have at least 8 characters
            // (an empty one would also break key localisation).
            if secret.len() < 8 {
                return Err(bad(&format!("`{name}` must have at least 8 characters")));
            }
            Ok(zeroize::Zeroizing::new(secret.expose().as_bytes().to_vec()))
        };
        let auth_pass = match usm.level {
            SecLevel::NoAuthNoPriv => zeroize::Zeroizing::new(Vec::new()),
            _ => pass(&usm.auth_pass, "password")?,
        };
        let mut security =
            v3::Security::new(usm.user.as_bytes(), &auth_pass).with_auth_protocol(usm.auth.snmp2());
        security = match usm.level {
            SecLevel::NoAuthNoPriv => security.with_auth(v3::Auth::NoAuthNoPriv),
            SecLevel::AuthNoPriv => security.with_auth(v3::Auth::AuthNoPriv),
            SecLevel::AuthPriv => {
                let (cipher, extension) = usm.privacy.snmp2();
                security
                    .with_auth(v3::Auth::AuthPriv {
                        cipher,
                        privacy_password: std::mem::take(&mut *pass(
                            &usm.priv_pass,
                            "snmp_priv_passwd",
                        )?),
                    })
                    .with_key_extension_method(extension)
            }
        };
        let security = security
            .with_engine_id(engine_id)
            .map_err(|e| bad(&format!("cannot derive keys: {e}")))?
            .with_engine_boots_and_time(boots, time);
        Ok(Engine {
            security,
            engine_id: engine_id.to_vec(),
            boots,
            time,
            at: now,
        })
    }

    /// Takes the boots/time an agent sent (in a Report or a verified Response).
    /// `false` when the engine ID is another: a new agent (or a replaced card),
    /// whose engine must be discovered again.
    pub(crate) fn resync(&mut self, clock: &AgentClock, now: Instant) -> bool {
        if clock.engine_id != self.engine_id {
            return false;
        }
        self.boots = clock.boots;
        self.time = clock.time;
        self.at = now;
        true
    }

    /// The keys with the agent's clock as it is `now` (RFC 3414 §2.3): what we
    /// send, and what an answer is checked against, so that an engine learnt
    /// minutes ago stays in the 150-second time window.
    fn security_at(&self, now: Instant) -> v3::Security {
        let elapsed = i64::try_from(now.saturating_duration_since(self.at).as_secs()).unwrap_or(0);
        self.security
            .clone()
            .with_engine_boots_and_time(self.boots, self.time.saturating_add(elapsed))
    }

    /// Encodes a request with the user's keys: our plaintext template, read back by
    /// `snmp2` and written again with authentication and privacy.
    pub(crate) fn encode(
        &self,
        id: i32,
        user: &str,
        pdu: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, DeviceError> {
        let fail =
            |e: snmp2::Error| DeviceError::Failed(format!("cannot encode an SNMPv3 request: {e}"));
        let template = ber::v3_plain_message(
            id,
            ber::FLAG_REPORTABLE,
            &self.engine_id,
            0,
            0,
            user.as_bytes(),
            pdu,
        );
        let mut reader = v3::Security::new(b"", b"")
            .with_auth(v3::Auth::NoAuthNoPriv)
            .with_engine_id(&self.engine_id)
            .map_err(fail)?;
        let parsed =
            snmp2::Pdu::from_bytes_with_security(&template, Some(&mut reader)).map_err(fail)?;
        parsed
            .to_bytes_with_security(Some(&self.security_at(now)))
            .map_err(fail)
    }

    /// Reads an SNMPv3 answer to request `id`: a plaintext Report is classified from
    /// its header; anything else is verified and decrypted by `snmp2`. `None` for a
    /// datagram that answers another request (or is not SNMPv3 at all). The clock
    /// comes back with a Report that says ours is stale and with every verified
    /// answer; `Err` carries why a datagram carrying this request's msgID failed
    /// its authentication check or could not be decrypted or read: one to discard.
    pub(crate) fn classify(
        &self,
        bytes: &[u8],
        id: i32,
        now: Instant,
    ) -> Option<(Result<Reply, String>, Option<AgentClock>)> {
        let header = ber::v3_header(bytes)?;
        if header.msg_id != i64::from(id) {
            return None;
        }
        let clock = AgentClock {
            engine_id: header.engine_id.clone(),
            boots: header.boots,
            time: header.time,
        };
        if let Some(name) = &header.report {
            let kind = ber::report_kind(name);
            let stale = matches!(
                kind,
                ReportKind::NotInTimeWindow | ReportKind::UnknownEngineId
            );
            return Some((Ok(Reply::Report(kind)), stale.then_some(clock)));
        }
        let mut security = self.security_at(now);
        let copy = bytes.to_vec();
        let parsed = snmp2::Pdu::from_bytes_with_security(&copy, Some(&mut security));
        let result = match parsed {
            Ok(pdu) if pdu.message_type == snmp2::MessageType::Report => {
                let name = pdu
                    .varbinds
                    .clone()
                    .next()
                    .and_then(|(name, _)| ber::arcs(&name))
                    .unwrap_or_default();
                Ok(Reply::Report(ber::report_kind(&name)))
            }
            Ok(pdu) if pdu.message_type == snmp2::MessageType::Response => {
                Ok(Reply::Pdu(response_of(&pdu)))
            }
            Ok(_) => return None,
            Err(snmp2::Error::AuthFailure(v3::AuthErrorKind::EngineTimeMismatch)) => {
                Ok(Reply::Report(ReportKind::NotInTimeWindow))
            }
            // An authenticated answer that fails its check, or one that cannot be
            // decrypted or read, is to be discarded (RFC 3414 §3.2): a corrupted or
            // forged datagram, not the agent's word on our keys, which comes as a
            // Report.
            Err(e) => Err(e.to_string()),
        };
        // A verified answer carries the agent's clock: keep it.
        let clock = result.is_ok().then_some(clock);
        Some((result, clock))
    }
}

/// What a Report PDU says about our credentials, as the error an operator reads:
/// which parameter to check (RFC 3414 §3.2 usmStats counters).
pub(crate) fn report_error(
    credentials: &Credentials,
    host: &str,
    endpoint: &str,
    kind: ReportKind,
) -> DeviceError {
    let level = match credentials {
        Credentials::Usm(usm) => usm.level.as_str(),
        Credentials::Community { .. } => "",
    };
    let reason = match kind {
        ReportKind::UnknownUserName => {
            "the agent does not know this user (usmStatsUnknownUserNames)".to_string()
        }
        ReportKind::WrongDigest => "wrong authentication pass phrase or protocol \
             (usmStatsWrongDigests); check `password` and `snmp_auth_prot`"
            .to_string(),
        ReportKind::DecryptionError => "the agent could not decrypt the request: wrong \
             privacy pass phrase or protocol (usmStatsDecryptionErrors); check \
             `snmp_priv_passwd` and `snmp_priv_prot`"
            .to_string(),
        ReportKind::UnsupportedSecLevel => format!(
            "the user is not set up for security level {level} \
             (usmStatsUnsupportedSecLevels); check `snmp_sec_level`"
        ),
        ReportKind::NotInTimeWindow => "the agent keeps rejecting our engine time \
             (usmStatsNotInTimeWindows) even after resynchronising"
            .to_string(),
        ReportKind::UnknownEngineId => "the agent's engine ID keeps changing \
             (usmStatsUnknownEngineIDs)"
            .to_string(),
        ReportKind::Other => {
            return DeviceError::Protocol(format!(
                "{endpoint} answered with a Report PDU we did not expect"
            ))
        }
    };
    DeviceError::Auth(format!("user {} on {host}: {reason}", credentials.user()))
}

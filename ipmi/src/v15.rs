//! IPMI 1.5 LAN sessions, the parts both ends share: the authentication types
//! (IPMI v2.0 §13.6: none, MD2, MD5, straight password), the AuthCode of a
//! session-wrapped message (§22.17.1, table 22-22), and the three messages that
//! activate a session: Get Channel Authentication Capabilities in its 1.5 form
//! (§22.13), Get Session Challenge (§22.16) and Activate Session (§22.17).
//!
//! IPMI 1.5 is weak (ipmi.md §7): MD5 over a password anyone can try offline,
//! straight password in clear, none with no password at all. It is spoken only
//! when a configuration asks for it.

use md5::{Digest, Md5};
use zeroize::Zeroizing;

use crate::crypto::macs_equal;
use crate::error::CodecError;
use crate::packet::V15Packet;
use crate::wire::Reader;

/// Get Session Challenge (App, §22.16).
pub const CMD_GET_SESSION_CHALLENGE: u8 = 0x39;
/// Activate Session (App, §22.17).
pub const CMD_ACTIVATE_SESSION: u8 = 0x3a;

/// An IPMI 1.5 authentication type (§13.6, the session header's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    None = 0,
    Md2 = 1,
    Md5 = 2,
    /// "Straight password / key": the password padded to 16 bytes is the AuthCode.
    Password = 4,
}

impl AuthType {
    pub fn from_byte(byte: u8) -> Option<AuthType> {
        match byte & 0x0f {
            0 => Some(AuthType::None),
            1 => Some(AuthType::Md2),
            2 => Some(AuthType::Md5),
            4 => Some(AuthType::Password),
            _ => None,
        }
    }

    /// The name users give it (fence_ipmilan's `auth`, ipmitool's `-A`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "none",
            AuthType::Md2 => "md2",
            AuthType::Md5 => "md5",
            AuthType::Password => "password",
        }
    }

    /// The bit of this type in the "authentication type support" byte of Get
    /// Channel Authentication Capabilities (§22.13, byte 2).
    pub fn support_bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The types a support byte names, MD2 included (to say what a BMC offers).
    pub fn offered(support: u8) -> Vec<AuthType> {
        [
            AuthType::None,
            AuthType::Md2,
            AuthType::Md5,
            AuthType::Password,
        ]
        .into_iter()
        .filter(|t| support & t.support_bit() != 0)
        .collect()
    }
}

/// The password zero-padded to 16 bytes, as every 1.5 AuthCode uses it
/// (§22.17.1); a longer password cannot be used with IPMI 1.5.
pub fn password16(password: &[u8]) -> Result<Zeroizing<[u8; 16]>, CodecError> {
    if password.len() > 16 {
        return Err(CodecError::Oversized {
            what: "IPMI 1.5 password",
            len: password.len(),
            max: 16,
        });
    }
    let mut out = Zeroizing::new([0u8; 16]);
    out[..password.len()].copy_from_slice(password);
    Ok(out)
}

/// The AuthCode of `message` (the whole IPMI message, rsAddr to the last
/// checksum) sent with `session_id` and `sequence` (§22.17.1, table 22-22):
/// MD5(password ‖ session ID ‖ message ‖ sequence ‖ password) for MD5, the padded
/// password itself for straight password, none for none. MD2 is not implemented.
pub fn auth_code(
    auth: AuthType,
    password: &[u8; 16],
    session_id: u32,
    sequence: u32,
    message: &[u8],
) -> Option<[u8; 16]> {
    match auth {
        AuthType::None | AuthType::Md2 => None,
        AuthType::Password => Some(*password),
        AuthType::Md5 => {
            let mut md5 = Md5::new();
            md5.update(password);
            md5.update(session_id.to_le_bytes());
            md5.update(message);
            md5.update(sequence.to_le_bytes());
            md5.update(password);
            Some(md5.finalize().into())
        }
    }
}

/// Wraps `message` for a session with this auth type, key, ID and sequence.
pub fn seal(
    auth: AuthType,
    password: &[u8; 16],
    session_id: u32,
    sequence: u32,
    message: Vec<u8>,
) -> Result<Vec<u8>, CodecError> {
    V15Packet {
        auth_type: auth as u8,
        sequence,
        session_id,
        auth_code: auth_code(auth, password, session_id, sequence, &message),
        message,
    }
    .encode()
}

/// Whether `packet` carries auth type `auth` and the AuthCode the password gives
/// (compared in constant time, ipmi.md §7).
pub fn verify(packet: &V15Packet, auth: AuthType, password: &[u8; 16]) -> bool {
    if packet.auth_type != auth as u8 {
        return false;
    }
    let want = auth_code(
        auth,
        password,
        packet.session_id,
        packet.sequence,
        &packet.message,
    );
    match (want, packet.auth_code) {
        (None, None) => auth == AuthType::None,
        (Some(want), Some(got)) => macs_equal(&want, &got),
        _ => false,
    }
}

/// Get Channel Authentication Capabilities request in its IPMI 1.5 form: this
/// channel (0x0E) without the "v2.0 extended data" bit, and the wanted privilege.
pub fn auth_caps_request(privilege: u8) -> Vec<u8> {
    vec![0x0e, privilege & 0x0f]
}

/// What Get Channel Authentication Capabilities says about IPMI 1.5 (§22.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V15Caps {
    /// Byte 2, bits 5:0: the auth types the channel offers at that privilege.
    pub support: u8,
    /// Byte 3 bit 4: per-message authentication is disabled (only Activate
    /// Session carries an AuthCode; the session then runs with auth type none).
    pub per_message_disabled: bool,
}

impl V15Caps {
    pub fn decode(data: &[u8]) -> Result<V15Caps, CodecError> {
        let mut r = Reader::new("Get Channel Auth Capabilities reply", data);
        let _channel = r.u8()?;
        let support = r.u8()? & 0x3f;
        let status = r.u8()?;
        Ok(V15Caps {
            support,
            per_message_disabled: status & 0x10 != 0,
        })
    }
}

/// Get Session Challenge request data: the auth type, then the user name
/// zero-padded to 16 bytes (§22.16).
pub fn challenge_request(auth: AuthType, username: &[u8]) -> Result<Vec<u8>, CodecError> {
    if username.len() > 16 {
        return Err(CodecError::Oversized {
            what: "user name",
            len: username.len(),
            max: 16,
        });
    }
    let mut out = vec![auth as u8];
    out.extend_from_slice(username);
    out.resize(17, 0);
    Ok(out)
}

/// Get Session Challenge reply data: the temporary session ID and the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub temp_session_id: u32,
    pub challenge: [u8; 16],
}

impl Challenge {
    pub fn decode(data: &[u8]) -> Result<Challenge, CodecError> {
        let mut r = Reader::new("Get Session Challenge reply", data);
        Ok(Challenge {
            temp_session_id: r.u32()?,
            challenge: r.array16()?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.temp_session_id.to_le_bytes().to_vec();
        out.extend_from_slice(&self.challenge);
        out
    }
}

/// Activate Session request data (§22.17): auth type, maximum privilege, the
/// challenge, and the console's initial outbound sequence number (the number the
/// BMC starts its replies with; never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivateRequest {
    pub auth: u8,
    pub privilege: u8,
    pub challenge: [u8; 16],
    pub initial_outbound: u32,
}

impl ActivateRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.auth, self.privilege];
        out.extend_from_slice(&self.challenge);
        out.extend_from_slice(&self.initial_outbound.to_le_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<ActivateRequest, CodecError> {
        let mut r = Reader::new("Activate Session request", data);
        Ok(ActivateRequest {
            auth: r.u8()? & 0x0f,
            privilege: r.u8()? & 0x0f,
            challenge: r.array16()?,
            initial_outbound: r.u32()?,
        })
    }
}

/// Activate Session reply data (§22.17): the auth type for the rest of the
/// session, the session ID, the initial inbound sequence number (the number the
/// console starts its requests with) and the maximum privilege granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activated {
    pub auth: u8,
    pub session_id: u32,
    pub initial_inbound: u32,
    pub max_privilege: u8,
}

impl Activated {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.auth];
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&self.initial_inbound.to_le_bytes());
        out.push(self.max_privilege);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Activated, CodecError> {
        let mut r = Reader::new("Activate Session reply", data);
        Ok(Activated {
            auth: r.u8()? & 0x0f,
            session_id: r.u32()?,
            initial_inbound: r.u32()?,
            max_privilege: r.u8()? & 0x0f,
        })
    }
}

/// What the Activate Session completion codes mean (§22.17).
pub fn activate_completion_meaning(code: u8) -> &'static str {
    match code {
        0x81 => "no session slot available",
        0x82 => "no slot available for this user",
        0x83 => "no slot available to support the user at this privilege",
        0x84 => "session sequence number out of range",
        0x85 => "invalid session ID in request",
        0x86 => "requested maximum privilege exceeds the user's or channel's limit",
        _ => crate::error::completion_meaning(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Request, NETFN_APP};
    use proptest::prelude::*;

    #[test]
    fn the_md5_auth_code_is_md5_of_password_id_message_sequence_password() {
        // Recomputed by hand from table 22-22's order with an independent MD5.
        let password = password16(b"secretpw").unwrap();
        let message = [0x20, 0x18, 0xc8, 0x81, 0x04, 0x3b, 0x04, 0x3c];
        let code = auth_code(AuthType::Md5, &password, 0x0102_0304, 7, &message).unwrap();
        let mut input = password.to_vec();
        input.extend_from_slice(&[4, 3, 2, 1]);
        input.extend_from_slice(&message);
        input.extend_from_slice(&[7, 0, 0, 0]);
        input.extend_from_slice(&password[..]);
        let want: [u8; 16] = Md5::digest(&input).into();
        assert_eq!(code, want);
        assert_eq!(
            auth_code(AuthType::Password, &password, 1, 2, &message),
            Some(*password)
        );
        assert_eq!(auth_code(AuthType::None, &password, 1, 2, &message), None);
    }

    /// One `ipmitool -I lan -A MD5 -U admin -P secretpw -L OPERATOR chassis power
    /// status` (ipmitool 1.8.19) against ipmi_sim 2.0.33 on loopback, every
    /// datagram of the session as it crossed the wire; each AuthCode was also
    /// recomputed with Python's hashlib (MD5 of password ‖ session ID ‖ message ‖
    /// sequence ‖ password) and matches.
    const CAPTURED_MD5_SESSION: [&str; 8] = [
        // Activate Session request (ipmitool): temporary session ID 5, sequence 0
        "0600ff07020000000005000000f2af516c1e74091baaaee1eb10efea761d2018c8810c3a020324fa858d5ccb7ef5522dbd528a7a7be25b87bfa139",
        // Activate Session answer (ipmi_sim): session 0x82, under the temporary ID
        "0600ff07025b87bfa105000000e0a407372146d1db911952b67ec5689f12811c63200c3a0002820000000cab7f50038d",
        // Set Session Privilege Level (OPERATOR) request
        "0600ff07020cab7f5082000000db9719bb4d196998e81cf9b47f20dc5a082018c881103b0331",
        // its answer
        "0600ff07025b87bfa1820000003fbac9a1a21c87b835deaf2f270883c009811c6320103b000392",
        // Get Chassis Status request
        "0600ff070211ab7f50820000000116f902db866c8a4be926ee056b990a072000e08124015a",
        // its answer: power on
        "0600ff07026087bfa1820000008d88abb40e08768e648b71e9258779a80b81047b20240100010000ba",
        // Close Session request
        "0600ff070212ab7f5082000000739b640190e44a8f7cf563e16527adb50b2018c881283c8200000099",
        // its answer
        "0600ff07026187bfa1820000009c66f024d7be9cf66f2c5efeb9aad20708811c6320283c007c",
    ];

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn md5_auth_codes_captured_from_ipmitool_and_ipmi_sim_are_ours_byte_for_byte() {
        let password = password16(b"secretpw").unwrap();
        let other = password16(b"secretpx").unwrap();
        for (i, hex) in CAPTURED_MD5_SESSION.iter().enumerate() {
            let datagram = unhex(hex);
            let packet = V15Packet::decode(&datagram).unwrap();
            assert_eq!(packet.auth_type, AuthType::Md5 as u8, "datagram {i}");
            let code = auth_code(
                AuthType::Md5,
                &password,
                packet.session_id,
                packet.sequence,
                &packet.message,
            );
            assert_eq!(code, packet.auth_code, "datagram {i}");
            assert!(verify(&packet, AuthType::Md5, &password), "datagram {i}");
            assert!(!verify(&packet, AuthType::Md5, &other), "datagram {i}");
            // Sealed by us from the same message, ID and sequence: the same bytes.
            let sealed = seal(
                AuthType::Md5,
                &password,
                packet.session_id,
                packet.sequence,
                packet.message.clone(),
            )
            .unwrap();
            assert_eq!(sealed, datagram, "datagram {i}");
        }
    }

    #[test]
    fn a_sealed_packet_verifies_and_a_changed_byte_or_password_does_not() {
        let password = password16(b"secretpw").unwrap();
        let message = Request {
            net_fn: NETFN_APP,
            command: CMD_ACTIVATE_SESSION,
            rq_seq: 3,
            data: vec![1, 2, 3],
        }
        .encode();
        for auth in [AuthType::Md5, AuthType::Password] {
            let bytes = seal(auth, &password, 0x55, 9, message.clone()).unwrap();
            let packet = V15Packet::decode(&bytes).unwrap();
            assert!(verify(&packet, auth, &password));
            let other = password16(b"otherpw").unwrap();
            assert!(!verify(&packet, auth, &other));
            assert!(!verify(&packet, AuthType::None, &password));
        }
        let bytes = seal(AuthType::Md5, &password, 0x55, 9, message).unwrap();
        let mut changed = bytes.clone();
        let last = changed.len() - 2;
        changed[last] ^= 1;
        assert!(!verify(
            &V15Packet::decode(&changed).unwrap(),
            AuthType::Md5,
            &password
        ));
    }

    #[test]
    fn a_password_over_16_bytes_is_refused_for_ipmi_1_5() {
        assert!(password16(&[b'x'; 17]).is_err());
        assert!(password16(&[b'x'; 16]).is_ok());
    }

    #[test]
    fn the_support_byte_lists_what_a_bmc_offers() {
        assert_eq!(
            AuthType::offered(0x17),
            vec![
                AuthType::None,
                AuthType::Md2,
                AuthType::Md5,
                AuthType::Password
            ]
        );
        assert_eq!(AuthType::offered(0x02), vec![AuthType::Md2]);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = V15Caps::decode(&bytes);
            let _ = Challenge::decode(&bytes);
            let _ = ActivateRequest::decode(&bytes);
            let _ = Activated::decode(&bytes);
        }

        #[test]
        fn activation_messages_round_trip(sid in any::<u32>(), seq in any::<u32>(), challenge in any::<[u8; 16]>()) {
            let req = ActivateRequest { auth: 2, privilege: 3, challenge, initial_outbound: seq };
            prop_assert_eq!(ActivateRequest::decode(&req.encode()).unwrap(), req);
            let act = Activated { auth: 2, session_id: sid, initial_inbound: seq, max_privilege: 4 };
            prop_assert_eq!(Activated::decode(&act.encode()).unwrap(), act);
            let ch = Challenge { temp_session_id: sid, challenge };
            prop_assert_eq!(Challenge::decode(&ch.encode()).unwrap(), ch);
        }
    }
}

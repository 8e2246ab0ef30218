//! RMCP+ cryptography (IPMI v2.0 §13.28-13.32) on RustCrypto primitives: the RAKP
//! auth codes, the session integrity key (SIK) and K1/K2, the RAKP 4 ICV, the
//! per-packet integrity AuthCodes and AES-CBC-128 confidentiality with IPMI's own
//! padding. MACs are compared in constant time.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::CodecError;

/// RAKP authentication algorithm (IPMI v2.0 §13.28, table 13-17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlgorithm {
    None,
    HmacSha1,
    HmacMd5,
    HmacSha256,
}

impl AuthAlgorithm {
    pub fn from_id(id: u8) -> Option<AuthAlgorithm> {
        match id {
            0 => Some(AuthAlgorithm::None),
            1 => Some(AuthAlgorithm::HmacSha1),
            2 => Some(AuthAlgorithm::HmacMd5),
            3 => Some(AuthAlgorithm::HmacSha256),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 1,
            AuthAlgorithm::HmacMd5 => 2,
            AuthAlgorithm::HmacSha256 => 3,
        }
    }

    /// Length of the RAKP 2/3 auth codes, the SIK, K1 and K2 (ipmi.md §3.2).
    pub fn mac_len(self) -> usize {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 20,
            AuthAlgorithm::HmacMd5 => 16,
            AuthAlgorithm::HmacSha256 => 32,
        }
    }

    /// Length of the RAKP 4 integrity check value: truncated per the
    /// *authentication* algorithm (§13.28.1b): SHA1 12, MD5 16, SHA256 16.
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 12,
            AuthAlgorithm::HmacMd5 | AuthAlgorithm::HmacSha256 => 16,
        }
    }

    /// HMAC of the concatenated `parts` under `key`; empty for `None`.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match self {
            AuthAlgorithm::None => Vec::new(),
            AuthAlgorithm::HmacSha1 => hmac_of::<Hmac<Sha1>>(key, parts),
            AuthAlgorithm::HmacMd5 => hmac_of::<Hmac<Md5>>(key, parts),
            AuthAlgorithm::HmacSha256 => hmac_of::<Hmac<Sha256>>(key, parts),
        })
    }
}

/// Per-packet integrity algorithm (IPMI v2.0 §13.28.4, table 13-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityAlgorithm {
    None,
    HmacSha1_96,
    HmacMd5_128,
    Md5_128,
    HmacSha256_128,
}

impl IntegrityAlgorithm {
    pub fn from_id(id: u8) -> Option<IntegrityAlgorithm> {
        match id {
            0 => Some(IntegrityAlgorithm::None),
            1 => Some(IntegrityAlgorithm::HmacSha1_96),
            2 => Some(IntegrityAlgorithm::HmacMd5_128),
            3 => Some(IntegrityAlgorithm::Md5_128),
            4 => Some(IntegrityAlgorithm::HmacSha256_128),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 1,
            IntegrityAlgorithm::HmacMd5_128 => 2,
            IntegrityAlgorithm::Md5_128 => 3,
            IntegrityAlgorithm::HmacSha256_128 => 4,
        }
    }

    /// Length of the AuthCode at the end of an authenticated packet.
    pub fn auth_code_len(self) -> usize {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 12,
            _ => 16,
        }
    }
    /// The RAKP algorithm whose HMAC and truncation this integrity algorithm
    /// stands for, as Intel "intelplus" BMCs compute the RAKP 4 ICV with
    /// (FreeIPMI's `intel20`; ipmitool's intelplus): HMAC-SHA1-96 is HMAC-SHA1 cut
    /// to 12, HMAC-MD5-128 HMAC-MD5, HMAC-SHA256-128 HMAC-SHA256 cut to 16; no
    /// integrity means no ICV at all (RAKP-none). MD5-128 has no such
    /// counterpart (FreeIPMI could not work it out either).
    pub fn rakp_auth(self) -> Option<AuthAlgorithm> {
        match self {
            IntegrityAlgorithm::None => Some(AuthAlgorithm::None),
            IntegrityAlgorithm::HmacSha1_96 => Some(AuthAlgorithm::HmacSha1),
            IntegrityAlgorithm::HmacMd5_128 => Some(AuthAlgorithm::HmacMd5),
            IntegrityAlgorithm::HmacSha256_128 => Some(AuthAlgorithm::HmacSha256),
            IntegrityAlgorithm::Md5_128 => None,
        }
    }
}

/// Confidentiality algorithm (IPMI v2.0 §13.28.5, table 13-19). xRC4 is not
/// implemented (nor by ipmitool, FreeIPMI or ipmi-rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfidentialityAlgorithm {
    None,
    AesCbc128,
}

impl ConfidentialityAlgorithm {
    pub fn from_id(id: u8) -> Option<ConfidentialityAlgorithm> {
        match id {
            0 => Some(ConfidentialityAlgorithm::None),
            1 => Some(ConfidentialityAlgorithm::AesCbc128),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        match self {
            ConfidentialityAlgorithm::None => 0,
            ConfidentialityAlgorithm::AesCbc128 => 1,
        }
    }
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails; if it ever did, an empty
    // MAC never verifies (lengths are compared), which fails safe.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time equality of two MACs (ipmitool uses `memcmp`; ipmi.md §7).
pub fn macs_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Kuid: the password zero-padded to 20 bytes (IPMI v2.0 §13.31).
pub fn kuid(password: &[u8]) -> Result<Zeroizing<[u8; 20]>, CodecError> {
    if password.len() > 20 {
        return Err(CodecError::Oversized {
            what: "password",
            len: password.len(),
            max: 20,
        });
    }
    let mut key = Zeroizing::new([0u8; 20]);
    key[..password.len()].copy_from_slice(password);
    Ok(key)
}

/// The values both ends know after RAKP 2, from which every code and key follows.
#[derive(Clone)]
pub struct RakpInputs<'a> {
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    /// The whole role byte as sent in RAKP 1, name-only-lookup bit included.
    pub role: u8,
    pub username: &'a [u8],
}

impl RakpInputs<'_> {
    fn name_len(&self) -> [u8; 1] {
        // Usernames are limited to 16 bytes before they get here.
        [u8::try_from(self.username.len()).unwrap_or(u8::MAX)]
    }

    /// RAKP 2 auth code: HMAC_Kuid(SIDm ‖ SIDc ‖ Rm ‖ Rc ‖ GUIDc ‖ Role ‖ ULen ‖ UName)
    /// (§13.21).
    pub fn rakp2_auth_code(&self, auth: AuthAlgorithm, kuid: &[u8]) -> Zeroizing<Vec<u8>> {
        auth.hmac(
            kuid,
            &[
                &self.console_session_id.to_le_bytes(),
                &self.bmc_session_id.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// RAKP 3 auth code: HMAC_Kuid(Rc ‖ SIDm ‖ Role ‖ ULen ‖ UName) (§13.22).
    pub fn rakp3_auth_code(&self, auth: AuthAlgorithm, kuid: &[u8]) -> Zeroizing<Vec<u8>> {
        auth.hmac(
            kuid,
            &[
                &self.bmc_random,
                &self.console_session_id.to_le_bytes(),
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// SIK: HMAC_K(Rm ‖ Rc ‖ Role ‖ ULen ‖ UName), K = K_g if set, else Kuid (§13.31).
    pub fn sik(&self, auth: AuthAlgorithm, kuid: &[u8], kg: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
        auth.hmac(
            kg.unwrap_or(kuid),
            &[
                &self.console_random,
                &self.bmc_random,
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// RAKP 4 ICV: HMAC_SIK(Rm ‖ SIDc ‖ GUIDc), truncated per the auth algorithm
    /// (§13.23, §13.28.1b).
    pub fn rakp4_icv(&self, auth: AuthAlgorithm, sik: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut icv = auth.hmac(
            sik,
            &[
                &self.console_random,
                &self.bmc_session_id.to_le_bytes(),
                &self.bmc_guid,
            ],
        );
        icv.truncate(auth.icv_len());
        icv
    }
}

/// K_n = HMAC_SIK(constant n repeated 20 times). The constant is 20 bytes for every
/// algorithm, as ipmitool, FreeIPMI, go-ipmi and phosphor-net-ipmid do (ipmi.md §3.1).
pub fn derive_k(auth: AuthAlgorithm, sik: &[u8], n: u8) -> Zeroizing<Vec<u8>> {
    auth.hmac(sik, &[&[n; 20]])
}

/// The keys of an established session, for sealing and opening packets.
#[derive(Clone)]
pub struct SessionKeys {
    pub integrity: IntegrityAlgorithm,
    pub confidentiality: ConfidentialityAlgorithm,
    k1: Zeroizing<Vec<u8>>,
    k2: Zeroizing<Vec<u8>>,
    /// Kuid, for MD5-128 integrity, which keys with the password itself.
    kuid: Zeroizing<[u8; 20]>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("integrity", &self.integrity)
            .field("confidentiality", &self.confidentiality)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    pub fn new(
        auth: AuthAlgorithm,
        integrity: IntegrityAlgorithm,
        confidentiality: ConfidentialityAlgorithm,
        sik: &[u8],
        kuid: &[u8; 20],
    ) -> SessionKeys {
        SessionKeys {
            integrity,
            confidentiality,
            k1: derive_k(auth, sik, 1),
            k2: derive_k(auth, sik, 2),
            kuid: Zeroizing::new(*kuid),
        }
    }

    /// The AuthCode over `covered` (auth type through next header, §13.28.4).
    pub fn auth_code(&self, covered: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut code = match self.integrity {
            IntegrityAlgorithm::None => Zeroizing::new(Vec::new()),
            IntegrityAlgorithm::HmacSha1_96 => AuthAlgorithm::HmacSha1.hmac(&self.k1, &[covered]),
            // Keyed with K1 like every HMAC integrity algorithm (§13.28.4), as
            // ipmitool and FreeIPMI key it; ipmi_sim alone uses the password.
            IntegrityAlgorithm::HmacMd5_128 => AuthAlgorithm::HmacMd5.hmac(&self.k1, &[covered]),
            IntegrityAlgorithm::HmacSha256_128 => {
                AuthAlgorithm::HmacSha256.hmac(&self.k1, &[covered])
            }
            IntegrityAlgorithm::Md5_128 => {
                // MD5(password ‖ data ‖ password), no K1 (§13.28.4).
                let mut md5 = Md5::new();
                md5.update(&self.kuid[..]);
                md5.update(covered);
                md5.update(&self.kuid[..]);
                Zeroizing::new(md5.finalize().to_vec())
            }
        };
        code.truncate(self.integrity.auth_code_len());
        code
    }

    /// Encrypts `plain` as an AES-CBC-128 payload: IV ‖ ciphertext, padded 01 02 03 …
    /// then the pad length, to a multiple of 16 (§13.29).
    pub fn seal(&self, plain: &[u8], iv: [u8; 16]) -> Result<Vec<u8>, CodecError> {
        match self.confidentiality {
            ConfidentialityAlgorithm::None => Ok(plain.to_vec()),
            ConfidentialityAlgorithm::AesCbc128 => aes_cbc_seal(&self.k2, plain, iv),
        }
    }

    /// Reverses [`SessionKeys::seal`], checking length and padding.
    pub fn open(&self, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self.confidentiality {
            ConfidentialityAlgorithm::None => Ok(payload.to_vec()),
            ConfidentialityAlgorithm::AesCbc128 => aes_cbc_open(&self.k2, payload),
        }
    }
}

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

fn aes_key(k2: &[u8]) -> Result<&[u8], CodecError> {
    k2.get(..16).ok_or(CodecError::NoKeys)
}

/// AES-CBC-128 with IPMI padding; `k2` is K2, whose first 16 bytes are the key.
pub fn aes_cbc_seal(k2: &[u8], plain: &[u8], iv: [u8; 16]) -> Result<Vec<u8>, CodecError> {
    let key = aes_key(k2)?;
    let pad = (16 - (plain.len() + 1) % 16) % 16;
    let mut buf = Vec::with_capacity(16 + plain.len() + pad + 1);
    buf.extend_from_slice(&iv);
    buf.extend_from_slice(plain);
    buf.extend((1..=pad).map(|n| n as u8));
    buf.push(pad as u8);
    let mut enc = Aes128CbcEnc::new_from_slices(key, &iv).map_err(|_| CodecError::NoKeys)?;
    for chunk in buf[16..].chunks_exact_mut(16) {
        let mut block =
            aes::Block::try_from(&chunk[..]).map_err(|_| CodecError::Confidentiality)?;
        enc.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    Ok(buf)
}

/// Decrypts an AES-CBC-128 payload (IV ‖ ciphertext) and strips IPMI padding.
pub fn aes_cbc_open(k2: &[u8], payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let key = aes_key(k2)?;
    if payload.len() < 32 || payload.len() % 16 != 0 {
        return Err(CodecError::Confidentiality);
    }
    let (iv, body) = payload.split_at(16);
    let mut dec = Aes128CbcDec::new_from_slices(key, iv).map_err(|_| CodecError::NoKeys)?;
    let mut plain = Vec::with_capacity(body.len());
    for chunk in body.chunks_exact(16) {
        let mut block = aes::Block::try_from(chunk).map_err(|_| CodecError::Confidentiality)?;
        dec.decrypt_block(&mut block);
        plain.extend_from_slice(&block);
    }
    let pad = usize::from(*plain.last().ok_or(CodecError::Confidentiality)?);
    if pad > 15 || pad + 1 > plain.len() {
        return Err(CodecError::Confidentiality);
    }
    let data_len = plain.len() - pad - 1;
    // The pad bytes must read 01 02 03 …; anything else is a wrong key or tampering.
    if plain[data_len..data_len + pad]
        .iter()
        .zip(1u8..)
        .any(|(byte, want)| *byte != want)
    {
        return Err(CodecError::Confidentiality);
    }
    plain.truncate(data_len);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr16(text: &str) -> [u8; 16] {
        hex(text).try_into().unwrap()
    }

    /// ipmi.md §8.1: ipmitool 1.8.19 against ipmi_sim 2.0.33, suite 3.
    fn captured() -> RakpInputs<'static> {
        RakpInputs {
            console_session_id: 0xa0a2_a3a4,
            bmc_session_id: 0x0000_0002,
            console_random: arr16("6c3287fb49fff73f5b70b3c1661a3a3f"),
            bmc_random: arr16("4cf9b8108eda0a468b3600543513042f"),
            bmc_guid: arr16("a123456789abcdefa123456789abcdef"),
            role: 0x14,
            username: b"admin",
        }
    }

    #[test]
    fn suite_3_captured_vectors_match_ipmitool_and_ipmi_sim() {
        let inputs = captured();
        let kuid = kuid(b"secretpw").unwrap();
        assert_eq!(&kuid[..8], &hex("7365637265747077")[..]);
        let auth = AuthAlgorithm::HmacSha1;
        assert_eq!(
            *inputs.rakp2_auth_code(auth, &kuid[..]),
            hex("b13512b1e45acb049a4ed07967bae285aa150ccd")
        );
        assert_eq!(
            *inputs.rakp3_auth_code(auth, &kuid[..]),
            hex("2bce59bc09796d8d8305cf3f3e63da80d27f55e5")
        );
        let sik = inputs.sik(auth, &kuid[..], None);
        assert_eq!(*sik, hex("54413d8fec653ea3d775c8ae898fb14fd0ecc4fa"));
        assert_eq!(
            *derive_k(auth, &sik, 1),
            hex("d57d5f433dcc74fa4aca7b652fc1dcaa74b4c0c6")
        );
        assert_eq!(
            *derive_k(auth, &sik, 2),
            hex("282d703d9768450366f68203831a5cecd057aa84")
        );
        assert_eq!(
            *inputs.rakp4_icv(auth, &sik),
            hex("63507420e235ea16aa362291")
        );
    }

    /// A second suite-3 session captured for this crate: `ipmitool -I lanplus -C 3
    /// -vvvv chassis power status` (1.8.19) against ipmi_sim 2.0.33, user `admin`,
    /// password `kat-password-1`. ipmitool printed every HMAC input and output; the
    /// session opened, so ipmi_sim computed the same values.
    #[test]
    fn suite_3_vectors_from_our_own_ipmitool_capture_match() {
        let inputs = RakpInputs {
            console_session_id: 0xa0a2_a3a4,
            bmc_session_id: 0x0000_0082,
            console_random: arr16("cd2015eacdb2519f2925bcb97c3e7a99"),
            bmc_random: arr16("a5ae4d28536b9cd20d02799a350306e8"),
            bmc_guid: arr16("fd99d73f4e9718778938855c6e535ce4"),
            role: 0x14,
            username: b"admin",
        };
        let kuid = kuid(b"kat-password-1").unwrap();
        // "rakp2 mac key": the password zero-padded to 20 bytes.
        assert_eq!(
            &kuid[..],
            &hex("6b61742d70617373776f72642d31000000000000")[..]
        );
        let auth = AuthAlgorithm::HmacSha1;
        assert_eq!(
            *inputs.rakp2_auth_code(auth, &kuid[..]),
            hex("db5f9fdcf78b97d0d6bccca2e754ec32ce5491cf")
        );
        assert_eq!(
            *inputs.rakp3_auth_code(auth, &kuid[..]),
            hex("5c5ced8575abccf0c7006fca136f4d0e9846a7b2")
        );
        let sik = inputs.sik(auth, &kuid[..], None);
        assert_eq!(*sik, hex("74d616ead766262d198b2c551b282e893e2a900c"));
        assert_eq!(
            *derive_k(auth, &sik, 1),
            hex("abc9775943b30dea687c2de6d3ad93256a0bb6ec")
        );
        assert_eq!(
            *derive_k(auth, &sik, 2),
            hex("f21228285e81ed185ff6bb431cf1f6a1d0ca5d5a")
        );
        // ipmitool prints the full 20-byte HMAC; the first 12 travel (§13.28.1b).
        assert_eq!(
            *inputs.rakp4_icv(auth, &sik),
            hex("35448213037de6e11edfd8f0")
        );
    }

    /// Suite 17 computed by an independent implementation: `ipmitool -I lanplus
    /// -C 17 -vvvv` (1.8.19, OpenSSL's HMAC-SHA256) against our responder, user
    /// `admin`, password `kat17-password`; ipmitool printed the inputs and its own
    /// RAKP 2/3 codes, SIK, K1, K2 and RAKP 4 value, and the session opened.
    #[test]
    fn suite_17_vectors_computed_by_ipmitool_match() {
        let inputs = RakpInputs {
            console_session_id: 0xa0a2_a3a4,
            bmc_session_id: u32::from_le_bytes([0x61, 0x18, 0x30, 0xd3]),
            console_random: arr16("d8efe2c295f109fe41f3ab347f2da2d0"),
            bmc_random: arr16("641a68f94a690dcc25d1f4b0dac94832"),
            bmc_guid: *b"fencekit-bmc-001",
            role: 0x14,
            username: b"admin",
        };
        let kuid = kuid(b"kat17-password").unwrap();
        let auth = AuthAlgorithm::HmacSha256;
        assert_eq!(
            *inputs.rakp2_auth_code(auth, &kuid[..]),
            hex("d9bfcd27236f0574cc444bee740575a1c2e869cec6da6f38348bcc35bf281fbb")
        );
        assert_eq!(
            *inputs.rakp3_auth_code(auth, &kuid[..]),
            hex("121adc5fe717a1f87b71be1d499dc8a86eb692c21cfb8d64a57ed3ea67ad8e5d")
        );
        let sik = inputs.sik(auth, &kuid[..], None);
        assert_eq!(
            *sik,
            hex("9ed51625cde0a862c51f008d5ffcfb7e81a43124d199f6a01949dc98f5155cc8")
        );
        assert_eq!(
            *derive_k(auth, &sik, 1),
            hex("f5c0cb61ec1f6399ed544db97614ea77e4125448de64e798fbf7b6dfd6c1a19b")
        );
        assert_eq!(
            *derive_k(auth, &sik, 2),
            hex("bea038764bf029de4450d73c9820102038ab0aa69038173d93ccdeb18b9520ff")
        );
        // ipmitool prints the full HMAC; 16 bytes travel for HMAC-SHA256.
        assert_eq!(
            *inputs.rakp4_icv(auth, &sik),
            hex("5f0460294819820ca6bfd0ea79157b4e")
        );
    }

    #[test]
    fn trinity_rakp_2_vector_matches_the_cracked_ipmi_sim_hash() {
        let inputs = RakpInputs {
            console_session_id: u32::from_le_bytes([0x1d, 0x82, 0x8e, 0x92]),
            bmc_session_id: u32::from_le_bytes([0x82, 0, 0, 0]),
            console_random: arr16("ee08e19758b8f7ae5fad97dda696fd50"),
            bmc_random: arr16("494585843e868227d4aa50ca546ab3b2"),
            bmc_guid: arr16("a123456789abcdefa123456789abcdef"),
            role: 0x14,
            username: b"admin",
        };
        let kuid = kuid(b"trinity").unwrap();
        assert_eq!(
            *inputs.rakp2_auth_code(AuthAlgorithm::HmacSha1, &kuid[..]),
            hex("05aa0232b5adffddc6a6930e915029856aab3c10")
        );
    }

    #[test]
    fn suite_17_values_are_self_consistent_with_ipmi_md() {
        let inputs = captured();
        let kuid = kuid(b"secretpw").unwrap();
        let auth = AuthAlgorithm::HmacSha256;
        assert_eq!(
            *inputs.rakp2_auth_code(auth, &kuid[..]),
            hex("d65a48c9fd915c754b18b3b24ccdc701da6014a495b989e8bd41d13d528c3d4a")
        );
        assert_eq!(
            *inputs.rakp3_auth_code(auth, &kuid[..]),
            hex("5e7c81a05bd8ca8e55a74ef31be645889906e2e0caa57bed1b6299279b4525cf")
        );
        let sik = inputs.sik(auth, &kuid[..], None);
        assert_eq!(
            *sik,
            hex("36f820d0181d49f21f51317a03257c7ed21b144f92d79f85c0de2363684b273f")
        );
        assert_eq!(
            *derive_k(auth, &sik, 1),
            hex("7757faabe249a7e2d2c22637a0bc19edce3e03cd2988cd2465b3c724307f574b")
        );
        assert_eq!(
            *derive_k(auth, &sik, 2),
            hex("e24a1130fda575597e3ec9268dbbde192e5de8e3d68787f8cf368762577742a2")
        );
        assert_eq!(
            *inputs.rakp4_icv(auth, &sik),
            hex("5f3d399dba7f57b08db658e2e7bc6d21")
        );
    }

    #[test]
    fn a_zero_padded_password_gives_the_same_hmac_as_the_bare_one() {
        for auth in [
            AuthAlgorithm::HmacSha1,
            AuthAlgorithm::HmacMd5,
            AuthAlgorithm::HmacSha256,
        ] {
            let padded = kuid(b"pw").unwrap();
            assert_eq!(auth.hmac(&padded[..], &[b"x"]), auth.hmac(b"pw", &[b"x"]));
            assert_eq!(auth.hmac(b"pw", &[b"x"]).len(), auth.mac_len());
        }
    }

    #[test]
    fn a_password_longer_than_20_bytes_is_refused() {
        assert!(kuid(&[b'a'; 20]).is_ok());
        assert!(matches!(
            kuid(&[b'a'; 21]),
            Err(CodecError::Oversized { .. })
        ));
    }

    #[test]
    fn a_k_g_changes_the_sik_but_not_the_rakp_2_code() {
        let inputs = captured();
        let kuid = kuid(b"secretpw").unwrap();
        let auth = AuthAlgorithm::HmacSha1;
        assert_ne!(
            inputs.sik(auth, &kuid[..], Some(b"kg")),
            inputs.sik(auth, &kuid[..], None)
        );
    }

    #[test]
    fn aes_cbc_pads_with_counting_bytes_and_round_trips() {
        let k2 = hex("282d703d9768450366f68203831a5cecd057aa84");
        for len in 0..40 {
            let plain: Vec<u8> = (0..len as u8).collect();
            let sealed = aes_cbc_seal(&k2, &plain, [7; 16]).unwrap();
            assert_eq!(sealed.len() % 16, 0);
            assert_eq!(&sealed[..16], &[7; 16]);
            assert_eq!(aes_cbc_open(&k2, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn aes_cbc_with_the_wrong_key_is_rejected_not_garbage() {
        let k2 = [1u8; 20];
        let sealed = aes_cbc_seal(&k2, b"hello chassis", [9; 16]).unwrap();
        // A wrong key gives random padding: rejected unless it happens to look right,
        // which for this fixed input it does not.
        assert!(aes_cbc_open(&[2u8; 20], &sealed).is_err());
        assert!(aes_cbc_open(&k2, &sealed[..20]).is_err());
    }

    #[test]
    fn macs_compare_by_value_and_length() {
        assert!(macs_equal(b"abc", b"abc"));
        assert!(!macs_equal(b"abc", b"abd"));
        assert!(!macs_equal(b"abc", b"ab"));
    }

    proptest::proptest! {
        #[test]
        fn aes_cbc_open_never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = aes_cbc_open(&[3u8; 20], &bytes);
        }
    }
}

//! Cipher suites (IPMI v2.0 §22.15.2, table 22-20) and which ones we offer: 17 then
//! 3 by default; weak ones only when pinned; suites without authentication or
//! integrity only with an explicit insecure flag as well (ipmi.md §4, §7).

use crate::crypto::{AuthAlgorithm, ConfidentialityAlgorithm, IntegrityAlgorithm};
use crate::error::IpmiError;
use crate::setup::Algorithms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    pub id: u8,
    pub auth: AuthAlgorithm,
    pub integrity: IntegrityAlgorithm,
    pub confidentiality: ConfidentialityAlgorithm,
}

impl CipherSuite {
    /// The suites this crate implements (the xRC4 ones are not).
    pub fn by_id(id: u8) -> Option<CipherSuite> {
        use AuthAlgorithm as A;
        use ConfidentialityAlgorithm as C;
        use IntegrityAlgorithm as I;
        let (auth, integrity, confidentiality) = match id {
            0 => (A::None, I::None, C::None),
            1 => (A::HmacSha1, I::None, C::None),
            2 => (A::HmacSha1, I::HmacSha1_96, C::None),
            3 => (A::HmacSha1, I::HmacSha1_96, C::AesCbc128),
            6 => (A::HmacMd5, I::None, C::None),
            7 => (A::HmacMd5, I::HmacMd5_128, C::None),
            8 => (A::HmacMd5, I::HmacMd5_128, C::AesCbc128),
            11 => (A::HmacMd5, I::Md5_128, C::None),
            12 => (A::HmacMd5, I::Md5_128, C::AesCbc128),
            15 => (A::HmacSha256, I::None, C::None),
            16 => (A::HmacSha256, I::HmacSha256_128, C::None),
            17 => (A::HmacSha256, I::HmacSha256_128, C::AesCbc128),
            _ => return None,
        };
        Some(CipherSuite {
            id,
            auth,
            integrity,
            confidentiality,
        })
    }

    pub fn algorithms(&self) -> Algorithms {
        Algorithms {
            auth: self.auth.id(),
            integrity: self.integrity.id(),
            confidentiality: self.confidentiality.id(),
        }
    }

    /// The suite whose algorithms these are, if we implement it.
    pub fn from_algorithms(algorithms: Algorithms) -> Option<CipherSuite> {
        [0, 1, 2, 3, 6, 7, 8, 11, 12, 15, 16, 17]
            .into_iter()
            .filter_map(CipherSuite::by_id)
            .find(|s| s.algorithms() == algorithms)
    }

    /// No authentication or no integrity: anyone on the path can act for the BMC.
    pub fn is_insecure(&self) -> bool {
        self.auth == AuthAlgorithm::None || self.integrity == IntegrityAlgorithm::None
    }
}

/// The suites offered when none is pinned, best first.
pub const DEFAULT_SUITES: [u8; 2] = [17, 3];

/// Which suites to offer, in order: `pinned` alone when given, else 17 then 3.
pub fn offer(pinned: Option<u8>, allow_insecure: bool) -> Result<Vec<CipherSuite>, IpmiError> {
    let Some(id) = pinned else {
        return Ok(DEFAULT_SUITES
            .iter()
            .filter_map(|id| CipherSuite::by_id(*id))
            .collect());
    };
    let suite = CipherSuite::by_id(id).ok_or_else(|| {
        IpmiError::Config(format!(
            "cipher suite {id} is not implemented (use 17, 3, or with care 1, 2, 6, 7, 8, 11, 12, 15, 16)"
        ))
    })?;
    if suite.is_insecure() && !allow_insecure {
        return Err(IpmiError::Config(format!(
            "cipher suite {id} has no {} : anyone on the network can forge the BMC's answers; \
             refused unless allow_insecure_cipher is set",
            if suite.auth == AuthAlgorithm::None {
                "authentication (any password is accepted)"
            } else {
                "integrity protection"
            }
        )));
    }
    Ok(vec![suite])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_offer_is_17_then_3() {
        let ids: Vec<u8> = offer(None, false).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![17, 3]);
    }

    #[test]
    fn suite_0_is_refused_without_the_insecure_flag() {
        assert!(offer(Some(0), false).is_err());
        assert_eq!(offer(Some(0), true).unwrap()[0].id, 0);
        assert!(offer(Some(1), false).is_err());
    }

    #[test]
    fn a_weak_suite_is_offered_only_when_pinned_and_alone() {
        let ids: Vec<u8> = offer(Some(2), false)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, vec![2]);
        assert!(offer(Some(4), true).is_err());
    }

    #[test]
    fn algorithms_map_back_to_their_suite() {
        for id in [0, 1, 2, 3, 6, 7, 8, 11, 12, 15, 16, 17] {
            let suite = CipherSuite::by_id(id).unwrap();
            assert_eq!(
                CipherSuite::from_algorithms(suite.algorithms()),
                Some(suite)
            );
        }
    }
}

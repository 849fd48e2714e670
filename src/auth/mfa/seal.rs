//! The server-side keys of second factors, derived from the server secret
//! (`SessionCookies::derive`): one seals TOTP secrets at rest
//! (XChaCha20-Poly1305, bound to the user's id), one keys the HMACs that
//! are all the store keeps of recovery codes. A stolen data dir or Redis
//! dump holds neither key. With `SESSION_SECRET_OLD`, what an earlier
//! secret sealed still opens.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::UserId;

/// Bytes of an XChaCha20 nonce, in front of each sealed secret.
const NONCE: usize = 24;

/// The keys, current first.
pub(crate) struct FactorKeys {
    seal: Vec<[u8; 32]>,
    mac: Vec<[u8; 32]>,
}

impl FactorKeys {
    /// From keys derived for each purpose, current first.
    pub fn new(seal: Vec<[u8; 32]>, mac: Vec<[u8; 32]>) -> Self {
        Self { seal, mac }
    }

    /// Seals `secret` for `user` under the current key.
    pub fn seal(&self, user: UserId, secret: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.seal[0]).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = user.to_be_bytes();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("sealing a few bytes in memory cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what `seal` made for `user`, under any key; `None` if no key
    /// opens it (a secret changed since, or a record copied to another
    /// user).
    pub fn open(&self, user: UserId, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE);
        let aad = user.to_be_bytes();
        self.seal.iter().find_map(|key| {
            XChaCha20Poly1305::new(key.into())
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: body,
                        aad: &aad,
                    },
                )
                .ok()
        })
    }

    /// HMAC-SHA-256 of a normalised recovery code of `user`, under each key
    /// (current first): a code made under an earlier secret still matches.
    pub fn recovery_macs(&self, user: UserId, code: &str) -> Vec<[u8; 32]> {
        self.code_macs(b"sessiond recovery code\0", user, code)
    }

    /// HMAC-SHA-256 of a code mailed to `user` (a password recovery), under
    /// each key, current first: kept apart from recovery codes by its label.
    pub fn mailed_code_macs(&self, user: UserId, code: &str) -> Vec<[u8; 32]> {
        self.code_macs(b"sessiond mailed code\0", user, code)
    }

    /// HMAC-SHA-256 of an e-mail verification code mailed to `user`,
    /// under each key, current first.
    pub fn verify_code_macs(&self, user: UserId, code: &str) -> Vec<[u8; 32]> {
        self.code_macs(b"sessiond email verification code\0", user, code)
    }

    fn code_macs(&self, label: &[u8], user: UserId, code: &str) -> Vec<[u8; 32]> {
        self.mac
            .iter()
            .map(|key| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts any key length");
                mac.update(label);
                mac.update(&user.to_be_bytes());
                mac.update(code.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> FactorKeys {
        FactorKeys::new(vec![[seed; 32]], vec![[seed + 1; 32]])
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let k = keys(1);
        let alice = UserId::from_u64(1);
        let sealed = k.seal(alice, b"twenty bytes secret!");
        assert!(!sealed.windows(6).any(|w| w == b"twenty"));
        assert_eq!(k.open(alice, &sealed).unwrap(), b"twenty bytes secret!");
        assert!(k.open(UserId::from_u64(2), &sealed).is_none());
        assert!(keys(7).open(alice, &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(k.open(alice, &flipped).is_none());
    }

    #[test]
    fn an_old_key_still_opens_and_matches() {
        let old = keys(1);
        let alice = UserId::from_u64(1);
        let sealed = old.seal(alice, b"s");
        let rotated = FactorKeys::new(vec![[9; 32], [1; 32]], vec![[9; 32], [2; 32]]);
        assert_eq!(rotated.open(alice, &sealed).unwrap(), b"s");
        assert_eq!(
            rotated.recovery_macs(alice, "code")[1],
            old.recovery_macs(alice, "code")[0]
        );
    }
}

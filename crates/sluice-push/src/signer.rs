//! Standard Webhooks signing (<https://www.standardwebhooks.com>).
//!
//! A delivery carries `webhook-id` (the event id, the same on every retry, so receivers
//! can dedup), `webhook-timestamp` (the attempt's time, unix seconds) and
//! `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed
//! with the bytes of the secret after `whsec_`. During a rotation every live secret
//! signs, and the signatures are separated by spaces: a receiver that knows either
//! secret verifies.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// Bytes of a new secret (the format's recommendation: 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret must be whsec_ followed by base64 of 24 to 64 bytes")]
pub struct BadSecret;

/// A decoded signing secret, kept as the HMAC state after the key (the key schedule
/// is two SHA-256 blocks; done once per secret, not per signature).
#[derive(Clone)]
pub struct Secret {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh secret, in its `whsec_` text form.
    pub fn generate() -> String {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Decodes the text form.
    pub fn parse(text: &str) -> Result<Secret, BadSecret> {
        let body = text.strip_prefix(PREFIX).ok_or(BadSecret)?;
        let key = STANDARD.decode(body).map_err(|_| BadSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(BadSecret);
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
        Ok(Secret { mac })
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        let mut digits = itoa::Buffer::new();
        mac.update(digits.format(timestamp).as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: every secret's signature, space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(secrets.len() * 48);
    for (i, s) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&s.sign(id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_parse_and_rotation_signs_twice() {
        let a = Secret::parse(&Secret::generate()).expect("a");
        let b = Secret::parse(&Secret::generate()).expect("b");
        let header = signature_header(&[a.clone(), b.clone()], "evt_1", 10, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            vec![a.sign("evt_1", 10, b"{}"), b.sign("evt_1", 10, b"{}")]
        );
        assert!(Secret::parse("whsec_").is_err());
        assert!(Secret::parse("sk_abc").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
    }
}

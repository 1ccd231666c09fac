//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>`
//! over `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the bytes of a
//! `whsec_<base64>` secret. Pure, so it is tested against the spec's vector.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A decoded signing secret. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("is not a Standard Webhooks secret: expected `whsec_` followed by base64")]
    NoPrefix,
    #[error("is not valid base64 after `whsec_`")]
    NotBase64,
    #[error("is too short: expected at least 24 bytes of key (32 recommended)")]
    TooShort,
}

impl SigningKey {
    /// Parses `whsec_<base64>`. The error never quotes the secret.
    pub fn parse(secret: &str) -> Result<SigningKey, SecretError> {
        let encoded = secret.strip_prefix("whsec_").ok_or(SecretError::NoPrefix)?;
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SecretError::NotBase64)?;
        if key.len() < 24 {
            return Err(SecretError::TooShort);
        }
        Ok(SigningKey(key))
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_standard_webhooks_test_vector() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn any_change_changes_the_signature() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = key.sign("a", 1, b"{}");
        assert_ne!(base, key.sign("b", 1, b"{}"));
        assert_ne!(base, key.sign("a", 2, b"{}"));
        assert_ne!(base, key.sign("a", 1, b"{ }"));
    }

    #[test]
    fn rejects_malformed_secrets_without_quoting_them() {
        assert_eq!(
            SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::NoPrefix
        );
        assert_eq!(
            SigningKey::parse("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::TooShort
        );
        assert!(
            !format!(
                "{:?}",
                SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            )
            .contains("MfKQ")
        );
    }
}

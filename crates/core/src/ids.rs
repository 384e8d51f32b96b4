//! Identifiers and secrets: workspace ids, key ids, API keys, tokens. All
//! come from the operating system's CSPRNG, so they are unguessable as well
//! as unique.

use rand::RngCore;

/// `bytes` random bytes as lowercase hex (twice as many characters).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_length_and_uniqueness() {
        let a = super::random_hex(8);
        assert_eq!(a.len(), 16);
        assert_ne!(a, super::random_hex(8));
    }
}

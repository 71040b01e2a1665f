//! Random identifiers from the operating system's generator: API tokens, worker ids, lease tokens,
//! and the jitter of retry delays.

/// Characters of tokens: base62, so a token is one word for secret scanners and shells.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of worker ids: RFC 4648 base32, lowercase.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The prefix of every API token, so secret scanners recognize leaked ones.
pub const TOKEN_PREFIX: &str = "arbor_";
/// Random characters after the prefix: 32 base62 characters are 190 bits.
const TOKEN_CHARACTERS: usize = 32;
/// The prefix of worker ids.
const WORKER_ID_PREFIX: &str = "w_";
/// Random characters of a worker id: 16 base32 characters are 80 bits.
const WORKER_ID_CHARACTERS: usize = 16;
/// Random bytes of a lease token (printed as hex): 128 bits, never guessed nor repeated.
const LEASE_TOKEN_BYTES: usize = 16;

pub type RandomError = getrandom::Error;

/// `count` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_text(alphabet: &[u8], count: usize) -> Result<String, RandomError> {
    // The largest multiple of the alphabet's size that fits a byte; bytes at or above it are redrawn.
    let limit = (256 / alphabet.len() * alphabet.len()) as u16;
    let mut text = String::with_capacity(count);
    let mut buffer = [0u8; 64];
    while text.len() < count {
        getrandom::fill(&mut buffer)?;
        for &byte in &buffer {
            if u16::from(byte) < limit && text.len() < count {
                text.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    Ok(text)
}

/// A new API token: `arbor_` and 32 base62 characters.
pub fn api_token() -> Result<String, RandomError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_text(BASE62, TOKEN_CHARACTERS)?))
}

/// A new worker id: `w_` and 16 base32 characters.
pub fn worker_id() -> Result<String, RandomError> {
    Ok(format!("{WORKER_ID_PREFIX}{}", random_text(BASE32, WORKER_ID_CHARACTERS)?))
}

/// A new lease (fencing) token.
pub fn lease_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; LEASE_TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A uniformly random number in `0..=maximum`.
pub fn up_to(maximum: u64) -> Result<u64, RandomError> {
    if maximum == 0 {
        return Ok(0);
    }
    // 64 random bits reduced modulo a range of at most hours in milliseconds: the bias is below 2^-40.
    Ok(getrandom::u64()? % (maximum + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_their_shapes() {
        let token = api_token().unwrap();
        assert_eq!(token.len(), TOKEN_PREFIX.len() + TOKEN_CHARACTERS);
        assert!(token[TOKEN_PREFIX.len()..].bytes().all(|byte| byte.is_ascii_alphanumeric()), "{token}");
        let worker = worker_id().unwrap();
        assert!(worker.starts_with("w_") && worker.len() == 18, "{worker}");
        assert!(worker[2..].bytes().all(|byte| BASE32.contains(&byte)), "{worker}");
        assert_eq!(lease_token().unwrap().len(), 2 * LEASE_TOKEN_BYTES);
        assert_ne!(api_token().unwrap(), token);
    }

    #[test]
    fn up_to_stays_in_range() {
        assert_eq!(up_to(0).unwrap(), 0);
        assert!((0..1000).all(|_| up_to(7).unwrap() <= 7));
    }
}

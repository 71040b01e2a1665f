//! Checking a webhook's secret in constant time: HMAC-SHA256 of the raw body (GitHub
//! `X-Hub-Signature-256: sha256=<hex>`, Gitea/Forgejo bare hex in `X-Gitea-Signature` /
//! `X-Forgejo-Signature`), or GitLab's `X-Gitlab-Token`, which is the secret itself.

use super::{Forge, WebhookError, WebhookHeaders};
use crate::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
const GITHUB_SIGNATURE_PREFIX: &str = "sha256=";
const GITEA_SIGNATURE: &str = "X-Gitea-Signature";
const FORGEJO_SIGNATURE: &str = "X-Forgejo-Signature";
const GITLAB_TOKEN: &str = "X-Gitlab-Token";

/// How a signature header encodes the HMAC.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// `sha256=<hex>`.
    Prefixed,
    /// `<hex>`.
    Bare,
}

/// Checks that the request carries `secret`. Nothing of the body is trusted before this passed.
pub fn verify(
    forge: Forge,
    headers: &WebhookHeaders,
    body: &[u8],
    secret: &Secret,
) -> Result<(), WebhookError> {
    let candidates: &[(&'static str, Encoding)] = match forge {
        Forge::GitLab => return verify_token(headers, secret),
        Forge::GitHub => &[(GITHUB_SIGNATURE, Encoding::Prefixed)],
        Forge::Gitea => &[(GITEA_SIGNATURE, Encoding::Bare), (GITHUB_SIGNATURE, Encoding::Prefixed)],
        Forge::Forgejo => &[
            (FORGEJO_SIGNATURE, Encoding::Bare),
            (GITEA_SIGNATURE, Encoding::Bare),
            (GITHUB_SIGNATURE, Encoding::Prefixed),
        ],
    };
    let primary = candidates[0].0;
    let Some((header, value, encoding)) = candidates
        .iter()
        .find_map(|(header, encoding)| headers.non_empty(header).map(|value| (*header, value, *encoding)))
    else {
        return Err(WebhookError::MissingSignature { forge, header: primary });
    };
    let bad = WebhookError::BadSignature { forge, header };
    let hex_digest = match encoding {
        Encoding::Bare => value,
        Encoding::Prefixed => value.strip_prefix(GITHUB_SIGNATURE_PREFIX).ok_or_else(|| bad.clone())?,
    };
    let expected = hex::decode(hex_digest).map_err(|_| bad.clone())?;
    // Any key length is valid for HMAC, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).map_err(|_| bad.clone())?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| bad)
}

/// GitLab sends the secret verbatim; both sides are hashed first so that the comparison takes the
/// same time whatever the lengths.
fn verify_token(headers: &WebhookHeaders, secret: &Secret) -> Result<(), WebhookError> {
    let Some(token) = headers.non_empty(GITLAB_TOKEN) else {
        return Err(WebhookError::MissingSignature { forge: Forge::GitLab, header: GITLAB_TOKEN });
    };
    let given = Sha256::digest(token.as_bytes());
    let configured = Sha256::digest(secret.expose().as_bytes());
    if bool::from(given.as_slice().ct_eq(configured.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature { forge: Forge::GitLab, header: GITLAB_TOKEN })
    }
}

//! The dashboard's stylesheet, script and icon, embedded in the binary and served under a URL that
//! holds a hash of their content (`/assets/<hash>/arbor.css`), so browsers may keep them for a year:
//! a changed file gets a new URL. Nothing is fetched from another host.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Browsers keep an asset this long (a year, the most `max-age` is used for); its URL changes with it.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The URL path, with the content's hash.
    url: LazyLock<String>,
}

impl Asset {
    pub fn url(&self) -> &str {
        &self.url
    }
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/", $name)),
            url: LazyLock::new(|| {
                format!(
                    "/assets/{:016x}/{}",
                    content_hash(include_bytes!(concat!("../../assets/", $name))),
                    $name
                )
            }),
        }
    };
}

pub static STYLESHEET: Asset = asset!("arbor.css", "text/css; charset=utf-8");
pub static SCRIPT: Asset = asset!("arbor.js", "text/javascript; charset=utf-8");
pub static ICON: Asset = asset!("favicon.svg", "image/svg+xml");
static ASSETS: [&Asset; 3] = [&STYLESHEET, &SCRIPT, &ICON];

/// FNV-1a (64 bits): enough to tell versions of three files apart, and no dependency.
fn content_hash(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// `GET /assets/{hash}/{name}`: the asset if the hash is its current one, else 404 (a stale page asks
/// again after a reload).
pub(crate) async fn serve_asset(Path((hash, name)): Path<(String, String)>) -> Response {
    let wanted = format!("/assets/{hash}/{name}");
    match ASSETS.iter().find(|asset| asset.name == name && asset.url() == wanted) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ],
            asset.bytes,
        )
            .into_response(),
        None => ApiError::not_found(format!("there is no asset {wanted}; reload the page")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        assert!(STYLESHEET.url().starts_with("/assets/") && STYLESHEET.url().ends_with("/arbor.css"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(STYLESHEET.url().len(), "/assets/".len() + 16 + "/arbor.css".len());
    }
}

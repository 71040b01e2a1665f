//! OpenPGP signature checks of RPMs from repositories with `gpgcheck=1`: the repository's `gpgkey`
//! URLs (`file://` or `http(s)://`, any number of keys per file) are loaded once, then every package
//! must carry a header signature made by one of those keys, its signed header must name the package
//! the repository metadata promised, and its payload must match the payload digest in that header, so
//! the signature covers every byte that is later unpacked.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use rpm::signature::pgp::Verifier;
use rpm::{IndexTag, PackageMetadata};

use crate::checksum::{Algorithm, Hasher};
use crate::fetch::FetchOptions;
use crate::repo_file::RepoDefinition;
use crate::resolve::ResolvedPackage;
use common::blocking::{Cancellation, run_blocking};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "{file}:{line}: repository \"{repository}\" has gpgcheck=1 but no gpgkey: name the key file(s) \
         that sign its packages, or set gpgcheck=0"
    )]
    NoKeys { repository: String, file: PathBuf, line: usize },
    #[error("repository \"{repository}\": cannot read key {url}: {message}")]
    UnreadableKey { repository: String, url: String, message: String },
    #[error("repository \"{repository}\": key {url} holds no usable OpenPGP public key: {message}")]
    InvalidKey { repository: String, url: String, message: String },
    #[error(
        "package {package} from repository \"{repository}\" is not signed, but gpgcheck=1 (key {})",
        .key_urls.join(", ")
    )]
    Unsigned { package: String, repository: String, key_urls: Vec<String> },
    #[error(
        "package {package} from repository \"{repository}\" is signed by {signers}, which is not among \
         the repository's keys ({})",
        .key_urls.join(", ")
    )]
    UnknownKey { package: String, repository: String, key_urls: Vec<String>, signers: String },
    #[error(
        "package {package} from repository \"{repository}\": the signature by {signers} does not verify \
         with the repository's keys ({}): {message}",
        .key_urls.join(", ")
    )]
    BadSignature {
        package: String,
        repository: String,
        key_urls: Vec<String>,
        signers: String,
        message: String,
    },
    #[error(
        "package {package} from repository \"{repository}\": {path} is signed, but its header names \
         {found}: the repository metadata and the package disagree"
    )]
    WrongPackage { package: String, repository: String, path: PathBuf, found: String },
    #[error(
        "package {package}: {path}: the payload does not match the signed header's {algorithm} digest: \
         expected {expected}, got {actual}"
    )]
    PayloadDigestMismatch {
        package: String,
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error(
        "package {package} from repository \"{repository}\": {path} has no payload digest that arbor \
         can check (sha224/256/384/512) in its signed header, so its signature does not cover its \
         contents (packages built by rpm 4.14 or newer have one)"
    )]
    NoPayloadDigest { package: String, repository: String, path: PathBuf },
    #[error("package {package} from repository \"{repository}\": {path}: {message}")]
    InvalidPackage { package: String, repository: String, path: PathBuf, message: String },
    #[error("package {package}: checking the signature of {path} was cancelled")]
    Cancelled { package: String, path: PathBuf },
}

/// The public keys of one repository with `gpgcheck=1`.
#[derive(Debug, Clone)]
pub struct RepositoryKeys {
    repository: String,
    key_urls: Vec<String>,
    verifier: Verifier,
}

impl RepositoryKeys {
    /// The repository id.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The `gpgkey` URLs the keys came from.
    pub fn key_urls(&self) -> &[String] {
        &self.key_urls
    }

    /// Parses armored public keys, as many as the texts hold; each text is named by its URL in errors.
    /// CPU work (self-signatures are checked): call it from blocking code.
    pub fn from_armored(
        repository: &str,
        keys: &[(String, Vec<u8>)],
    ) -> Result<RepositoryKeys, SignatureError> {
        let mut verifier = Verifier::new();
        for (url, bytes) in keys {
            let invalid = |message: String| SignatureError::InvalidKey {
                repository: repository.to_string(),
                url: url.clone(),
                message,
            };
            let text = std::str::from_utf8(bytes).map_err(|_| {
                invalid("not an ASCII-armored key file (binary keys are not supported)".into())
            })?;
            let blocks = armored_key_blocks(text);
            if blocks.is_empty() {
                return Err(invalid(format!("no \"{ARMOR_BEGIN}\" block")));
            }
            for block in blocks {
                verifier.load_from_asc(block).map_err(|error| invalid(error_chain(&error)))?;
            }
        }
        Ok(RepositoryKeys {
            repository: repository.to_string(),
            key_urls: keys.iter().map(|(url, _)| url.clone()).collect(),
            verifier,
        })
    }
}

const ARMOR_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const ARMOR_END: &str = "-----END PGP PUBLIC KEY BLOCK-----";

/// The armored public key blocks of a key file: distributions concatenate several keys in one file
/// (e.g. the current and the next release key), which the OpenPGP parser reads one block at a time.
fn armored_key_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(ARMOR_BEGIN) {
        let Some(length) = rest[start..].find(ARMOR_END) else { break };
        let end = start + length + ARMOR_END.len();
        blocks.push(&rest[start..end]);
        rest = &rest[end..];
    }
    blocks
}

/// An error with its causes, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Reads the key files of a repository with `gpgcheck=1` (in the order of its `gpgkey` list) and
/// parses them. `http(s)://` keys are fetched with the download settings' timeouts and retries.
pub async fn load_repository_keys(
    definition: &RepoDefinition,
    options: &FetchOptions,
) -> Result<RepositoryKeys, SignatureError> {
    if definition.gpgkeys.is_empty() {
        return Err(SignatureError::NoKeys {
            repository: definition.id.clone(),
            file: definition.file.clone(),
            line: definition.line,
        });
    }
    let mut client = None;
    let mut keys = Vec::new();
    for url in &definition.gpgkeys {
        let bytes = read_key(url, options, &mut client).await.map_err(|message| {
            SignatureError::UnreadableKey { repository: definition.id.clone(), url: url.clone(), message }
        })?;
        keys.push((url.clone(), bytes));
    }
    let repository = definition.id.clone();
    run_blocking("loading OpenPGP keys", move |_| RepositoryKeys::from_armored(&repository, &keys))
        .await
        .map_err(|error| SignatureError::InvalidKey {
            repository: definition.id.clone(),
            url: definition.gpgkeys.join(", "),
            message: error.to_string(),
        })?
}

/// Key files are a few kilobytes; anything this large is not a key file.
const MAXIMUM_KEY_FILE_BYTES: usize = 1024 * 1024;

async fn read_key(
    url: &str,
    options: &FetchOptions,
    client: &mut Option<reqwest::Client>,
) -> Result<Vec<u8>, String> {
    let bytes = if url.starts_with("file://") {
        let path = crate::fetch::file_url_path(url)
            .ok_or_else(|| "not a valid file:// URL (it needs an absolute path)".to_string())?;
        tokio::fs::read(&path).await.map_err(|error| format!("{}: {error}", path.display()))?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let client = match client {
            Some(client) => client,
            None => client.insert(
                reqwest::Client::builder()
                    .connect_timeout(options.connect_timeout)
                    .read_timeout(options.read_timeout)
                    .user_agent(concat!("arbor/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|error| error_chain(&error))?,
            ),
        };
        get_with_retries(client, url, options).await?
    } else {
        return Err("unsupported URL (use file://, http:// or https://)".into());
    };
    if bytes.len() > MAXIMUM_KEY_FILE_BYTES {
        return Err(format!("{} bytes is too large for a key file", bytes.len()));
    }
    Ok(bytes)
}

/// GETs a small document, retrying server errors and broken connections with exponential backoff.
async fn get_with_retries(
    client: &reqwest::Client,
    url: &str,
    options: &FetchOptions,
) -> Result<Vec<u8>, String> {
    let mut delay = options.initial_backoff;
    let mut attempt = 1;
    loop {
        let (message, retryable) = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(bytes) => return Ok(bytes.to_vec()),
                Err(error) => (error_chain(&error), true),
            },
            Ok(response) => {
                let status = response.status();
                let retryable = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                (format!("HTTP {}", status.as_u16()), retryable)
            }
            Err(error) => (error_chain(&error), true),
        };
        if !retryable || attempt >= options.attempts {
            return Err(message);
        }
        tracing::info!(url, attempt, ?delay, error = %message, "retrying key download");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(options.maximum_backoff);
        attempt += 1;
    }
}

/// Bytes read from the payload between cancellation checks.
const PAYLOAD_BUFFER_BYTES: usize = 256 * 1024;

/// rpm records payload digest algorithms with OpenPGP hash algorithm numbers (RFC 9580, 9.5).
fn payload_digest_algorithm(number: u32) -> Option<Algorithm> {
    match number {
        8 => Some(Algorithm::Sha256),
        9 => Some(Algorithm::Sha384),
        10 => Some(Algorithm::Sha512),
        11 => Some(Algorithm::Sha224),
        _ => None,
    }
}

/// The payload digests the signed header declares that can be checked here.
fn declared_payload_digests(metadata: &PackageMetadata) -> Vec<(Algorithm, String)> {
    let header = &metadata.header;
    let mut digests = Vec::new();
    if let Ok(values) = header.get_entry_data_as_string_array(IndexTag::RPMTAG_PAYLOADSHA256) {
        // The algorithm tag is absent in v6 packages and in practice always SHA-256 in v4 ones.
        let algorithm = match header.get_entry_data_as_u32(IndexTag::RPMTAG_PAYLOADSHA256ALGO) {
            Ok(number) => payload_digest_algorithm(number),
            Err(_) => Some(Algorithm::Sha256),
        };
        if let (Some(algorithm), Some(value)) = (algorithm, values.first()) {
            digests.push((algorithm, value.to_ascii_lowercase()));
        }
    }
    if let Ok(value) = header.get_entry_data_as_string(IndexTag::RPMTAG_PAYLOAD_SHA512) {
        digests.push((Algorithm::Sha512, value.to_ascii_lowercase()));
    }
    digests
}

/// `key 64240bc063b98941 (fingerprint 5ba0…)` for each signature, or `an unknown key`.
fn describe_signers(signatures: &[rpm::signature::SignatureInfo]) -> String {
    let described: Vec<String> = signatures
        .iter()
        .map(|signature| match (signature.key_id(), signature.fingerprint()) {
            (Some(key_id), Some(fingerprint)) => format!("key {key_id} (fingerprint {fingerprint})"),
            (None, Some(fingerprint)) => format!("key with fingerprint {fingerprint}"),
            (Some(key_id), None) => format!("key {key_id}"),
            (None, None) => "a key the signature does not name".to_string(),
        })
        .collect();
    if described.is_empty() { "an unknown key".to_string() } else { described.join(" and ") }
}

/// Checks that the RPM at `path` is `package`, signed by one of `keys`, with a payload matching the
/// signed header. Blocking (reads the whole file): run it through `run_blocking`.
pub fn verify_package_signature(
    path: &Path,
    package: &ResolvedPackage,
    keys: &RepositoryKeys,
    cancellation: &Cancellation,
) -> Result<(), SignatureError> {
    let nevra = package.nevra();
    let invalid = |message: String| SignatureError::InvalidPackage {
        package: nevra.clone(),
        repository: package.repo.clone(),
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|error| invalid(error.to_string()))?;
    let mut reader = BufReader::with_capacity(PAYLOAD_BUFFER_BYTES, file);
    let metadata = PackageMetadata::parse(&mut reader)
        .map_err(|error| invalid(format!("not a readable RPM: {}", error_chain(&error))))?;

    let signatures = metadata
        .signatures()
        .map_err(|error| invalid(format!("unreadable signature: {}", error_chain(&error))))?;
    if signatures.is_empty() {
        return Err(SignatureError::Unsigned {
            package: nevra,
            repository: package.repo.clone(),
            key_urls: keys.key_urls.clone(),
        });
    }
    let report = metadata
        .check_signatures(&keys.verifier)
        .map_err(|error| invalid(format!("checking the signature: {}", error_chain(&error))))?;
    if !report.signatures.iter().any(|signature| signature.is_verified()) {
        let signers = describe_signers(&signatures);
        let errors: Vec<&rpm::Error> =
            report.signatures.iter().filter_map(|signature| signature.error.as_ref()).collect();
        let unknown_key = !errors.is_empty()
            && errors.iter().all(|error| matches!(error, rpm::Error::KeyNotFoundError { .. }));
        return Err(if unknown_key {
            SignatureError::UnknownKey {
                package: nevra,
                repository: package.repo.clone(),
                key_urls: keys.key_urls.clone(),
                signers,
            }
        } else {
            SignatureError::BadSignature {
                package: nevra,
                repository: package.repo.clone(),
                key_urls: keys.key_urls.clone(),
                signers,
                message: errors.iter().map(|error| error_chain(*error)).collect::<Vec<_>>().join("; "),
            }
        });
    }
    // The signature covers the header; the header digests in the signature header must agree too.
    report.digests.result().map_err(|error| invalid(error_chain(&error)))?;

    check_header_names_package(&metadata, path, package)?;
    check_payload(&metadata, &mut reader, path, package, cancellation)
}

/// The signed header must describe the package the repository metadata listed: otherwise an old
/// signed package could be served under a newer name.
fn check_header_names_package(
    metadata: &PackageMetadata,
    path: &Path,
    package: &ResolvedPackage,
) -> Result<(), SignatureError> {
    let wrong = |found: String| SignatureError::WrongPackage {
        package: package.nevra(),
        repository: package.repo.clone(),
        path: path.to_path_buf(),
        found,
    };
    let name = metadata.get_name().map_err(|error| wrong(format!("no name ({error})")))?;
    let version = metadata.get_version().map_err(|error| wrong(format!("no version ({error})")))?;
    let release = metadata.get_release().map_err(|error| wrong(format!("no release ({error})")))?;
    let arch = metadata.get_arch().map_err(|error| wrong(format!("no arch ({error})")))?;
    let epoch = u64::from(metadata.get_epoch().unwrap_or(0));
    if name != package.name
        || version != package.version
        || release != package.release
        || arch != package.arch
        || epoch != package.epoch
    {
        let evr =
            if epoch == 0 { format!("{version}-{release}") } else { format!("{epoch}:{version}-{release}") };
        return Err(wrong(format!("{name}-{evr}.{arch}")));
    }
    Ok(())
}

/// Hashes the rest of `reader` (the payload) and compares it with the signed header's digests.
fn check_payload(
    metadata: &PackageMetadata,
    reader: &mut impl Read,
    path: &Path,
    package: &ResolvedPackage,
    cancellation: &Cancellation,
) -> Result<(), SignatureError> {
    let declared = declared_payload_digests(metadata);
    if declared.is_empty() {
        return Err(SignatureError::NoPayloadDigest {
            package: package.nevra(),
            repository: package.repo.clone(),
            path: path.to_path_buf(),
        });
    }
    let mut hashers: Vec<Hasher> = declared.iter().map(|(algorithm, _)| Hasher::new(*algorithm)).collect();
    let mut buffer = vec![0; PAYLOAD_BUFFER_BYTES];
    loop {
        if cancellation.is_cancelled() {
            return Err(SignatureError::Cancelled { package: package.nevra(), path: path.to_path_buf() });
        }
        let read = reader.read(&mut buffer).map_err(|error| SignatureError::InvalidPackage {
            package: package.nevra(),
            repository: package.repo.clone(),
            path: path.to_path_buf(),
            message: format!("reading the payload: {error}"),
        })?;
        if read == 0 {
            break;
        }
        for hasher in &mut hashers {
            hasher.update(&buffer[..read]);
        }
    }
    for ((algorithm, expected), hasher) in declared.into_iter().zip(hashers) {
        let actual = hasher.finish();
        if actual != expected {
            return Err(SignatureError::PayloadDigestMismatch {
                package: package.nevra(),
                path: path.to_path_buf(),
                algorithm: algorithm.name(),
                expected,
                actual,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_armored_block() {
        let one = format!("{ARMOR_BEGIN}\n\nabc\n{ARMOR_END}\n");
        let text = format!("comment\n{one}junk\n{one}");
        assert_eq!(armored_key_blocks(&text).len(), 2);
        assert!(armored_key_blocks("nothing here").is_empty());
        assert!(armored_key_blocks(&format!("{ARMOR_BEGIN}\nunterminated")).is_empty());
    }

    #[test]
    fn maps_openpgp_hash_numbers() {
        assert_eq!(payload_digest_algorithm(8), Some(Algorithm::Sha256));
        assert_eq!(payload_digest_algorithm(10), Some(Algorithm::Sha512));
        assert_eq!(payload_digest_algorithm(1), None, "MD5 is not accepted");
        assert_eq!(payload_digest_algorithm(2), None, "nor is SHA-1");
    }
}

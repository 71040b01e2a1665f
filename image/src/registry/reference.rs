//! Image references in the docker/containers syntax: `[registry/]repository[:tag][@sha256:hex]`.
//!
//! Like `docker` and `skopeo`, a first path component counts as the registry only when it contains
//! `.` or `:` or is `localhost`; otherwise the image lives on Docker Hub (`docker.io`, one-component
//! names under `library/`).

use super::RegistryError;
use std::fmt;

/// The registry an unqualified name (`fedora:40`, `user/image`) refers to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that serves the registry API for [`DEFAULT_REGISTRY`].
const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";
/// The namespace of one-component Docker Hub names (`fedora` is `library/fedora`).
const DEFAULT_NAMESPACE: &str = "library";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest tag the distribution spec allows (1 leading character plus 127 more).
const MAXIMUM_TAG_LENGTH: usize = 128;
/// The longest repository name docker and the distribution reference grammar accept.
const MAXIMUM_REPOSITORY_LENGTH: usize = 255;
/// The only digest algorithm arbor reads and verifies.
pub const SHA256_PREFIX: &str = "sha256:";
/// Hex characters in a sha256 digest.
const SHA256_HEX_LENGTH: usize = 64;

/// A parsed image reference such as `127.0.0.1:5000/exampleos/os:latest` or
/// `quay.io/org/image@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryReference {
    /// `host[:port]` as written (`docker.io` for unqualified names).
    pub registry: String,
    /// The repository path inside the registry, e.g. `exampleos/os`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: Option<String>,
}

impl RegistryReference {
    /// Parses `[registry/]repository[:tag][@digest]`.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid =
            |reason: String| RegistryError::InvalidReference { reference: text.to_string(), reason };
        let trimmed = text.strip_prefix("docker://").unwrap_or(text);
        if trimmed.is_empty() {
            return Err(invalid("the reference is empty".to_string()));
        }
        if let Some(bad) =
            trimmed.chars().find(|character| character.is_whitespace() || character.is_control())
        {
            return Err(invalid(format!("contains the character {bad:?}")));
        }
        let (name_and_tag, digest) = match trimmed.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(invalid)?;
                (name, Some(digest.to_string()))
            }
            None => (trimmed, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it belongs to host:port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&name_and_tag[..colon], Some(name_and_tag[colon + 1..].to_string()))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(invalid)?;
        }
        let (registry, repository) = split_registry(name);
        if registry.is_empty() {
            return Err(invalid("the registry host is empty".to_string()));
        }
        validate_repository(&repository).map_err(invalid)?;
        Ok(Self { registry, repository, tag, digest })
    }

    /// The host (and port) that serves the registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY { DEFAULT_REGISTRY_API_HOST } else { &self.registry }
    }

    /// What a pull asks the registry for: the digest when given (exact), else the tag, else
    /// [`DEFAULT_TAG`].
    pub fn pull_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// What a push tags: the tag when given, else the digest, else [`DEFAULT_TAG`].
    pub fn push_reference(&self) -> &str {
        self.tag.as_deref().or(self.digest.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// The same repository at `digest`, without a tag.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self { tag: None, digest: Some(digest.to_string()), ..self.clone() }
    }
}

impl fmt::Display for RegistryReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for RegistryReference {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Splits `name` into registry and repository with docker's rules.
fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        Some(_) => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        None => (DEFAULT_REGISTRY.to_string(), format!("{DEFAULT_NAMESPACE}/{name}")),
    }
}

/// Checks `digest` is `sha256:` followed by 64 lowercase hex characters.
pub(super) fn validate_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix(SHA256_PREFIX) else {
        return Err(match digest.split_once(':') {
            Some((algorithm, _)) => format!("unsupported digest algorithm `{algorithm}` (only sha256)"),
            None => format!("`{digest}` is not a digest (expected sha256:<64 hex characters>)"),
        });
    };
    if hex.len() != SHA256_HEX_LENGTH || !hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("`{digest}` is not a sha256 digest (expected 64 lowercase hex characters)"));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let valid_first = tag.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    let valid_rest =
        tag.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if !valid_first || !valid_rest || tag.len() > MAXIMUM_TAG_LENGTH {
        return Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; not starting with `.` or `-`; \
             at most {MAXIMUM_TAG_LENGTH} characters)"
        ));
    }
    Ok(())
}

/// Checks each `/`-separated component is lowercase alphanumerics joined by `.`, `_`, `__` or dashes.
fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".to_string());
    }
    if repository.len() > MAXIMUM_REPOSITORY_LENGTH {
        return Err(format!("the repository name is longer than {MAXIMUM_REPOSITORY_LENGTH} characters"));
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            return Err(format!(
                "`{component}` is not a valid repository path component (lowercase letters and digits, \
                 separated by `.`, `_`, `__` or dashes)"
            ));
        }
    }
    Ok(())
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alphanumeric = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !is_alphanumeric(first) || !is_alphanumeric(last) {
        return false;
    }
    // Between alphanumeric runs: one `.`, one or two `_`, or any number of `-`.
    let mut index = 0;
    while index < bytes.len() {
        if is_alphanumeric(bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !is_alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let valid =
            separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_references() {
        /// Text, registry, repository, tag, digest.
        type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            ("127.0.0.1:5000/exampleos/os:latest", "127.0.0.1:5000", "exampleos/os", Some("latest"), None),
            ("quay.io/org/image", "quay.io", "org/image", None, None),
            ("localhost/image:1.0", "localhost", "image", Some("1.0"), None),
            ("fedora:40", "docker.io", "library/fedora", Some("40"), None),
            ("user/image", "docker.io", "user/image", None, None),
            ("docker://host:1/a/b", "host:1", "a/b", None, None),
        ];
        for &(text, registry, repository, tag, digest) in cases {
            let reference = RegistryReference::parse(text).expect(text);
            assert_eq!(reference.registry, registry, "{text}");
            assert_eq!(reference.repository, repository, "{text}");
            assert_eq!(reference.tag.as_deref(), tag, "{text}");
            assert_eq!(reference.digest.as_deref(), digest, "{text}");
        }
        let with_digest = RegistryReference::parse(&format!("host:5000/repo@{DIGEST}")).expect("digest");
        assert_eq!(with_digest.digest.as_deref(), Some(DIGEST));
        assert_eq!(with_digest.tag, None);
        assert_eq!(with_digest.pull_reference(), DIGEST);
        let both = RegistryReference::parse(&format!("host/repo:v1@{DIGEST}")).expect("both");
        assert_eq!(both.tag.as_deref(), Some("v1"));
        assert_eq!(both.push_reference(), "v1");
        assert_eq!(both.pull_reference(), DIGEST);
    }

    #[test]
    fn displays_what_it_parsed() {
        for text in
            ["127.0.0.1:5000/exampleos/os:latest", "quay.io/a/b-c__d.e/f", &format!("h.io/r:t@{DIGEST}")]
        {
            assert_eq!(RegistryReference::parse(text).expect(text).to_string(), text);
        }
        assert_eq!(
            RegistryReference::parse("fedora").expect("fedora").to_string(),
            "docker.io/library/fedora"
        );
        assert_eq!(RegistryReference::parse("fedora").expect("fedora").api_host(), "registry-1.docker.io");
    }

    #[test]
    fn rejects_bad_references() {
        for text in [
            "",
            "host:5000/Upper/case",
            "host/repo:",
            "host/repo:-tag",
            "host/repo@sha256:short",
            "host/repo@md5:0123",
            "host/a//b",
            "host/repo with space",
            "/repo",
            "host/-repo",
            "host/re...po",
        ] {
            let error = RegistryReference::parse(text).expect_err(text);
            assert!(error.to_string().contains("invalid image reference"), "{text}: {error}");
        }
    }
}

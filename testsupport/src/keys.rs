//! [`TestKey`]: fixed OpenPGP key pairs for signing test RPMs (TEST ONLY: the secret keys are committed).
//!
//! The armored keys live in `testsupport/keys/` (see the README there). Tests sign packages with
//! [`RpmSpec::signed_with`](crate::RpmSpec::signed_with) and point a repository's `gpgkey=` at
//! [`TestKey::public_key_url`].
//!
//! ```no_run
//! use arbor_testsupport::{RpmSpec, TestKey};
//! let spec = RpmSpec::new("app", "1.0", "1").signed_with(TestKey::Primary);
//! let repo_line = format!("gpgkey={}", TestKey::Primary.public_key_url());
//! ```

use anyhow::{Context, Result};
use std::path::PathBuf;

/// One of the committed test key pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestKey {
    /// The key test repositories trust.
    Primary,
    /// Another key, for packages a repository must refuse.
    Wrong,
}

impl TestKey {
    /// Every test key.
    pub const ALL: [TestKey; 2] = [TestKey::Primary, TestKey::Wrong];

    fn file_stem(self) -> &'static str {
        match self {
            TestKey::Primary => "primary",
            TestKey::Wrong => "wrong",
        }
    }

    /// The directory holding the armored key files.
    pub fn directory() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys")
    }

    /// The armored public key file, e.g. `.../testsupport/keys/primary.public.asc`.
    pub fn public_key_path(self) -> PathBuf {
        Self::directory().join(format!("{}.public.asc", self.file_stem()))
    }

    /// The armored secret key file (no passphrase).
    pub fn secret_key_path(self) -> PathBuf {
        Self::directory().join(format!("{}.secret.asc", self.file_stem()))
    }

    /// `file:///.../primary.public.asc`, for a `.repo` file's `gpgkey=`.
    pub fn public_key_url(self) -> String {
        format!("file://{}", self.public_key_path().display())
    }

    /// The armored public key.
    pub fn public_key(self) -> &'static str {
        match self {
            TestKey::Primary => include_str!("../keys/primary.public.asc"),
            TestKey::Wrong => include_str!("../keys/wrong.public.asc"),
        }
    }

    fn secret_key(self) -> &'static str {
        match self {
            TestKey::Primary => include_str!("../keys/primary.secret.asc"),
            TestKey::Wrong => include_str!("../keys/wrong.secret.asc"),
        }
    }

    /// The primary key's fingerprint, lowercase hex (as the `rpm` crate reports signature issuers).
    pub fn fingerprint(self) -> &'static str {
        match self {
            TestKey::Primary => "5ba09b501d501ca814e562fb64240bc063b98941",
            TestKey::Wrong => "3efb26059cda1a92cb022f68e389f0513bd9bdd8",
        }
    }

    /// The long key id: the last 16 hex digits of the fingerprint.
    pub fn key_id(self) -> &'static str {
        let fingerprint = self.fingerprint();
        &fingerprint[fingerprint.len() - KEY_ID_HEX_DIGITS..]
    }

    /// A signer for this key.
    pub(crate) fn signer(self) -> Result<rpm::signature::pgp::Signer> {
        rpm::signature::pgp::Signer::from_asc(self.secret_key())
            .with_context(|| format!("loading test key {}", self.secret_key_path().display()))
    }
}

/// A v4 OpenPGP long key id is the low 64 bits of the fingerprint.
const KEY_ID_HEX_DIGITS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RpmSpec;

    #[test]
    fn signatures_name_the_keys_fingerprint_and_verify_only_with_that_key() {
        for key in TestKey::ALL {
            assert!(key.public_key_path().is_file());
            assert!(key.secret_key_path().is_file());
            let bytes = RpmSpec::new("signed", "1.0", "1").signed_with(key).to_bytes().unwrap();
            let package = rpm::Package::parse(&mut bytes.as_slice()).unwrap();
            let signatures = package.signatures().unwrap();
            assert_eq!(signatures.len(), 1);
            assert_eq!(signatures[0].fingerprint(), Some(key.fingerprint()));
            assert_eq!(signatures[0].key_id(), Some(key.key_id()));
            for other in TestKey::ALL {
                let verifier = rpm::signature::pgp::Verifier::from_asc(other.public_key()).unwrap();
                assert_eq!(package.verify_signature(&verifier).is_ok(), other == key, "{key:?} by {other:?}");
            }
        }
    }

    #[test]
    fn signed_builds_are_reproducible() {
        let spec = RpmSpec::new("signed", "1.0", "1").signed_with(TestKey::Primary);
        assert_eq!(spec.to_bytes().unwrap(), spec.to_bytes().unwrap());
        assert_ne!(spec.to_bytes().unwrap(), RpmSpec::new("signed", "1.0", "1").to_bytes().unwrap());
    }

    #[test]
    fn rpm_itself_accepts_the_signature() {
        let directory = tempfile::tempdir().unwrap();
        let database = directory.path().join("rpmdb");
        std::fs::create_dir_all(&database).unwrap();
        let database_option = format!("--dbpath={}", database.display());
        let package = RpmSpec::new("signed", "1.0", "1")
            .signed_with(TestKey::Primary)
            .write_to(directory.path())
            .unwrap();
        let public_key = TestKey::Primary.public_key_path();
        crate::tools::run_tool(
            "rpmkeys",
            [database_option.as_str(), "--import", &public_key.to_string_lossy()],
        )
        .unwrap();
        let check = crate::tools::tool_stdout(
            "rpmkeys",
            [database_option.as_str(), "-K", &package.to_string_lossy()],
        )
        .unwrap();
        assert!(check.contains("signatures OK"), "{check}");
    }
}

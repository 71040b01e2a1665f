//! [`Package`]: the owned details of one solvable, and the split of an rpm EVR string.

/// Details of one package (solvable), all owned: nothing borrows from the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Epoch; 0 when the package has none.
    pub epoch: u64,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture, e.g. `x86_64` or `noarch`.
    pub arch: String,
    /// Name of the repository the package was loaded from, as given when loading.
    pub repo: String,
    /// Location of the rpm relative to the repository root (`<location href>`).
    pub location: String,
    /// Checksum type (e.g. `sha256`) and lowercase hex digest.
    pub checksum: Option<(String, String)>,
    /// Size of the rpm file in bytes.
    pub download_size: u64,
    /// Size of the installed files in bytes.
    pub install_size: u64,
    /// Source rpm file name, e.g. `bash-5.2.15-2.src.rpm`.
    pub sourcerpm: Option<String>,
    /// Build time, seconds since the Unix epoch.
    pub build_time: u64,
    /// License tag.
    pub license: Option<String>,
}

impl Package {
    /// `[E:]V-R`, the epoch left out when it is 0.
    pub fn evr(&self) -> String {
        join_evr(self.epoch, &self.version, &self.release)
    }

    /// `name-[E:]V-R.arch`.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }
}

/// The parts of an rpm `[E:]V[-R]` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvrParts {
    pub(crate) epoch: u64,
    pub(crate) version: String,
    pub(crate) release: String,
}

/// Splits `[E:]V[-R]` as libsolv prints it: the epoch is the all-digit part before the first
/// `:`, the release is what follows the last `-`.
pub(crate) fn split_evr(evr: &str) -> EvrParts {
    let (epoch, version_release) = match evr.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|byte| byte.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(0), rest)
        }
        _ => (0, evr),
    };
    let (version, release) = version_release.rsplit_once('-').unwrap_or((version_release, ""));
    EvrParts { epoch, version: version.to_owned(), release: release.to_owned() }
}

/// Joins the parts of an EVR again: `[E:]V[-R]`.
pub(crate) fn join_evr(epoch: u64, version: &str, release: &str) -> String {
    let mut evr = String::new();
    if epoch != 0 {
        evr.push_str(&format!("{epoch}:"));
    }
    evr.push_str(version);
    if !release.is_empty() {
        evr.push('-');
        evr.push_str(release);
    }
    evr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_evr() {
        let cases = [
            ("1.0-1", 0, "1.0", "1"),
            ("2:5.2.15-2.fc41", 2, "5.2.15", "2.fc41"),
            ("0:1.0-1", 0, "1.0", "1"),
            ("1.0", 0, "1.0", ""),
            ("1.0-rc1-3", 0, "1.0-rc1", "3"),
            ("x:1.0-1", 0, "x:1.0", "1"),
        ];
        for (evr, epoch, version, release) in cases {
            let parts = split_evr(evr);
            assert_eq!(parts, EvrParts { epoch, version: version.into(), release: release.into() }, "{evr}");
        }
        assert_eq!(join_evr(0, "1.0", "1"), "1.0-1");
        assert_eq!(join_evr(3, "1.0", "1"), "3:1.0-1");
        assert_eq!(join_evr(0, "1.0", ""), "1.0");
    }

    #[test]
    fn nevra_leaves_out_zero_epoch() {
        let mut package = Package {
            name: "bash".into(),
            epoch: 0,
            version: "5.2.15".into(),
            release: "2.fc41".into(),
            arch: "x86_64".into(),
            repo: "fedora".into(),
            location: "Packages/b/bash.rpm".into(),
            checksum: None,
            download_size: 0,
            install_size: 0,
            sourcerpm: None,
            build_time: 0,
            license: None,
        };
        assert_eq!(package.nevra(), "bash-5.2.15-2.fc41.x86_64");
        package.epoch = 1;
        assert_eq!(package.evr(), "1:5.2.15-2.fc41");
        assert_eq!(package.nevra(), "bash-1:5.2.15-2.fc41.x86_64");
    }
}

//! Getting the resolved RPMs onto local disk, verified: packages of `file://` repositories are
//! checked in place against the repository metadata's checksum (never copied), `http(s)://` ones are
//! downloaded into a cache keyed by that checksum (`<cache>/packages/<algorithm>-<hex>.rpm`, so a
//! package is fetched once), and packages of repositories with `gpgcheck=1` must also carry a valid
//! OpenPGP signature by one of the repository's keys. Bytes without a checksum are never used.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;

use crate::checksum::{Checksum, Hasher};
use crate::fetch::{FetchError, Fetcher, file_url_path, join_url};
use crate::repo_file::RepoDefinition;
use crate::resolve::{Resolution, ResolvedPackage};
use crate::signature::{RepositoryKeys, SignatureError, load_repository_keys, verify_package_signature};
use crate::verified_files::VerifiedFiles;
use common::blocking::{BlockingError, run_blocking};

/// Where a verified package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageSource {
    /// Downloaded now.
    Downloaded,
    /// Already in the package cache (downloaded and verified by an earlier run).
    Cached,
    /// A `file://` repository's own file, verified where it is.
    LocalFile,
}

/// Reported once per package, when it is verified (checksum and, with `gpgcheck=1`, signature).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DownloadProgress {
    /// `name-[epoch:]version-release.arch`.
    pub package: String,
    /// Packages verified so far, this one included.
    pub done: usize,
    pub total: usize,
    /// The package's size according to the repository metadata.
    pub bytes: u64,
    pub source: PackageSource,
}

impl DownloadProgress {
    /// Whether nothing had to be downloaded for this package.
    pub fn cached(&self) -> bool {
        self.source != PackageSource::Downloaded
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "package {package} from repository \"{repository}\" has no checksum in the repository metadata; \
         arbor never installs unverified packages"
    )]
    MissingChecksum { package: String, repository: String },
    #[error("package {package} from repository \"{repository}\": invalid checksum \"{checksum}\": {message}")]
    InvalidChecksum { package: String, repository: String, checksum: String, message: String },
    #[error(
        "package {package} comes from repository \"{repository}\", which is not among the repositories \
         given (known: {known})"
    )]
    UnknownRepository { package: String, repository: String, known: String },
    #[error("package {package}: \"{url}\" is not a usable file:// URL (it needs an absolute path)")]
    InvalidFileUrl { package: String, url: String },
    #[error("package {package}: {path}: checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { package: String, path: PathBuf, expected: String, actual: String },
    #[error("package {package}: {path}: {message}")]
    Io { package: String, path: PathBuf, message: String },
    #[error("downloading package {package}: {source}")]
    Fetch {
        package: String,
        #[source]
        source: FetchError,
    },
    /// Boxed: signature errors carry several names and URLs.
    #[error(transparent)]
    Signature(Box<SignatureError>),
    #[error(transparent)]
    Blocking(#[from] BlockingError),
}

impl From<SignatureError> for DownloadError {
    fn from(error: SignatureError) -> DownloadError {
        DownloadError::Signature(Box::new(error))
    }
}

/// Where downloaded packages live in the cache directory, each named by [`downloaded_file_name`].
pub const DOWNLOADED_PACKAGES_DIRECTORY: &str = "packages";

/// The name of a downloaded package in [`DOWNLOADED_PACKAGES_DIRECTORY`]: its repository checksum,
/// `sha256-<hex>.rpm`.
pub fn downloaded_file_name(checksum: &Checksum) -> String {
    format!("{}-{}.rpm", checksum.algorithm.name(), checksum.hex)
}

/// [`downloaded_file_name`] of a checksum as the repository metadata writes it (`sha256:<hex>`), if it
/// is one.
pub fn downloaded_file_name_of(checksum_text: &str) -> Option<String> {
    let (algorithm, hex) = checksum_text.split_once(':')?;
    Checksum::new(algorithm, hex).ok().map(|checksum| downloaded_file_name(&checksum))
}

/// Marks a downloaded package as used now (its modification time), so that garbage collection of the
/// cache removes the least recently used downloads first. Downloads are verified before they get their
/// name and never change afterwards, so their times mean nothing else.
fn record_use(path: &Path) -> std::io::Result<()> {
    let now = std::time::SystemTime::now();
    std::fs::File::open(path)?.set_times(std::fs::FileTimes::new().set_accessed(now).set_modified(now))
}

/// One package to fetch, with everything checked up front.
struct Job<'a> {
    index: usize,
    verified_files: &'a Arc<VerifiedFiles>,
    package: &'a ResolvedPackage,
    checksum: Checksum,
    definition: &'a RepoDefinition,
    keys: Option<Arc<RepositoryKeys>>,
}

/// Makes every package of `resolution` available locally, verified, and returns the paths in the
/// order of `resolution.packages`. `definitions` are the treefile's repositories (for mirrors and
/// `gpgcheck` / `gpgkey`). At most `parallel_downloads` packages are in progress at once. The first
/// failure stops the work (packages in flight are finished, none is started) and is returned.
pub async fn download_packages(
    fetcher: &Fetcher,
    resolution: &Resolution,
    definitions: &[RepoDefinition],
    progress: &(dyn Fn(DownloadProgress) + Sync),
) -> Result<Vec<PathBuf>, DownloadError> {
    let by_id: HashMap<&str, &RepoDefinition> =
        definitions.iter().map(|definition| (definition.id.as_str(), definition)).collect();
    let mut prepared = Vec::with_capacity(resolution.packages.len());
    for (index, package) in resolution.packages.iter().enumerate() {
        let definition =
            by_id.get(package.repo.as_str()).copied().ok_or_else(|| DownloadError::UnknownRepository {
                package: package.nevra(),
                repository: package.repo.clone(),
                known: definitions
                    .iter()
                    .map(|definition| definition.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        prepared.push((index, package, expected_checksum(package)?, definition));
    }

    // Keys are loaded once per repository, before anything is downloaded: a repository with
    // gpgcheck=1 and a missing or unreadable key fails at once.
    let checked_repositories: BTreeMap<&str, &RepoDefinition> = prepared
        .iter()
        .filter(|(_, _, _, definition)| definition.gpgcheck)
        .map(|(_, _, _, definition)| (definition.id.as_str(), *definition))
        .collect();
    let loaded = futures_util::future::try_join_all(
        checked_repositories.values().map(|definition| load_repository_keys(definition, fetcher.options())),
    )
    .await?;
    let keys: HashMap<String, Arc<RepositoryKeys>> =
        loaded.into_iter().map(|keys| (keys.repository().to_string(), Arc::new(keys))).collect();

    let verified_files = Arc::new(VerifiedFiles::load(&fetcher.options().cache_directory));
    let total = prepared.len();
    let done = AtomicUsize::new(0);
    // After the first failure no new package is started, but those in flight are finished rather
    // than dropped halfway: an abandoned transfer would leave its temporary file in the cache.
    let failed = AtomicBool::new(false);
    let jobs = prepared.into_iter().map(|(index, package, checksum, definition)| Job {
        index,
        verified_files: &verified_files,
        package,
        checksum,
        definition,
        keys: keys.get(&definition.id).cloned(),
    });
    let parallel = fetcher.options().parallel_downloads.max(1);
    let mut running = futures_util::stream::iter(jobs.map(|job| {
        let (done, failed) = (&done, &failed);
        async move {
            if failed.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let index = job.index;
            let package = job.package;
            let (path, source) = fetch_package(fetcher, job).await.inspect_err(|_| {
                failed.store(true, Ordering::Relaxed);
            })?;
            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(DownloadProgress {
                package: package.nevra(),
                done,
                total,
                bytes: package.download_size,
                source,
            });
            Ok::<_, DownloadError>(Some((index, path)))
        }
    }))
    .buffer_unordered(parallel);
    let mut paths = Vec::with_capacity(total);
    let mut first_error = None;
    while let Some(result) = running.next().await {
        match result {
            Ok(Some(entry)) => paths.push(entry),
            Ok(None) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    paths.sort_by_key(|(index, _)| *index);
    verified_files.save();
    tracing::info!(packages = total, "every package is verified");
    Ok(paths.into_iter().map(|(_, path)| path).collect())
}

/// The repository metadata's checksum of `package`, which must be there and well-formed.
fn expected_checksum(package: &ResolvedPackage) -> Result<Checksum, DownloadError> {
    let Some(text) = &package.checksum else {
        return Err(DownloadError::MissingChecksum {
            package: package.nevra(),
            repository: package.repo.clone(),
        });
    };
    let invalid = |message: String| DownloadError::InvalidChecksum {
        package: package.nevra(),
        repository: package.repo.clone(),
        checksum: text.clone(),
        message,
    };
    let (algorithm, hex) =
        text.split_once(':').ok_or_else(|| invalid("expected ALGORITHM:HEX".to_string()))?;
    Checksum::new(algorithm, hex).map_err(invalid)
}

/// Gets one package verified onto local disk and checks its signature when the repository asks.
async fn fetch_package(fetcher: &Fetcher, job: Job<'_>) -> Result<(PathBuf, PackageSource), DownloadError> {
    let package = job.package;
    let (path, source) = if package.url.starts_with("file://") {
        let path = file_url_path(&package.url).ok_or_else(|| DownloadError::InvalidFileUrl {
            package: package.nevra(),
            url: package.url.clone(),
        })?;
        verify_in_place(package, &path, &job.checksum, job.verified_files).await?;
        (path, PackageSource::LocalFile)
    } else {
        let destination = fetcher
            .options()
            .cache_directory
            .join(DOWNLOADED_PACKAGES_DIRECTORY)
            .join(downloaded_file_name(&job.checksum));
        let cached = tokio::fs::try_exists(&destination).await.unwrap_or(false);
        let size = Some(package.download_size).filter(|size| *size > 0);
        fetcher
            .fetch_verified(
                &package.repo,
                &candidate_urls(package, job.definition),
                &job.checksum,
                size,
                &destination,
            )
            .await
            .map_err(|source| DownloadError::Fetch { package: package.nevra(), source })?;
        if cached {
            let used = destination.clone();
            if let Err(error) =
                run_blocking("recording the use of a downloaded package", move |_| record_use(&used)).await?
            {
                // Advisory: garbage collection of the cache would only remove the file a little early.
                tracing::warn!(path = %destination.display(), %error, "could not record the use of a downloaded package");
            }
        }
        (destination, if cached { PackageSource::Cached } else { PackageSource::Downloaded })
    };
    if let Some(keys) = job.keys {
        let owned_package = package.clone();
        let owned_path = path.clone();
        run_blocking("checking an RPM signature", move |cancellation| {
            verify_package_signature(&owned_path, &owned_package, &keys, cancellation)
        })
        .await??;
    }
    tracing::debug!(package = %package.nevra(), path = %path.display(), ?source, "package verified");
    Ok((path, source))
}

/// The package's URL, then its location under each other base URL of the repository.
fn candidate_urls(package: &ResolvedPackage, definition: &RepoDefinition) -> Vec<String> {
    let mut urls = vec![package.url.clone()];
    for base in &definition.baseurls {
        let url = join_url(base, &package.location);
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// Bytes hashed between cancellation checks.
const HASH_BUFFER_BYTES: usize = 256 * 1024;

/// Hashes a local package file where it is and compares with the repository metadata, unless an earlier
/// run did and the file has not changed since.
async fn verify_in_place(
    package: &ResolvedPackage,
    path: &Path,
    expected: &Checksum,
    verified_files: &Arc<VerifiedFiles>,
) -> Result<(), DownloadError> {
    let owned_path = path.to_path_buf();
    let algorithm = expected.algorithm;
    let expected_text = expected.to_string();
    let record = Arc::clone(verified_files);
    // The file's identity before hashing, and its checksum unless the record vouches for it.
    let hashed = run_blocking("verifying an RPM checksum", move |cancellation| {
        use std::io::Read;
        let mut file = std::fs::File::open(&owned_path)?;
        let metadata = file.metadata()?;
        if record.is_verified(&owned_path, &metadata, &expected_text) {
            return Ok(None);
        }
        let mut hasher = Hasher::new(algorithm);
        let mut buffer = vec![0; HASH_BUFFER_BYTES];
        loop {
            if cancellation.is_cancelled() {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"));
            }
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(Some((metadata, hasher.finish())));
            }
            hasher.update(&buffer[..read]);
        }
    })
    .await?
    .map_err(|error| DownloadError::Io {
        package: package.nevra(),
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    let Some((metadata, actual)) = hashed else { return Ok(()) };
    if actual != expected.hex {
        return Err(DownloadError::ChecksumMismatch {
            package: package.nevra(),
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual: format!("{}:{actual}", algorithm.name()),
        });
    }
    verified_files.verified(path, &metadata, &expected.to_string());
    Ok(())
}

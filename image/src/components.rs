//! Which component every content object of a commit belongs to: packages (file lists and changelogs from
//! the commit's own rpm database, read with the host's `rpm`), the kernel and initramfs, the rpm database
//! itself, and everything else as unpackaged content. A commit without an rpm database is split by
//! directory instead, so it still gets useful layers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ostree::gio;
use ostree::prelude::*;

use super::chunking::{Component, ComponentKind, change_probability};
use super::commit_tree::CommitTree;

/// Component names that cannot be package names (rpm forbids `/` in names).
pub const UNPACKAGED_COMPONENT: &str = "arbor/unpackaged";
pub const RPMDB_COMPONENT: &str = "arbor/rpmdb";
pub const KERNEL_COMPONENT: &str = "arbor/kernel";
/// Where rpm databases live in committed trees, newest convention first.
const RPMDB_DIRECTORIES: [&str; 2] = ["usr/lib/sysimage/rpm", "usr/share/rpm"];
/// The unpackaged files (generated passwd, tmpfiles.d, ...) follow package changes now and then.
const UNPACKAGED_CHANGE_PROBABILITY: f64 = 0.5;
/// The rpm database changes whenever any package does.
const RPMDB_CHANGE_PROBABILITY: f64 = 1.0;
/// Without an rpm database, directories this deep become components (`usr/lib/python3`).
const DIRECTORY_COMPONENT_DEPTH: usize = 3;
/// Directory components of an rpm-less commit change about as often as a typical package.
const DIRECTORY_CHANGE_PROBABILITY: f64 = 0.1;

#[derive(Debug, thiserror::Error)]
pub enum ComponentsError {
    #[error("reading object {checksum}: {message}")]
    Object { checksum: String, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("querying the rpm database of commit {commit} with the host's rpm: {message}")]
    Rpm { commit: String, message: String },
}

/// The components of a commit and the content objects (sorted checksums) of each, by component name.
#[derive(Debug, Default)]
pub struct CommitComponents {
    pub components: Vec<Component>,
    pub objects: BTreeMap<String, Vec<String>>,
    /// The source package of each component (same order as `components`; empty when unknown), so that
    /// binaries built together, which update together, are planned together.
    pub sources: Vec<String>,
    /// Whether package ownership came from an rpm database.
    pub from_rpmdb: bool,
}

#[derive(Debug, Default)]
struct PackageRecord {
    files: Vec<String>,
    changelog_times: Vec<i64>,
    buildtime: i64,
    source: String,
}

/// Splits the commit's content objects into components (see the module documentation).
pub fn commit_components(
    repo: &ostree::Repo,
    tree: &CommitTree,
    scratch: &Path,
) -> Result<CommitComponents, ComponentsError> {
    let path_to_object: HashMap<&str, &str> = tree
        .content
        .iter()
        .flat_map(|(checksum, object)| {
            object.paths.iter().map(move |path| (path.as_str(), checksum.as_str()))
        })
        .collect();
    let rpmdb = find_rpmdb(&path_to_object);
    let packages = match &rpmdb {
        Some((directory, _)) => Some(query_rpmdb(repo, tree, directory, scratch)?),
        None => None,
    };
    let mut owner: HashMap<&str, String> = HashMap::new();
    let mut probabilities: BTreeMap<String, (ComponentKind, f64)> = BTreeMap::new();
    if let Some(packages) = &packages {
        let reference = packages.values().map(|package| package.buildtime).max().unwrap_or_default();
        for (name, package) in packages {
            probabilities.insert(
                name.clone(),
                (ComponentKind::Package, change_probability(&package.changelog_times, reference)),
            );
            for file in &package.files {
                let committed = committed_path(file);
                if let Some(checksum) = path_to_object.get(committed.as_str()) {
                    owner.entry(checksum).or_insert_with(|| name.clone());
                }
            }
        }
    }
    let kernel_probability =
        probabilities.get("kernel").or_else(|| probabilities.get("kernel-core")).map(|entry| entry.1);
    let mut objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (checksum, object) in &tree.content {
        let first_path = object.paths.first().map(String::as_str).unwrap_or_default();
        let component = if object.paths.iter().any(|path| is_kernel_or_initramfs(path)) {
            probabilities.entry(KERNEL_COMPONENT.to_string()).or_insert((
                ComponentKind::Kernel,
                kernel_probability.unwrap_or(DIRECTORY_CHANGE_PROBABILITY),
            ));
            KERNEL_COMPONENT.to_string()
        } else if rpmdb
            .as_ref()
            .is_some_and(|(directory, _)| object.paths.iter().any(|path| is_under(path, directory)))
        {
            probabilities
                .insert(RPMDB_COMPONENT.to_string(), (ComponentKind::Rpmdb, RPMDB_CHANGE_PROBABILITY));
            RPMDB_COMPONENT.to_string()
        } else if let Some(package) = owner.get(checksum.as_str()) {
            package.clone()
        } else if packages.is_some() {
            probabilities.insert(
                UNPACKAGED_COMPONENT.to_string(),
                (ComponentKind::Unpackaged, UNPACKAGED_CHANGE_PROBABILITY),
            );
            UNPACKAGED_COMPONENT.to_string()
        } else {
            let name = directory_component(first_path);
            probabilities
                .entry(name.clone())
                .or_insert((ComponentKind::Package, DIRECTORY_CHANGE_PROBABILITY));
            name
        };
        objects.entry(component).or_default().push(checksum.clone());
    }
    let mut components = Vec::new();
    let mut sources = Vec::new();
    for (name, checksums) in &objects {
        let mut size = 0u64;
        for checksum in checksums {
            size += repo
                .query_object_storage_size(ostree::ObjectType::File, checksum, gio::Cancellable::NONE)
                .map_err(|error| ComponentsError::Object {
                    checksum: checksum.clone(),
                    message: error.to_string(),
                })?;
        }
        let (kind, change_probability) = probabilities
            .get(name)
            .copied()
            .unwrap_or((ComponentKind::Unpackaged, UNPACKAGED_CHANGE_PROBABILITY));
        components.push(Component { name: name.clone(), kind, size, change_probability });
        let source =
            packages.as_ref().and_then(|packages| packages.get(name)).map(|package| package.source.clone());
        sources.push(source.unwrap_or_default());
    }
    Ok(CommitComponents { components, objects, sources, from_rpmdb: packages.is_some() })
}

/// `/etc/x` in the rpm database is `usr/etc/x` in the commit; other paths lose their leading `/`.
fn committed_path(file: &str) -> String {
    let relative = file.trim_start_matches('/');
    match relative.strip_prefix("etc") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("usr/etc{rest}"),
        _ => relative.to_string(),
    }
}

fn is_under(path: &str, directory: &str) -> bool {
    path.strip_prefix(directory).is_some_and(|rest| rest.starts_with('/'))
}

/// `usr/lib/modules/<version>/vmlinuz` and `.../initramfs.img`: kept apart from the kernel's modules.
fn is_kernel_or_initramfs(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("usr/lib/modules/") else { return false };
    matches!(rest.split_once('/'), Some((_, "vmlinuz" | "initramfs.img")))
}

fn directory_component(path: &str) -> String {
    let parents: Vec<&str> = path.split('/').collect();
    let depth = DIRECTORY_COMPONENT_DEPTH.min(parents.len().saturating_sub(1));
    if depth == 0 { "/".to_string() } else { parents[..depth].join("/") }
}

/// The rpm database directory of the commit and its database file, if there is one (`paths`: every
/// committed path and its object).
fn find_rpmdb(paths: &HashMap<&str, &str>) -> Option<(String, String)> {
    RPMDB_DIRECTORIES.iter().find_map(|directory| {
        ["rpmdb.sqlite", "Packages"].iter().find_map(|file| {
            let path = format!("{directory}/{file}");
            paths.contains_key(path.as_str()).then(|| (directory.to_string(), path))
        })
    })
}

/// Copies the database files out of the commit and lists every package's files and changelog times.
fn query_rpmdb(
    repo: &ostree::Repo,
    tree: &CommitTree,
    directory: &str,
    scratch: &Path,
) -> Result<BTreeMap<String, PackageRecord>, ComponentsError> {
    let database = scratch.join("rpmdb");
    std::fs::create_dir_all(&database)
        .map_err(|source| ComponentsError::Io { path: database.clone(), source })?;
    for (checksum, object) in &tree.content {
        for path in &object.paths {
            let Some(name) = path.strip_prefix(directory).and_then(|rest| rest.strip_prefix('/')) else {
                continue;
            };
            if name.contains('/') {
                continue;
            }
            let object_error =
                |message: String| ComponentsError::Object { checksum: checksum.clone(), message };
            let (stream, _, _) = repo
                .load_file(checksum, gio::Cancellable::NONE)
                .map_err(|error| object_error(error.to_string()))?;
            let Some(stream) = stream else { continue };
            let target = database.join(name);
            let mut file = std::fs::File::create(&target)
                .map_err(|source| ComponentsError::Io { path: target.clone(), source })?;
            std::io::copy(&mut stream.into_read(), &mut file)
                .map_err(|source| ComponentsError::Io { path: target.clone(), source })?;
        }
    }
    let backend = if database.join("rpmdb.sqlite").exists() { "sqlite" } else { "bdb_ro" };
    let output = Command::new("rpm")
        .arg("--dbpath")
        .arg(&database)
        .arg("--define")
        .arg(format!("_db_backend {backend}"))
        .args([
            "-qa",
            "--qf",
            "@P\t%{NAME}\t%{BUILDTIME}\t%{SOURCERPM}\n[@F\t%{FILENAMES}\n][@C\t%{CHANGELOGTIME}\n]",
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ComponentsError::Rpm {
            commit: tree.commit.clone(),
            message: format!("{error} (is rpm installed? scripts/install-deps installs it)"),
        })?;
    if !output.status.success() {
        return Err(ComponentsError::Rpm {
            commit: tree.commit.clone(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(parse_query(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_query(output: &str) -> BTreeMap<String, PackageRecord> {
    let mut packages: BTreeMap<String, PackageRecord> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        let mut fields = line.splitn(4, '\t');
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some("@P"), Some(name), buildtime, source) => {
                let record = packages.entry(name.to_string()).or_default();
                record.buildtime = buildtime.and_then(|text| text.parse().ok()).unwrap_or_default();
                record.source =
                    source.filter(|source| *source != "(none)").map(source_name).unwrap_or_default();
                current = Some(name.to_string());
            }
            (Some("@F"), Some(file), None, None) => {
                if let Some(record) = current.as_ref().and_then(|name| packages.get_mut(name)) {
                    record.files.push(file.to_string());
                }
            }
            (Some("@C"), Some(time), None, None) => {
                if let (Some(record), Ok(time)) =
                    (current.as_ref().and_then(|name| packages.get_mut(name)), time.parse())
                {
                    record.changelog_times.push(time);
                }
            }
            _ => {}
        }
    }
    packages
}

/// The name of a source package from its file name: `bash-5.2.15-3.src.rpm` → `bash`.
fn source_name(file: &str) -> String {
    let stem = file.strip_suffix(".src.rpm").or_else(|| file.strip_suffix(".nosrc.rpm")).unwrap_or(file);
    // Name-version-release: drop the last two dash-separated fields.
    let mut parts = stem.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(name)) => name.to_string(),
        _ => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_paths_map_to_committed_paths() {
        for (file, committed) in [
            ("/etc/passwd", "usr/etc/passwd"),
            ("/etc", "usr/etc"),
            ("/etcetera/x", "etcetera/x"),
            ("/usr/bin/bash", "usr/bin/bash"),
        ] {
            assert_eq!(committed_path(file), committed);
        }
    }

    #[test]
    fn source_names_drop_version_and_release() {
        assert_eq!(source_name("bash-5.2.15-3.src.rpm"), "bash");
        assert_eq!(source_name("python-dateutil-2.8.2-1.fc38.src.rpm"), "python-dateutil");
        assert_eq!(source_name("odd"), "odd");
    }

    #[test]
    fn kernel_and_initramfs_are_recognized() {
        assert!(is_kernel_or_initramfs("usr/lib/modules/6.1.0/vmlinuz"));
        assert!(is_kernel_or_initramfs("usr/lib/modules/6.1.0/initramfs.img"));
        assert!(!is_kernel_or_initramfs("usr/lib/modules/6.1.0/kernel/fs/ext4.ko"));
        assert!(!is_kernel_or_initramfs("usr/lib/vmlinuz"));
    }

    #[test]
    fn directory_components_stop_at_three_levels() {
        assert_eq!(directory_component("usr/lib/python3/os.py"), "usr/lib/python3");
        assert_eq!(directory_component("usr/bin/ls"), "usr/bin");
        assert_eq!(directory_component("README"), "/");
    }

    #[test]
    fn the_query_output_is_parsed_per_package() {
        let output = "@P\tbash\t1700000000\tbash-5.2.15-3.src.rpm\n@F\t/usr/bin/bash\n@F\t/etc/bashrc\n\
                      @C\t1690000000\n@C\t1680000000\n@P\tempty\t(none)\t(none)\n";
        let packages = parse_query(output);
        assert_eq!(packages["bash"].files, ["/usr/bin/bash", "/etc/bashrc"]);
        assert_eq!(packages["bash"].changelog_times, [1690000000, 1680000000]);
        assert_eq!(packages["bash"].buildtime, 1700000000);
        assert_eq!(packages["bash"].source, "bash");
        assert!(packages["empty"].files.is_empty());
        assert_eq!(packages["empty"].source, "");
    }
}

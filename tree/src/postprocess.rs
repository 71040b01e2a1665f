//! Postprocessing of the assembled root filesystem, driven by the treefile, in rpm-ostree's order.
//!
//! The compose runs it in two halves around the treefile's `postprocess` scripts and
//! `postprocess-script` (which the caller runs in bubblewrap), as `rpm-ostree compose tree` does:
//!
//! [`before_scripts`] — rpm-ostree's `rpmostree_treefile_postprocessing`, before the scripts:
//! 1. `remove-from-packages`: every file of the named package whose path (absolute, as in the RPM
//!    header) matches one of the regexes (unanchored, like GRegex) is deleted, recursively;
//! 2. `units`: each unit is enabled from its `[Install]` section (`WantedBy=`, `RequiredBy=`,
//!    `UpheldBy=`, `Alias=`, `Also=`, `DefaultInstance=`) with symlinks under `/usr/lib/systemd/system`;
//!    a unit without install targets goes to `multi-user.target.wants` (rpm-ostree's only target);
//! 3. `default-target`: `/usr/lib/systemd/system/default.target` points to it;
//! 4. `remove-files`: paths relative to the root (`etc/…` is the tree's /etc), deleted recursively;
//!    absolute paths and `..` are rejected, a path not in the tree is not an error (as rpm-ostree);
//! 5. `add-files`: each source (relative to the treefile directory) is copied with its mode; `/etc/…` and
//!    `/usr/etc/…` destinations land in the tree's /etc, which is still at `/etc`.
//!
//! (the caller runs `postprocess` and `postprocess-script` here)
//!
//! [`finalize`] — rpm-ostree's `rpmostree_prepare_rootfs_for_commit` and `postprocess_final`:
//! 1. top-level layout: `dev proc run sys sysroot var` directories; `home`, `root`, `srv`, `mnt` become
//!    symlinks into `/var` (`roothome` for root; their content moves there first), `media` →
//!    `run/media`, `ostree` → `sysroot/ostree`; `/tmp` is a directory (mode 1777) with `tmp-is-dir`
//!    (default true for edition 2024 and containers), else a symlink to `sysroot/tmp`;
//!    `opt-usrlocal`: `var` (default) makes `/opt` → `var/opt` and `/usr/local` → `../var/usrlocal` (package
//!    content of /opt moves to `/usr/lib/opt`, linked from `/var/opt` by tmpfiles.d; /usr/local content moves
//!    to `/var/usrlocal`), `root` keeps both as plain directories, `stateoverlay` makes `/opt` →
//!    `usr/lib/opt` and requires `ostree-state-overlay@` for `/usr/lib/opt` and `/usr/local`;
//! 2. passwd and group split between /etc and /usr/lib, `altfiles` added to nsswitch.conf
//!    ([`crate::passwd`]);
//! 3. `/var`: directories become `d` and symlinks `L` lines of `/usr/lib/tmpfiles.d/arbor-autovar.conf`
//!    (owners by name from the tree's passwd and group; paths another tmpfiles.d file of the tree declares
//!    are left to it), regular files are dropped with a warning listing them, and `/var` is left empty;
//! 4. `/etc` moves to `/usr/etc` (an error if `/usr/etc` already exists);
//! 5. kernel (not for `container`, nothing for `boot-location: kernel-install`): the one kernel, in
//!    `/usr/lib/modules/$kver/vmlinuz` or `/boot/vmlinuz-$kver`, ends up in `/usr/lib/modules/$kver` with
//!    its System.map, config, symvers and HMAC; the build's `/boot/initramfs-$kver.img`, `/boot/loader` and
//!    `/boot/$machine_id` are deleted, other `/boot` content (bootloader files) moves to
//!    `/usr/lib/ostree-boot`, and `/boot` stays as an empty mount point. If the tree has dracut and
//!    `no-initramfs` is not set, the report carries the dracut command for the caller to run in the
//!    sandbox after `finalize` (with the tree's `/usr/etc` visible at `/etc`; rpm-ostree also runs dracut
//!    after the /etc move, once machine-id is reset);
//! 6. `machineid-compat`: an empty `/usr/etc/machine-id` (default), or none with `false`;
//! 7. `readonly-executables`: write bits are removed from every regular file with an execute bit
//!    (rpm-ostree does this when committing, so it comes last).
//!
//! Regular files of the tree are mostly hardlinks to objects of an ostree repository, so nothing here
//! writes to an existing file: files are replaced by a new file renamed over the old one, deleted, or
//! renamed; permissions change only on new files. Symlinks inside the tree are followed as the tree's
//! own `/` would (absolute targets restart at the root), never into the host. Walks are sorted, so the
//! output is the same for the same input.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use treefiles::{Flattened, Treefile};

use crate::passwd::{self, AltfilesChange, PasswdDatabase, PasswdError};
use crate::replace::{TEMPORARY_NAME_ATTEMPTS, create_temporary_beside, replace_file};

/// Permission bits of `st_mode` (setuid, setgid, sticky and rwx for all).
const PERMISSION_BITS: u32 = 0o7777;
/// Write permission for user, group and others.
const WRITE_BITS: u32 = 0o222;
/// Execute permission for user, group and others.
const EXECUTE_BITS: u32 = 0o111;
/// Mode of the directories postprocessing creates (the usual mode of system directories).
const DIRECTORY_MODE: u32 = 0o755;
/// /tmp: writable by everyone, sticky so that users cannot delete each other's files.
const TMP_MODE: u32 = 0o1777;
/// /var/roothome: root's home directory is private.
const ROOT_HOME_MODE: u32 = 0o700;
/// Generated text files (tmpfiles.d, machine-id): world-readable, as rpm-ostree writes them.
const GENERATED_FILE_MODE: u32 = 0o644;
/// Linux gives up on a path after 40 symlinks (ELOOP); resolution inside the tree does the same.
const MAX_SYMLINK_HOPS: usize = 40;
/// A machine id is 128 bits written as 32 lowercase hexadecimal digits.
const MACHINE_ID_LENGTH: usize = 32;

const SYSTEMD_UNIT_DIRECTORY: &str = "usr/lib/systemd/system";
/// Where units are looked up, in systemd's order of precedence.
const UNIT_DIRECTORIES: &[&str] = &["etc/systemd/system", SYSTEMD_UNIT_DIRECTORY];
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];
/// rpm-ostree enables units without install targets here.
const FALLBACK_UNIT_TARGET: &str = "multi-user.target";
const AUTOVAR_TMPFILES: &str = "usr/lib/tmpfiles.d/arbor-autovar.conf";
const TMPFILES_DIRECTORIES: &[&str] = &["usr/lib/tmpfiles.d", "etc/tmpfiles.d"];
/// tmpfiles.d line types that create their path (files, directories, subvolumes, pipes, symlinks,
/// devices, copies); the others only adjust or remove what exists.
const TMPFILES_CREATING_TYPES: &str = "fFdDvqQpLcbC";
const TMPFILES_HEADER: &str =
    "# Generated by arbor from the /var content of the tree's packages; see tmpfiles.d(5).\n";
const MODULES_DIRECTORY: &str = "usr/lib/modules";
/// Where /boot content that is not the kernel goes (rpm-ostree's location; bootupd reads it there).
const OSTREE_BOOT_DIRECTORY: &str = "usr/lib/ostree-boot";
const DRACUT_LOCATIONS: &[&str] = &["usr/bin/dracut", "usr/sbin/dracut"];
/// The xattr in which ostree's bare-user repositories keep a file's real owner, mode and xattrs.
const OSTREE_META_XATTR: &str = "user.ostreemeta";
/// Its GVariant type: user id, group id, mode (big-endian) and xattrs.
const OSTREE_META_VARIANT_TYPE: &str = "(uuua(ayay))";
/// Set by the security policy when the tree is committed; never copied.
const SELINUX_XATTR: &str = "security.selinux";

/// Empty top-level directories every ostree tree has.
const TOPLEVEL_DIRECTORIES: &[&str] = &["dev", "proc", "run", "sys", "sysroot", "var"];
/// Top-level symlinks (link, target) every ostree tree has, as rpm-ostree creates them.
const TOPLEVEL_SYMLINKS: &[(&str, &str)] = &[
    ("home", "var/home"),
    ("root", "var/roothome"),
    ("srv", "var/srv"),
    ("mnt", "var/mnt"),
    ("media", "run/media"),
    ("ostree", "sysroot/ostree"),
];
/// Files under /var that packages leave and that are known to be recreated at run time: dropped without
/// a warning (rpm-ostree's list).
const KNOWN_VAR_STATE_FILES: &[&str] = &[
    "var/lib/systemd/random-seed",
    "var/lib/systemd/catalog/database",
    "var/lib/plymouth/boot-duration",
    "var/log/wtmp",
    "var/log/btmp",
];
const STATE_OVERLAY_TEMPLATE: &str = "ostree-state-overlay@.service";
/// The state overlay instances for `opt-usrlocal: stateoverlay` (systemd-escaped mount paths).
const STATE_OVERLAY_INSTANCES: &[&str] = &["usr-lib-opt", "usr-local"];

#[derive(Debug, thiserror::Error)]
pub enum PostprocessError {
    #[error("{operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove-from-packages: package \"{package}\" is not installed")]
    PackageNotInstalled { package: String },
    #[error("remove-from-packages: package \"{package}\": invalid regex \"{pattern}\": {message}")]
    InvalidRegex { package: String, pattern: String, message: String },
    #[error("{key}: invalid path \"{path}\": {reason}")]
    InvalidPath { key: &'static str, path: String, reason: &'static str },
    #[error("add-files: source {} is not a regular file", file.display())]
    AddFileSourceNotFile { file: PathBuf },
    #[error("add-files: destination {destination} is a directory in the tree")]
    AddFileDestinationIsDirectory { destination: String },
    #[error("{key}: \"{unit}\" is not a unit name (NAME.TYPE, TYPE one of service, socket, target, …)")]
    InvalidUnitName { key: &'static str, unit: String },
    #[error(
        "{key}: unit \"{unit}\" is not in the tree (looked in /etc/systemd/system and /usr/lib/systemd/system)"
    )]
    UnitNotFound { key: &'static str, unit: String },
    #[error("{key}: {path}:{line}: {message}")]
    UnitFile { key: &'static str, path: String, line: usize, message: String },
    #[error("{key}: \"{unit}\" is a template without DefaultInstance=; name an instance, e.g. \"{example}\"")]
    TemplateWithoutInstance { key: &'static str, unit: String, example: String },
    #[error("\"units\" cannot be used with \"machineid-compat: false\"; enable units with systemd presets")]
    UnitsWithoutMachineId,
    #[error("the tree has several kernels ({}); a bootable tree has exactly one", versions.join(", "))]
    MultipleKernels { versions: Vec<String> },
    #[error("cannot move /etc to /usr/etc: /usr/etc already exists in the tree")]
    UsrEtcExists,
    #[error("{path}: expected {expected}, found {found}")]
    UnexpectedFileType { path: String, expected: &'static str, found: &'static str },
    #[error("cannot move {from} to {to}: {to} already exists")]
    MoveConflict { from: String, to: String },
    #[error("{path}: more than {MAX_SYMLINK_HOPS} symlinks (a symlink loop?)")]
    SymlinkLoop { path: String },
    #[error("{path}: the name is not valid UTF-8 (tmpfiles.d entries are text)")]
    NonUtf8Path { path: String },
    #[error("{}: extended attribute {name}: {source}", path.display())]
    Xattr {
        path: PathBuf,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: {OSTREE_META_XATTR} is not ostree file metadata ({OSTREE_META_VARIANT_TYPE})", path.display())]
    InvalidOstreeMeta { path: PathBuf },
    #[error(transparent)]
    Passwd(#[from] PasswdError),
}

type Result<T, E = PostprocessError> = std::result::Result<T, E>;

fn io_error<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PostprocessError + 'a {
    move |source| PostprocessError::Io { operation, path: path.to_path_buf(), source }
}

/// What postprocessing needs besides the tree and the treefile.
#[derive(Debug, Clone, Copy)]
pub struct PostprocessContext<'a> {
    /// The file paths of every installed package (absolute, as in the RPM header), by package name.
    pub package_files: &'a BTreeMap<String, Vec<String>>,
}

/// The dracut run that makes the tree's initramfs; the caller runs it in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsCommand {
    pub kernel_version: String,
    /// Program and arguments, as seen inside the tree (the tree at `/`, its `/usr/etc` at `/etc`).
    pub argv: Vec<String>,
    /// The initramfs dracut writes, relative to the root.
    pub output: PathBuf,
}

/// What postprocessing did, for the compose log and the commit metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostprocessReport {
    /// Tree paths deleted by `remove-from-packages` and `remove-files`, in order.
    pub removed: Vec<String>,
    /// Tree paths written by `add-files`, in order.
    pub added: Vec<String>,
    /// Symlinks created to enable units and set the default target.
    pub enabled_units: Vec<String>,
    /// The kernel version (`ostree.linux` in the commit metadata).
    pub kernel_version: Option<String>,
    /// Whether the tree has a kernel in `/usr/lib/modules/$kver` (`ostree.bootable`).
    pub bootable: bool,
    pub initramfs_command: Option<InitramfsCommand>,
    /// What was done or skipped, in words, in order.
    pub notes: Vec<String>,
    /// Things the treefile author should look at.
    pub warnings: Vec<String>,
}

impl PostprocessReport {
    /// Appends a later step's report.
    pub fn absorb(&mut self, later: PostprocessReport) {
        self.removed.extend(later.removed);
        self.added.extend(later.added);
        self.enabled_units.extend(later.enabled_units);
        if later.kernel_version.is_some() {
            self.kernel_version = later.kernel_version;
        }
        self.bootable |= later.bootable;
        if later.initramfs_command.is_some() {
            self.initramfs_command = later.initramfs_command;
        }
        self.notes.extend(later.notes);
        self.warnings.extend(later.warnings);
    }
}

/// Runs every step: [`before_scripts`] then [`finalize`], for trees without postprocess scripts.
pub fn postprocess(
    root: &Path,
    flattened: &Flattened,
    context: &PostprocessContext,
) -> Result<PostprocessReport, PostprocessError> {
    let mut report = before_scripts(root, flattened, context)?;
    report.absorb(finalize(root, flattened)?);
    Ok(report)
}

/// The steps before the treefile's postprocess scripts (see the module documentation).
pub fn before_scripts(
    root: &Path,
    flattened: &Flattened,
    context: &PostprocessContext,
) -> Result<PostprocessReport, PostprocessError> {
    let treefile = &flattened.treefile;
    let mut report = PostprocessReport::default();
    remove_from_packages(root, treefile, context, &mut report)?;
    enable_units(root, treefile, &mut report)?;
    set_default_target(root, treefile, &mut report)?;
    remove_files(root, treefile, &mut report)?;
    add_files(root, flattened, &mut report)?;
    Ok(report)
}

/// The steps after the treefile's postprocess scripts (see the module documentation).
pub fn finalize(root: &Path, flattened: &Flattened) -> Result<PostprocessReport, PostprocessError> {
    let treefile = &flattened.treefile;
    let mut report = PostprocessReport::default();
    prepare_toplevel(root, treefile, &mut report)?;
    migrate_passwd(root, treefile, &mut report)?;
    convert_var_to_tmpfiles(root, &mut report)?;
    move_etc(root, &mut report)?;
    place_kernel(root, treefile, &mut report)?;
    write_machine_id(root, treefile, &mut report)?;
    if treefile.readonly_executables == Some(true) {
        make_executables_readonly(root, &mut report)?;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------------
// Paths inside the tree

/// A tree path as shown in messages: `/usr/bin/ls`.
fn shown(relative: &Path) -> String {
    format!("/{}", relative.display())
}

/// The tree path of a host path under `root`.
fn shown_host(root: &Path, host: &Path) -> String {
    shown(host.strip_prefix(root).unwrap_or(host))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Root,
    Parent,
    Name(OsString),
}

fn pieces(path: &Path) -> VecDeque<Piece> {
    path.components()
        .filter_map(|component| match component {
            Component::RootDir | Component::Prefix(_) => Some(Piece::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Piece::Parent),
            Component::Normal(name) => Some(Piece::Name(name.to_os_string())),
        })
        .collect()
}

/// The host path of a tree path, following symlinks as the tree's own `/` would: absolute targets
/// restart at `root` and `..` never climbs above it. The last component is followed only with
/// `follow_last`; components that do not exist are kept as they are.
fn resolve(root: &Path, relative: &Path, follow_last: bool) -> Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending = pieces(relative);
    let mut hops = 0;
    while let Some(piece) = pending.pop_front() {
        let name = match piece {
            Piece::Root => {
                resolved.clear();
                continue;
            }
            Piece::Parent => {
                resolved.pop();
                continue;
            }
            Piece::Name(name) => name,
        };
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&name);
        if pending.is_empty() && !follow_last {
            resolved.push(name);
            break;
        }
        let is_symlink =
            fs::symlink_metadata(&candidate).is_ok_and(|metadata| metadata.file_type().is_symlink());
        if !is_symlink {
            resolved.push(name);
            continue;
        }
        hops += 1;
        if hops > MAX_SYMLINK_HOPS {
            return Err(PostprocessError::SymlinkLoop { path: shown(relative) });
        }
        let target = fs::read_link(&candidate).map_err(io_error("reading the symlink", &candidate))?;
        let mut next = pieces(&target);
        next.extend(pending);
        pending = next;
    }
    let mut host = root.to_path_buf();
    host.extend(&resolved);
    Ok(host)
}

/// Metadata without following a final symlink; `None` if nothing is there.
fn metadata_if_present(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("inspecting", path)(error)),
    }
}

fn kind_of(metadata: &fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Deletes a host path (recursively for a directory, never following a final symlink).
fn remove_host_path(path: &Path) -> Result<bool> {
    let Some(metadata) = metadata_if_present(path)? else {
        return Ok(false);
    };
    if metadata.is_dir() {
        fs::remove_dir_all(path).map_err(io_error("removing", path))?;
    } else {
        fs::remove_file(path).map_err(io_error("removing", path))?;
    }
    Ok(true)
}

/// Deletes a tree path; false if it was not there.
fn remove_tree_path(root: &Path, relative: &Path) -> Result<bool> {
    remove_host_path(&resolve(root, relative, false)?)
}

/// Creates a host directory and its missing parents with `mode` (exactly, whatever the umask).
fn create_host_directories(root: &Path, path: &Path, mode: u32) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = path;
    loop {
        match metadata_if_present(current)? {
            Some(metadata) if metadata.is_dir() => break,
            Some(metadata) => {
                return Err(PostprocessError::UnexpectedFileType {
                    path: shown_host(root, current),
                    expected: "a directory",
                    found: kind_of(&metadata),
                });
            }
            None => missing.push(current),
        }
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for directory in missing.into_iter().rev() {
        fs::create_dir(directory).map_err(io_error("creating", directory))?;
        fs::set_permissions(directory, Permissions::from_mode(mode))
            .map_err(io_error("setting the mode of", directory))?;
    }
    Ok(())
}

/// Makes sure a tree directory exists (created with `mode` if missing); returns its host path.
fn ensure_tree_directory(root: &Path, relative: &Path, mode: u32) -> Result<PathBuf> {
    let host = resolve(root, relative, true)?;
    create_host_directories(root, &host, mode)?;
    Ok(host)
}

/// A tree path given as text in the treefile or an RPM header: made relative to the root, `..` rejected.
fn tree_relative(text: &str, key: &'static str) -> Result<PathBuf> {
    let trimmed = text.trim_start_matches('/');
    let path = Path::new(trimmed);
    if path.components().any(|component| component == Component::ParentDir) {
        return Err(PostprocessError::InvalidPath {
            key,
            path: text.to_string(),
            reason: "must not contain \"..\"",
        });
    }
    if path.components().all(|component| component == Component::CurDir) {
        return Err(PostprocessError::InvalidPath {
            key,
            path: text.to_string(),
            reason: "names the whole tree",
        });
    }
    Ok(path.to_path_buf())
}

/// The sorted entries of a host directory, with their metadata (symlinks not followed).
fn sorted_entries(directory: &Path) -> Result<Vec<(OsString, PathBuf, fs::Metadata)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(directory).map_err(io_error("reading the directory", directory))? {
        let entry = entry.map_err(io_error("reading the directory", directory))?;
        let path = entry.path();
        let metadata = fs::symlink_metadata(&path).map_err(io_error("inspecting", &path))?;
        entries.push((entry.file_name(), path, metadata));
    }
    entries.sort_by(|left, right| left.0.cmp(&right.0));
    Ok(entries)
}

/// Moves a host directory's entries into another directory (created with the source's mode if
/// missing, by renaming the whole directory).
fn move_directory_content(root: &Path, from: &Path, to: &Path) -> Result<()> {
    if metadata_if_present(to)?.is_none() {
        if let Some(parent) = to.parent() {
            create_host_directories(root, parent, DIRECTORY_MODE)?;
        }
        return fs::rename(from, to).map_err(io_error("moving", from));
    }
    for (name, path, _) in sorted_entries(from)? {
        let destination = to.join(&name);
        if metadata_if_present(&destination)?.is_some() {
            return Err(PostprocessError::MoveConflict {
                from: shown_host(root, &path),
                to: shown_host(root, &destination),
            });
        }
        fs::rename(&path, &destination).map_err(io_error("moving", &path))?;
    }
    fs::remove_dir(from).map_err(io_error("removing", from))
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(io_error("creating the symlink", link))
}

// ---------------------------------------------------------------------------------------------------
// Before the scripts

fn remove_from_packages(
    root: &Path,
    treefile: &Treefile,
    context: &PostprocessContext,
    report: &mut PostprocessReport,
) -> Result<()> {
    for entry in treefile.remove_from_packages.iter().flatten() {
        let files = context
            .package_files
            .get(&entry.package)
            .ok_or_else(|| PostprocessError::PackageNotInstalled { package: entry.package.clone() })?;
        for pattern in &entry.patterns {
            let regex = Regex::new(pattern).map_err(|error| PostprocessError::InvalidRegex {
                package: entry.package.clone(),
                pattern: pattern.clone(),
                message: error.to_string(),
            })?;
            for file in files.iter().filter(|file| regex.is_match(file)) {
                let relative = tree_relative(file, "remove-from-packages")?;
                if remove_tree_path(root, &relative)? {
                    report.removed.push(shown(&relative));
                }
            }
        }
    }
    Ok(())
}

fn remove_files(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    const KEY: &str = "remove-files";
    for name in treefile.remove_files.iter().flatten() {
        if name.starts_with('/') {
            return Err(PostprocessError::InvalidPath {
                key: KEY,
                path: name.clone(),
                reason: "must be relative to the root, like \"usr/share/info\"",
            });
        }
        if name.contains("..") {
            return Err(PostprocessError::InvalidPath {
                key: KEY,
                path: name.clone(),
                reason: "must not contain \"..\"",
            });
        }
        let relative = tree_relative(name, KEY)?;
        if remove_tree_path(root, &relative)? {
            report.removed.push(shown(&relative));
        } else {
            report.notes.push(format!("remove-files: {} is not in the tree", shown(&relative)));
        }
    }
    Ok(())
}

fn add_files(root: &Path, flattened: &Flattened, report: &mut PostprocessReport) -> Result<()> {
    const KEY: &str = "add-files";
    for entry in flattened.treefile.add_files.iter().flatten() {
        let source = Path::new(&entry.source);
        let source =
            if source.is_absolute() { source.to_path_buf() } else { flattened.directory.join(source) };
        let metadata = fs::metadata(&source).map_err(io_error("reading the add-files source", &source))?;
        if !metadata.is_file() {
            return Err(PostprocessError::AddFileSourceNotFile { file: source });
        }
        let contents = fs::read(&source).map_err(io_error("reading the add-files source", &source))?;
        let mode = metadata.permissions().mode() & PERMISSION_BITS;

        let mut destination = tree_relative(&entry.destination, KEY)?;
        // rpm-ostree writes `/etc/…` to `/usr/etc/…`; here /etc has not moved yet, so `/usr/etc/…` goes to it.
        if let Ok(rest) = destination.strip_prefix("usr/etc")
            && metadata_if_present(&root.join("etc"))?.is_some_and(|etc| etc.is_dir())
        {
            destination = Path::new("etc").join(rest);
        }
        let Some(file_name) = destination.file_name() else {
            return Err(PostprocessError::InvalidPath {
                key: KEY,
                path: entry.destination.clone(),
                reason: "does not name a file",
            });
        };
        let parent =
            ensure_tree_directory(root, destination.parent().unwrap_or(Path::new("")), DIRECTORY_MODE)?;
        let target = parent.join(file_name);
        if metadata_if_present(&target)?.is_some_and(|existing| existing.is_dir()) {
            return Err(PostprocessError::AddFileDestinationIsDirectory { destination: shown(&destination) });
        }
        replace_file(&target, &contents, mode).map_err(io_error("writing", &target))?;
        report.added.push(shown(&destination));
    }
    Ok(())
}

/// The `[Install]` section of a unit file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct InstallSection {
    wanted_by: Vec<String>,
    required_by: Vec<String>,
    upheld_by: Vec<String>,
    also: Vec<String>,
    alias: Vec<String>,
    default_instance: Option<String>,
}

/// Reads the `[Install]` section of a unit file (systemd syntax: `#`/`;` comments, `\` continuations,
/// space-separated lists, an empty assignment resets a list). `file` names the file in errors.
fn parse_install_section(text: &str, file: &str, key: &'static str) -> Result<InstallSection> {
    let error = |line: usize, message: &str| PostprocessError::UnitFile {
        key,
        path: file.to_string(),
        line,
        message: message.to_string(),
    };
    let mut install = InstallSection::default();
    let mut section = String::new();
    let mut logical = String::new();
    let mut first_line = 0;
    for (index, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            first_line = index + 1;
            let trimmed = raw.trim_start();
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
        }
        if let Some(continued) = raw.strip_suffix('\\') {
            logical.push_str(continued);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name =
                header.strip_suffix(']').ok_or_else(|| error(first_line, "unterminated section header"))?;
            section = name.to_string();
            continue;
        }
        if section != "Install" {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or_else(|| error(first_line, "expected KEY=VALUE"))?;
        let value = value.trim();
        let list = match name.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "UpheldBy" => &mut install.upheld_by,
            "Also" => &mut install.also,
            "Alias" => &mut install.alias,
            "DefaultInstance" => {
                install.default_instance = (!value.is_empty()).then(|| value.to_string());
                continue;
            }
            _ => continue,
        };
        if value.is_empty() {
            list.clear();
        } else {
            list.extend(value.split_whitespace().map(str::to_string));
        }
    }
    Ok(install)
}

/// `NAME.TYPE` with a known type, no `/`.
fn validate_unit_name(unit: &str, key: &'static str) -> Result<()> {
    let valid = !unit.contains('/')
        && !unit.starts_with('.')
        && unit.rsplit_once('.').is_some_and(|(name, kind)| !name.is_empty() && UNIT_TYPES.contains(&kind));
    if valid { Ok(()) } else { Err(PostprocessError::InvalidUnitName { key, unit: unit.to_string() }) }
}

/// `foo@.service` (a template, no instance).
fn is_template(unit: &str) -> bool {
    unit.rsplit_once('.').is_some_and(|(name, _)| name.ends_with('@'))
}

/// The template of an instance: `foo@bar.service` → `foo@.service`.
fn template_of(unit: &str) -> Option<String> {
    let (name, kind) = unit.rsplit_once('.')?;
    let (prefix, instance) = name.split_once('@')?;
    (!instance.is_empty()).then(|| format!("{prefix}@.{kind}"))
}

/// An instance of a template: `foo@.service` + `bar` → `foo@bar.service`.
fn instance_of(template: &str, instance: &str) -> String {
    match template.rsplit_once("@.") {
        Some((prefix, kind)) => format!("{prefix}@{instance}.{kind}"),
        None => template.to_string(),
    }
}

/// A unit file found in the tree.
struct FoundUnit {
    /// Tree path of the unit file, e.g. `usr/lib/systemd/system/sshd.service`.
    relative: PathBuf,
}

impl FoundUnit {
    /// The symlink target systemd uses for it: its absolute path in the tree.
    fn target(&self) -> String {
        shown(&self.relative)
    }
}

fn find_unit(root: &Path, unit: &str) -> Result<Option<FoundUnit>> {
    let mut names = vec![unit.to_string()];
    names.extend(template_of(unit));
    for directory in UNIT_DIRECTORIES {
        for name in &names {
            let relative = Path::new(directory).join(name);
            if metadata_if_present(&resolve(root, &relative, false)?)?.is_some() {
                return Ok(Some(FoundUnit { relative }));
            }
        }
    }
    Ok(None)
}

fn enable_units(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    let units = treefile.units.as_deref().unwrap_or_default();
    if units.is_empty() {
        return Ok(());
    }
    if treefile.machineid_compat == Some(false) {
        return Err(PostprocessError::UnitsWithoutMachineId);
    }
    let mut visited = BTreeSet::new();
    for unit in units {
        enable_unit(root, unit, "units", &mut visited, report)?;
    }
    Ok(())
}

fn enable_unit(
    root: &Path,
    unit: &str,
    key: &'static str,
    visited: &mut BTreeSet<String>,
    report: &mut PostprocessReport,
) -> Result<()> {
    if !visited.insert(unit.to_string()) {
        return Ok(());
    }
    validate_unit_name(unit, key)?;
    let found = find_unit(root, unit)?
        .ok_or_else(|| PostprocessError::UnitNotFound { key, unit: unit.to_string() })?;
    let file = resolve(root, &found.relative, true)?;
    let text = fs::read_to_string(&file).map_err(io_error("reading the unit", &file))?;
    let install = parse_install_section(&text, &found.target(), key)?;

    let link_name = if is_template(unit) {
        match &install.default_instance {
            Some(instance) => instance_of(unit, instance),
            None => {
                return Err(PostprocessError::TemplateWithoutInstance {
                    key,
                    unit: unit.to_string(),
                    example: instance_of(unit, "example"),
                });
            }
        }
    } else {
        unit.to_string()
    };

    let mut dependents: Vec<(String, &str)> = Vec::new();
    dependents.extend(install.wanted_by.iter().map(|target| (target.clone(), "wants")));
    dependents.extend(install.required_by.iter().map(|target| (target.clone(), "requires")));
    dependents.extend(install.upheld_by.iter().map(|target| (target.clone(), "upholds")));
    if dependents.is_empty() && install.also.is_empty() && install.alias.is_empty() {
        report.notes.push(format!(
            "{key}: {unit} has no [Install] targets; enabled in {FALLBACK_UNIT_TARGET}.wants as rpm-ostree does"
        ));
        dependents.push((FALLBACK_UNIT_TARGET.to_string(), "wants"));
    }
    for (dependent, suffix) in dependents {
        validate_unit_name(&dependent, key)?;
        let link = Path::new(SYSTEMD_UNIT_DIRECTORY).join(format!("{dependent}.{suffix}")).join(&link_name);
        create_unit_symlink(root, &link, &found.target(), report)?;
    }
    for alias in &install.alias {
        validate_unit_name(alias, key)?;
        let link = Path::new(SYSTEMD_UNIT_DIRECTORY).join(alias);
        create_unit_symlink(root, &link, &found.target(), report)?;
    }
    for also in &install.also {
        enable_unit(root, also, key, visited, report)?;
    }
    Ok(())
}

/// Creates a unit symlink unless something is already there (rpm-ostree keeps what is there).
fn create_unit_symlink(root: &Path, link: &Path, target: &str, report: &mut PostprocessReport) -> Result<()> {
    let parent = ensure_tree_directory(root, link.parent().unwrap_or(Path::new("")), DIRECTORY_MODE)?;
    let host = parent.join(link.file_name().unwrap_or_default());
    if metadata_if_present(&host)?.is_some() {
        return Ok(());
    }
    symlink(target, &host)?;
    report.enabled_units.push(shown(link));
    Ok(())
}

fn set_default_target(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    const KEY: &str = "default-target";
    let Some(target) = &treefile.default_target else {
        return Ok(());
    };
    validate_unit_name(target, KEY)?;
    let found = find_unit(root, target)?
        .ok_or_else(|| PostprocessError::UnitNotFound { key: KEY, unit: target.clone() })?;
    let link = Path::new(SYSTEMD_UNIT_DIRECTORY).join("default.target");
    let parent = ensure_tree_directory(root, Path::new(SYSTEMD_UNIT_DIRECTORY), DIRECTORY_MODE)?;
    let host = parent.join("default.target");
    match metadata_if_present(&host)? {
        Some(existing) if existing.is_dir() => {
            return Err(PostprocessError::UnexpectedFileType {
                path: shown(&link),
                expected: "a symlink",
                found: "a directory",
            });
        }
        Some(_) => fs::remove_file(&host).map_err(io_error("removing", &host))?,
        None => {}
    }
    symlink(&found.target(), &host)?;
    report.enabled_units.push(shown(&link));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// After the scripts

/// Edition 2024 changes some defaults.
fn is_edition_2024(treefile: &Treefile) -> bool {
    treefile.edition.as_ref().is_some_and(|edition| edition.0 == "2024")
}

fn is_container(treefile: &Treefile) -> bool {
    treefile.container == Some(true)
}

fn tmp_is_dir(treefile: &Treefile) -> bool {
    treefile.tmp_is_dir.unwrap_or_else(|| is_edition_2024(treefile) || is_container(treefile))
}

fn prepare_toplevel(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    for name in TOPLEVEL_DIRECTORIES {
        let path = root.join(name);
        match metadata_if_present(&path)? {
            Some(metadata) if metadata.is_dir() => {}
            Some(metadata) => {
                return Err(PostprocessError::UnexpectedFileType {
                    path: shown(Path::new(name)),
                    expected: "a directory",
                    found: kind_of(&metadata),
                });
            }
            None => create_host_directories(root, &path, DIRECTORY_MODE)?,
        }
    }
    for (link, target) in TOPLEVEL_SYMLINKS {
        place_toplevel_symlink(root, link, target, report)?;
    }
    prepare_tmp(root, treefile, report)?;
    prepare_opt_usrlocal(root, treefile, report)
}

/// Turns a top-level path into a symlink to `target`; the content of a directory there moves to the
/// target when it is under /var, and is dropped otherwise (/run is empty at boot, /sysroot is the
/// deployment).
fn place_toplevel_symlink(
    root: &Path,
    link: &str,
    target: &str,
    report: &mut PostprocessReport,
) -> Result<()> {
    let link_path = root.join(link);
    let target_path = root.join(target);
    match metadata_if_present(&link_path)? {
        Some(metadata) if metadata.file_type().is_symlink() => {
            let current = fs::read_link(&link_path).map_err(io_error("reading the symlink", &link_path))?;
            if current == Path::new(target) {
                return ensure_symlink_target(root, target);
            }
            fs::remove_file(&link_path).map_err(io_error("removing", &link_path))?;
        }
        Some(metadata) if metadata.is_dir() => {
            if target.starts_with("var/") {
                move_directory_content(root, &link_path, &target_path)?;
                report.notes.push(format!("moved /{link} to /{target}"));
            } else {
                let had_content = !sorted_entries(&link_path)?.is_empty();
                fs::remove_dir_all(&link_path).map_err(io_error("removing", &link_path))?;
                if had_content {
                    report
                        .warnings
                        .push(format!("dropped the content of /{link}: it becomes a symlink to /{target}"));
                }
            }
        }
        Some(metadata) => {
            return Err(PostprocessError::UnexpectedFileType {
                path: format!("/{link}"),
                expected: "a directory or a symlink",
                found: kind_of(&metadata),
            });
        }
        None => {}
    }
    ensure_symlink_target(root, target)?;
    symlink(target, &link_path)
}

/// The /var directories that top-level symlinks point to must exist, so that tmpfiles.d recreates them.
fn ensure_symlink_target(root: &Path, target: &str) -> Result<()> {
    if target.starts_with("var/") {
        let mode = if target == "var/roothome" { ROOT_HOME_MODE } else { DIRECTORY_MODE };
        create_host_directories(root, &root.join(target), mode)?;
    }
    Ok(())
}

fn prepare_tmp(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    let tmp = root.join("tmp");
    let existing = metadata_if_present(&tmp)?;
    if tmp_is_dir(treefile) {
        if existing.as_ref().is_some_and(|metadata| !metadata.is_dir()) {
            fs::remove_file(&tmp).map_err(io_error("removing", &tmp))?;
        }
        create_host_directories(root, &tmp, TMP_MODE)?;
        // /tmp is a directory: its mode may change (only regular files are shared with the repository).
        fs::set_permissions(&tmp, Permissions::from_mode(TMP_MODE))
            .map_err(io_error("setting the mode of", &tmp))?;
        report.notes.push("/tmp is a directory (tmp-is-dir)".to_string());
        return Ok(());
    }
    if let Some(metadata) = existing {
        if metadata.is_dir() && !sorted_entries(&tmp)?.is_empty() {
            report
                .warnings
                .push("dropped the content of /tmp: it becomes a symlink to /sysroot/tmp".to_string());
        }
        remove_host_path(&tmp)?;
    }
    symlink("sysroot/tmp", &tmp)
}

/// `opt-usrlocal`: var (default), root or stateoverlay.
fn prepare_opt_usrlocal(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    let mode = treefile.opt_usrlocal.as_ref().map_or("var", |mode| mode.as_str());
    let opt = root.join("opt");
    let usr_local = root.join("usr/local");
    match mode {
        "root" => {
            for path in [&opt, &usr_local] {
                if metadata_if_present(path)?.is_some_and(|metadata| !metadata.is_dir()) {
                    fs::remove_file(path).map_err(io_error("removing", path))?;
                }
                create_host_directories(root, path, DIRECTORY_MODE)?;
            }
            report.notes.push("opt-usrlocal root: /opt and /usr/local are read-only directories".to_string());
        }
        "stateoverlay" => {
            move_opt_to_usr_lib(root, report, false)?;
            ensure_tree_directory(root, Path::new("usr/lib/opt"), DIRECTORY_MODE)?;
            symlink("usr/lib/opt", &opt)?;
            if metadata_if_present(&usr_local)?.is_some_and(|metadata| !metadata.is_dir()) {
                fs::remove_file(&usr_local).map_err(io_error("removing", &usr_local))?;
            }
            create_host_directories(root, &usr_local, DIRECTORY_MODE)?;
            let template = Path::new(SYSTEMD_UNIT_DIRECTORY).join(STATE_OVERLAY_TEMPLATE);
            if metadata_if_present(&resolve(root, &template, false)?)?.is_none() {
                report.warnings.push(format!(
                    "opt-usrlocal stateoverlay: the tree has no {}; /opt and /usr/local will be read-only",
                    shown(&template)
                ));
            }
            for instance in STATE_OVERLAY_INSTANCES {
                let link = Path::new(SYSTEMD_UNIT_DIRECTORY)
                    .join("local-fs.target.requires")
                    .join(instance_of(STATE_OVERLAY_TEMPLATE, instance));
                create_unit_symlink(root, &link, &format!("../{STATE_OVERLAY_TEMPLATE}"), report)?;
            }
        }
        _ => {
            move_opt_to_usr_lib(root, report, true)?;
            create_host_directories(root, &root.join("var/opt"), DIRECTORY_MODE)?;
            symlink("var/opt", &opt)?;
            match metadata_if_present(&usr_local)? {
                Some(metadata) if metadata.is_dir() => {
                    move_directory_content(root, &usr_local, &root.join("var/usrlocal"))?;
                }
                Some(_) => fs::remove_file(&usr_local).map_err(io_error("removing", &usr_local))?,
                None => {}
            }
            create_host_directories(root, &root.join("var/usrlocal"), DIRECTORY_MODE)?;
            create_host_directories(root, &root.join("usr"), DIRECTORY_MODE)?;
            symlink("../var/usrlocal", &usr_local)?;
        }
    }
    Ok(())
}

/// Moves package content of /opt to /usr/lib/opt (read-only, in the commit) and removes /opt; with
/// `link_from_var`, `/var/opt/NAME` symlinks to `/usr/lib/opt/NAME` keep the paths working.
fn move_opt_to_usr_lib(root: &Path, report: &mut PostprocessReport, link_from_var: bool) -> Result<()> {
    let opt = root.join("opt");
    let Some(metadata) = metadata_if_present(&opt)? else {
        return Ok(());
    };
    if !metadata.is_dir() {
        return fs::remove_file(&opt).map_err(io_error("removing", &opt));
    }
    let entries = sorted_entries(&opt)?;
    if entries.is_empty() {
        return fs::remove_dir(&opt).map_err(io_error("removing", &opt));
    }
    let usr_lib_opt = ensure_tree_directory(root, Path::new("usr/lib/opt"), DIRECTORY_MODE)?;
    let mut moved = Vec::new();
    for (name, path, _) in entries {
        let destination = usr_lib_opt.join(&name);
        if metadata_if_present(&destination)?.is_some() {
            return Err(PostprocessError::MoveConflict {
                from: shown_host(root, &path),
                to: shown_host(root, &destination),
            });
        }
        fs::rename(&path, &destination).map_err(io_error("moving", &path))?;
        let name = name.to_string_lossy().into_owned();
        if link_from_var {
            let var_opt = root.join("var/opt");
            create_host_directories(root, &var_opt, DIRECTORY_MODE)?;
            symlink(&format!("/usr/lib/opt/{name}"), &var_opt.join(&name))?;
        }
        moved.push(format!("/opt/{name}"));
    }
    fs::remove_dir(&opt).map_err(io_error("removing", &opt))?;
    report.notes.push(format!("moved package content of /opt to /usr/lib/opt: {}", moved.join(", ")));
    Ok(())
}

fn migrate_passwd(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    let members = treefile.etc_group_members.as_deref().unwrap_or_default();
    let migration = passwd::migrate_to_usr_lib(root, members)?;
    report.notes.push(format!(
        "moved {} users and {} groups to /usr/lib/passwd and /usr/lib/group",
        migration.users_moved.len(),
        migration.groups_moved.len()
    ));
    if !migration.unknown_etc_group_members.is_empty() {
        report.warnings.push(format!(
            "etc-group-members names groups the tree does not have: {}",
            migration.unknown_etc_group_members.join(", ")
        ));
    }
    match passwd::enable_altfiles(root)? {
        AltfilesChange::Added => report.notes.push("added altfiles to /etc/nsswitch.conf".to_string()),
        AltfilesChange::AlreadyPresent => {}
        AltfilesChange::Symlink => report.notes.push(
            "/etc/nsswitch.conf is a symlink (authselect?): left alone, as rpm-ostree does".to_string(),
        ),
        AltfilesChange::Missing => report.warnings.push(
            "the tree has no /etc/nsswitch.conf: users in /usr/lib/passwd are invisible without nss-altfiles"
                .to_string(),
        ),
    }
    Ok(())
}

/// Quotes a path for tmpfiles.d: `%` starts a specifier; white space, quotes, backslashes and control
/// characters need a double-quoted C-style string.
fn tmpfiles_path(path: &str) -> String {
    let escaped = path.replace('%', "%%");
    let needs_quotes = escaped.chars().any(|character| {
        character.is_whitespace() || character.is_control() || matches!(character, '"' | '\'' | '\\')
    });
    if !needs_quotes {
        return escaped;
    }
    let mut quoted = String::from("\"");
    for character in escaped.chars() {
        match character {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(character);
            }
            control if control.is_control() => quoted.push_str(&format!("\\x{:02x}", u32::from(control))),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// The paths that the tree's other tmpfiles.d files declare (without specifiers).
fn declared_tmpfiles_paths(root: &Path) -> Result<BTreeSet<String>> {
    let mut declared = BTreeSet::new();
    for directory in TMPFILES_DIRECTORIES {
        let host = resolve(root, Path::new(directory), true)?;
        if !metadata_if_present(&host)?.is_some_and(|metadata| metadata.is_dir()) {
            continue;
        }
        for (name, path, _) in sorted_entries(&host)? {
            let is_conf = Path::new(&name).extension() == Some(OsStr::new("conf"));
            if !is_conf || root.join(AUTOVAR_TMPFILES) == path {
                continue;
            }
            let file = resolve(root, &Path::new(directory).join(&name), true)?;
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut fields = line.split_whitespace();
                let (kind, path) = match (fields.next(), fields.next()) {
                    (Some(kind), Some(path)) => (kind, path.trim_matches('"')),
                    _ => continue,
                };
                // Only lines that create the path count (not z/Z/x/X/r/R/e/w, which act on what exists).
                let creates =
                    kind.chars().next().is_some_and(|letter| TMPFILES_CREATING_TYPES.contains(letter));
                if creates && !path.contains('%') {
                    declared.insert(path.trim_end_matches('/').to_string());
                }
            }
        }
    }
    Ok(declared)
}

/// Collects tmpfiles.d lines for the content of a /var directory, depth first, sorted.
fn collect_var_entries(
    root: &Path,
    directory: &Path,
    database: &PasswdDatabase,
    lines: &mut Vec<(String, String)>,
    dropped: &mut Vec<String>,
    unknown_ids: &mut BTreeSet<String>,
) -> Result<()> {
    for (_, path, metadata) in sorted_entries(directory)? {
        let shown_path = shown_host(root, &path);
        if path.to_str().is_none() {
            return Err(PostprocessError::NonUtf8Path { path: shown_path });
        }
        let quoted = tmpfiles_path(&shown_path);
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("reading the symlink", &path))?;
            let Some(target) = target.to_str() else {
                return Err(PostprocessError::NonUtf8Path {
                    path: format!("{shown_path} -> {}", target.display()),
                });
            };
            lines.push((shown_path, format!("L {quoted} - - - - {}", target.replace('%', "%%"))));
        } else if metadata.is_dir() {
            let user = database.user_name(metadata.uid()).map(str::to_string).unwrap_or_else(|| {
                unknown_ids.insert(format!("user id {}", metadata.uid()));
                metadata.uid().to_string()
            });
            let group = database.group_name(metadata.gid()).map(str::to_string).unwrap_or_else(|| {
                unknown_ids.insert(format!("group id {}", metadata.gid()));
                metadata.gid().to_string()
            });
            let mode = metadata.mode() & PERMISSION_BITS;
            lines.push((shown_path, format!("d {quoted} {mode:04o} {user} {group} - -")));
            collect_var_entries(root, &path, database, lines, dropped, unknown_ids)?;
        } else {
            dropped.push(shown_path);
        }
    }
    Ok(())
}

fn convert_var_to_tmpfiles(root: &Path, report: &mut PostprocessReport) -> Result<()> {
    let var = root.join("var");
    // /var/run is /run (a tmpfs); systemd's own tmpfiles.d makes the /var/run symlink.
    if remove_host_path(&var.join("run"))? {
        report.notes.push("removed /var/run: /run is a tmpfs, systemd links /var/run to it".to_string());
    }
    for known in KNOWN_VAR_STATE_FILES {
        remove_host_path(&root.join(known))?;
    }
    let database = PasswdDatabase::read(root)?;
    let declared = declared_tmpfiles_paths(root)?;
    let mut lines = Vec::new();
    let mut dropped = Vec::new();
    let mut unknown_ids = BTreeSet::new();
    collect_var_entries(root, &var, &database, &mut lines, &mut dropped, &mut unknown_ids)?;

    let mut text = String::from(TMPFILES_HEADER);
    let mut left_to_others = 0;
    for (path, line) in &lines {
        if declared.contains(path) {
            left_to_others += 1;
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    let directory = ensure_tree_directory(root, Path::new("usr/lib/tmpfiles.d"), DIRECTORY_MODE)?;
    let output = directory.join("arbor-autovar.conf");
    replace_file(&output, text.as_bytes(), GENERATED_FILE_MODE).map_err(io_error("writing", &output))?;

    for (_, path, _) in sorted_entries(&var)? {
        remove_host_path(&path)?;
    }
    report.notes.push(format!(
        "/var: {} tmpfiles.d entries in /{AUTOVAR_TMPFILES}, {left_to_others} left to the tree's own tmpfiles.d",
        lines.len() - left_to_others
    ));
    if !dropped.is_empty() {
        report.warnings.push(format!(
            "dropped {} files under /var (only directories and symlinks become tmpfiles.d entries): {}",
            dropped.len(),
            dropped.join(", ")
        ));
    }
    if !unknown_ids.is_empty() {
        report.warnings.push(format!(
            "/var owners not in the tree's passwd/group, written as numbers: {}",
            unknown_ids.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

fn move_etc(root: &Path, report: &mut PostprocessReport) -> Result<()> {
    let etc = root.join("etc");
    let Some(metadata) = metadata_if_present(&etc)? else {
        report.notes.push("the tree has no /etc".to_string());
        return Ok(());
    };
    if !metadata.is_dir() {
        return Err(PostprocessError::UnexpectedFileType {
            path: "/etc".to_string(),
            expected: "a directory",
            found: kind_of(&metadata),
        });
    }
    let usr_etc = root.join("usr/etc");
    if metadata_if_present(&usr_etc)?.is_some() {
        return Err(PostprocessError::UsrEtcExists);
    }
    create_host_directories(root, &root.join("usr"), DIRECTORY_MODE)?;
    fs::rename(&etc, &usr_etc).map_err(io_error("moving", &etc))?;
    report.notes.push("moved /etc to /usr/etc".to_string());
    Ok(())
}

/// `boot-location`; edition 2024 defaults to modules, older ones to new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BootLocation {
    New,
    Modules,
    KernelInstall,
}

impl BootLocation {
    fn of(treefile: &Treefile) -> BootLocation {
        match treefile.boot_location.as_ref().map(|location| location.as_str()) {
            Some("modules") => BootLocation::Modules,
            Some("kernel-install") => BootLocation::KernelInstall,
            Some(_) => BootLocation::New,
            None if is_edition_2024(treefile) => BootLocation::Modules,
            None => BootLocation::New,
        }
    }
}

/// Kernel versions with a `vmlinuz` in `/usr/lib/modules/$kver`.
fn kernels_in_modules(root: &Path) -> Result<BTreeSet<String>> {
    let modules = resolve(root, Path::new(MODULES_DIRECTORY), true)?;
    let mut versions = BTreeSet::new();
    if !metadata_if_present(&modules)?.is_some_and(|metadata| metadata.is_dir()) {
        return Ok(versions);
    }
    for (name, path, metadata) in sorted_entries(&modules)? {
        let has_kernel = metadata_if_present(&path.join("vmlinuz"))?.is_some_and(|kernel| kernel.is_file());
        if metadata.is_dir()
            && has_kernel
            && let Some(version) = name.to_str()
        {
            versions.insert(version.to_string());
        }
    }
    Ok(versions)
}

/// Kernel versions with a `/boot/vmlinuz-$kver` (not dracut's rescue kernel).
fn kernels_in_boot(boot: &Path) -> Result<BTreeSet<String>> {
    let mut versions = BTreeSet::new();
    for (name, _, metadata) in sorted_entries(boot)? {
        let version = name.to_str().and_then(|name| name.strip_prefix("vmlinuz-"));
        if let Some(version) = version
            && metadata.is_file()
            && !version.is_empty()
            && !version.contains("-rescue-")
        {
            versions.insert(version.to_string());
        }
    }
    Ok(versions)
}

/// The tree's machine id, if one was generated during the build (systemd's %post does that).
fn machine_id(root: &Path) -> Result<Option<String>> {
    let path = resolve(root, &Path::new("usr/etc").join("machine-id"), true)?;
    if !metadata_if_present(&path)?.is_some_and(|metadata| metadata.is_file()) {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(io_error("reading", &path))?;
    let id = text.trim();
    let valid = id.len() == MACHINE_ID_LENGTH && id.bytes().all(|byte| byte.is_ascii_hexdigit());
    Ok(valid.then(|| id.to_string()))
}

fn place_kernel(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    if is_container(treefile) {
        report.notes.push("container: no kernel processing; the tree is not bootable".to_string());
        return Ok(());
    }
    let location = BootLocation::of(treefile);
    if location == BootLocation::KernelInstall {
        let versions = kernels_in_modules(root)?;
        if versions.len() > 1 {
            return Err(PostprocessError::MultipleKernels { versions: versions.into_iter().collect() });
        }
        report.kernel_version = versions.into_iter().next();
        report.bootable = report.kernel_version.is_some();
        report
            .notes
            .push("boot-location kernel-install: the kernel and initramfs are left to kernel-install".into());
        return Ok(());
    }

    let boot = root.join("boot");
    let boot_metadata = metadata_if_present(&boot)?;
    if let Some(metadata) = &boot_metadata
        && !metadata.is_dir()
    {
        return Err(PostprocessError::UnexpectedFileType {
            path: "/boot".to_string(),
            expected: "a directory",
            found: kind_of(metadata),
        });
    }
    let has_boot = boot_metadata.is_some();
    if has_boot {
        // kernel-install's per-machine directory and the bootloader entries belong to the installed system.
        if let Some(id) = machine_id(root)?
            && remove_host_path(&boot.join(&id))?
        {
            report
                .notes
                .push(format!("removed /boot/{id} (kernel-install output for the build's machine id)"));
        }
        if remove_host_path(&boot.join("loader"))? {
            report.notes.push("removed /boot/loader (ostree writes the bootloader entries)".to_string());
        }
    }

    let mut versions = kernels_in_modules(root)?;
    if has_boot {
        versions.extend(kernels_in_boot(&boot)?);
    }
    if versions.len() > 1 {
        return Err(PostprocessError::MultipleKernels { versions: versions.into_iter().collect() });
    }
    let version = versions.into_iter().next();

    if let Some(version) = &version
        && has_boot
    {
        let module_directory = Path::new(MODULES_DIRECTORY).join(version);
        let module_host = ensure_tree_directory(root, &module_directory, DIRECTORY_MODE)?;
        let kernel_files = [
            (format!("vmlinuz-{version}"), "vmlinuz"),
            (format!("System.map-{version}"), "System.map"),
            (format!("config-{version}"), "config"),
            (format!("symvers-{version}.gz"), "symvers.gz"),
            (format!(".vmlinuz-{version}.hmac"), ".vmlinuz.hmac"),
        ];
        let mut moved = Vec::new();
        for (boot_name, module_name) in kernel_files {
            let from = boot.join(&boot_name);
            if metadata_if_present(&from)?.is_none() {
                continue;
            }
            let to = module_host.join(module_name);
            if metadata_if_present(&to)?.is_some() {
                fs::remove_file(&from).map_err(io_error("removing", &from))?;
            } else {
                // A rename keeps the file (and its link to the repository object) as it is.
                fs::rename(&from, &to).map_err(io_error("moving", &from))?;
            }
            moved.push(format!("/boot/{boot_name}"));
        }
        if !moved.is_empty() {
            report.notes.push(format!("moved to {}: {}", shown(&module_directory), moved.join(", ")));
        }
        let package_initramfs = boot.join(format!("initramfs-{version}.img"));
        if remove_host_path(&package_initramfs)? {
            report.notes.push(format!("removed /boot/initramfs-{version}.img (made on the build host)"));
        }
    }
    if has_boot {
        move_boot_leftovers(root, &boot, report)?;
    }
    create_host_directories(root, &boot, DIRECTORY_MODE)?;

    let Some(version) = version else {
        report.notes.push("no kernel in the tree: it is not bootable".to_string());
        return Ok(());
    };
    if location == BootLocation::New {
        report.notes.push(
            "boot-location new: the kernel is in /usr/lib/modules only (where ostree looks first); no copy in /usr/lib/ostree-boot"
                .to_string(),
        );
    }
    report.kernel_version = Some(version.clone());
    report.bootable = true;
    plan_initramfs(root, treefile, &version, report)
}

/// Moves what is left in /boot (bootloader files) to /usr/lib/ostree-boot, as rpm-ostree does.
fn move_boot_leftovers(root: &Path, boot: &Path, report: &mut PostprocessReport) -> Result<()> {
    let leftovers = sorted_entries(boot)?;
    if leftovers.is_empty() {
        return Ok(());
    }
    let destination = ensure_tree_directory(root, Path::new(OSTREE_BOOT_DIRECTORY), DIRECTORY_MODE)?;
    let mut moved = Vec::new();
    for (name, path, _) in leftovers {
        let target = destination.join(&name);
        if metadata_if_present(&target)?.is_some() {
            return Err(PostprocessError::MoveConflict {
                from: shown_host(root, &path),
                to: shown_host(root, &target),
            });
        }
        fs::rename(&path, &target).map_err(io_error("moving", &path))?;
        moved.push(shown_host(root, &path));
    }
    report.notes.push(format!("moved to /{OSTREE_BOOT_DIRECTORY}: {}", moved.join(", ")));
    Ok(())
}

fn plan_initramfs(
    root: &Path,
    treefile: &Treefile,
    version: &str,
    report: &mut PostprocessReport,
) -> Result<()> {
    if treefile.no_initramfs == Some(true) {
        report.notes.push("no initramfs generated (no-initramfs is set)".to_string());
        return Ok(());
    }
    let mut dracut = None;
    for location in DRACUT_LOCATIONS {
        let host = resolve(root, Path::new(location), true)?;
        if metadata_if_present(&host)?.is_some_and(|metadata| metadata.is_file()) {
            dracut = Some(shown(Path::new(location)));
            break;
        }
    }
    let Some(dracut) = dracut else {
        report.notes.push("no initramfs generated (the tree has no dracut)".to_string());
        return Ok(());
    };
    let output = Path::new(MODULES_DIRECTORY).join(version).join("initramfs.img");
    // dracut must write a new file, never into one shared with the repository.
    if remove_tree_path(root, &output)? {
        report.notes.push(format!("removed the package's {}: dracut writes a new one", shown(&output)));
    }
    let mut argv = vec![dracut];
    // As rpm-ostree: `initramfs-args` replace the default --no-hostonly.
    match treefile.initramfs_args.as_deref() {
        Some(arguments) if !arguments.is_empty() => argv.extend(arguments.iter().cloned()),
        _ => argv.push("--no-hostonly".to_string()),
    }
    argv.extend(["--kver", version, "--reproducible", "-v", "--add", "ostree", "-f"].map(str::to_string));
    argv.push(shown(&output));
    report.initramfs_command = Some(InitramfsCommand { kernel_version: version.to_string(), argv, output });
    Ok(())
}

fn write_machine_id(root: &Path, treefile: &Treefile, report: &mut PostprocessReport) -> Result<()> {
    let etc = passwd::etc_directory(root);
    let path = etc.join("machine-id");
    if treefile.machineid_compat == Some(false) {
        if remove_host_path(&path)? {
            report.notes.push("removed /etc/machine-id (machineid-compat: false)".to_string());
        }
        return Ok(());
    }
    create_host_directories(root, &etc, DIRECTORY_MODE)?;
    replace_file(&path, b"", GENERATED_FILE_MODE).map_err(io_error("writing", &path))?;
    report.notes.push("empty /etc/machine-id (machineid-compat)".to_string());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// readonly-executables

fn xattr_error(path: &Path, name: &str) -> impl FnOnce(rustix::io::Errno) -> PostprocessError {
    let path = path.to_path_buf();
    let name = name.to_string();
    move |errno| PostprocessError::Xattr { path, name, source: io::Error::from(errno) }
}

/// The extended attributes of an open file, in the order the file system lists them.
fn read_xattrs(file: &File, path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let size = rustix::fs::flistxattr_query(file).map_err(xattr_error(path, "(list)"))?;
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut list = vec![0_u8; size];
    let length = rustix::fs::flistxattr(file, &mut list[..]).map_err(xattr_error(path, "(list)"))?;
    list.truncate(length);
    let mut xattrs = Vec::new();
    for name in list.split(|byte| *byte == 0).filter(|name| !name.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let size = rustix::fs::fgetxattr_query(file, name.as_str()).map_err(xattr_error(path, &name))?;
        let mut value = vec![0_u8; size];
        let length = if size == 0 {
            0
        } else {
            rustix::fs::fgetxattr(file, name.as_str(), &mut value[..]).map_err(xattr_error(path, &name))?
        };
        value.truncate(length);
        xattrs.push((name, value));
    }
    Ok(xattrs)
}

/// The ostree metadata of a bare-user file: user id, group id, mode, xattrs.
type OstreeMeta = (u32, u32, u32, Vec<(Vec<u8>, Vec<u8>)>);

fn parse_ostree_meta(value: &[u8], path: &Path) -> Result<OstreeMeta> {
    use ostree::glib;
    let invalid = || PostprocessError::InvalidOstreeMeta { path: path.to_path_buf() };
    let variant_type = glib::VariantTy::new(OSTREE_META_VARIANT_TYPE).map_err(|_| invalid())?;
    let variant = glib::Variant::from_bytes_with_type(&glib::Bytes::from(value), variant_type);
    variant.get::<OstreeMeta>().ok_or_else(invalid)
}

fn format_ostree_meta(meta: OstreeMeta) -> Vec<u8> {
    use ostree::glib::prelude::*;
    meta.to_variant().data().to_vec()
}

/// The mode that counts for a file: from `user.ostreemeta` in a bare-user checkout, else its own.
fn effective_mode(path: &Path, metadata: &fs::Metadata) -> Result<u32> {
    match rustix::fs::lgetxattr_query(path, OSTREE_META_XATTR) {
        Ok(size) => {
            let mut value = vec![0_u8; size];
            let length = rustix::fs::lgetxattr(path, OSTREE_META_XATTR, &mut value[..])
                .map_err(xattr_error(path, OSTREE_META_XATTR))?;
            value.truncate(length);
            let (_, _, mode, _) = parse_ostree_meta(&value, path)?;
            Ok(u32::from_be(mode) & PERMISSION_BITS)
        }
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => Ok(metadata.mode() & PERMISSION_BITS),
        Err(errno) => Err(xattr_error(path, OSTREE_META_XATTR)(errno)),
    }
}

/// Replaces a regular file by a copy without write bits: same content, owner, times and xattrs
/// (`user.ostreemeta` gets the new mode too; the SELinux label is left to the commit).
fn replace_without_write_bits(path: &Path, metadata: &fs::Metadata) -> Result<()> {
    let mut source = File::open(path).map_err(io_error("opening", path))?;
    let mut xattrs = read_xattrs(&source, path)?;
    xattrs.retain(|(name, _)| name != SELINUX_XATTR);
    for (name, value) in &mut xattrs {
        if name == OSTREE_META_XATTR {
            let (user_id, group_id, mode, inner) = parse_ostree_meta(value, path)?;
            let mode = (u32::from_be(mode) & !WRITE_BITS).to_be();
            *value = format_ostree_meta((user_id, group_id, mode, inner));
        }
    }
    let mode = metadata.mode() & PERMISSION_BITS & !WRITE_BITS;
    let times = FileTimes::new()
        .set_accessed(metadata.accessed().map_err(io_error("inspecting", path))?)
        .set_modified(metadata.modified().map_err(io_error("inspecting", path))?);

    let (temporary, mut copy) =
        create_temporary_beside(path).map_err(io_error("creating a file beside", path))?;
    let result = (|| -> Result<()> {
        io::copy(&mut source, &mut copy).map_err(io_error("copying", path))?;
        let copy_metadata = copy.metadata().map_err(io_error("inspecting", &temporary))?;
        if (copy_metadata.uid(), copy_metadata.gid()) != (metadata.uid(), metadata.gid()) {
            std::os::unix::fs::fchown(&copy, Some(metadata.uid()), Some(metadata.gid()))
                .map_err(io_error("setting the owner of", &temporary))?;
        }
        // After chown, which clears setuid/setgid bits and file capabilities.
        copy.set_permissions(Permissions::from_mode(mode))
            .map_err(io_error("setting the mode of", &temporary))?;
        for (name, value) in &xattrs {
            rustix::fs::fsetxattr(&copy, name.as_str(), value, rustix::fs::XattrFlags::empty())
                .map_err(xattr_error(path, name))?;
        }
        copy.set_times(times).map_err(io_error("setting the times of", &temporary))?;
        fs::rename(&temporary, path).map_err(io_error("replacing", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Links `path` to an already replaced file (the tree had them hardlinked together).
fn relink(existing: &Path, path: &Path) -> Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for attempt in 0..TEMPORARY_NAME_ATTEMPTS {
        let candidate = directory.join(format!(".{name}.arbor-link-{}-{attempt}", std::process::id()));
        match fs::hard_link(existing, &candidate) {
            Ok(()) => return fs::rename(&candidate, path).map_err(io_error("replacing", path)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(io_error("linking", path)(error)),
        }
    }
    Err(io_error("linking", path)(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    )))
}

fn make_executables_readonly(root: &Path, report: &mut PostprocessReport) -> Result<()> {
    // Files hardlinked together in the tree stay hardlinked together: (device, inode) → replacement.
    let mut replaced: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut count = 0_usize;
    let mut directories = vec![root.to_path_buf()];
    while let Some(directory) = directories.pop() {
        let entries = sorted_entries(&directory)?;
        for (_, path, metadata) in entries.iter().rev() {
            if metadata.is_dir() {
                directories.push(path.clone());
            }
        }
        for (_, path, metadata) in entries {
            if !metadata.is_file() {
                continue;
            }
            let mode = effective_mode(&path, &metadata)?;
            if mode & EXECUTE_BITS == 0 || (mode & WRITE_BITS == 0 && metadata.mode() & WRITE_BITS == 0) {
                continue;
            }
            let identity = (metadata.dev(), metadata.ino());
            match replaced.get(&identity) {
                Some(existing) => relink(existing, &path)?,
                None => {
                    replace_without_write_bits(&path, &metadata)?;
                    replaced.insert(identity, path.clone());
                }
            }
            count += 1;
        }
    }
    report.notes.push(format!("readonly-executables: removed write bits from {count} executables"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_install_sections() {
        let text = "[Unit]\nDescription=x\nWantedBy=ignored.target\n\n[Install]\n# comment\nWantedBy=multi-user.target \\\n  graphical.target\nRequiredBy=a.target\nRequiredBy=\nRequiredBy=b.target\nAlias=alias.service\nAlso=other.socket\nDefaultInstance=tty1\n";
        let install = parse_install_section(text, "/usr/lib/systemd/system/x.service", "units").unwrap();
        assert_eq!(
            install,
            InstallSection {
                wanted_by: vec!["multi-user.target".into(), "graphical.target".into()],
                required_by: vec!["b.target".into()],
                upheld_by: vec![],
                also: vec!["other.socket".into()],
                alias: vec!["alias.service".into()],
                default_instance: Some("tty1".into()),
            }
        );
        let broken = parse_install_section("[Install]\nWantedBy\n", "/x.service", "units").unwrap_err();
        assert_eq!(broken.to_string(), "units: /x.service:2: expected KEY=VALUE");
        let header = parse_install_section("[Install\n", "/x.service", "units").unwrap_err();
        assert_eq!(header.to_string(), "units: /x.service:1: unterminated section header");
    }

    #[test]
    fn unit_names() {
        let cases = [
            ("sshd.service", true),
            ("getty@tty1.service", true),
            ("getty@.service", true),
            ("multi-user.target", true),
            ("sshd", false),
            ("../sshd.service", false),
            (".service", false),
            ("x.conf", false),
        ];
        for (unit, valid) in cases {
            assert_eq!(validate_unit_name(unit, "units").is_ok(), valid, "{unit}");
        }
        assert_eq!(template_of("getty@tty1.service").as_deref(), Some("getty@.service"));
        assert_eq!(template_of("getty@.service"), None);
        assert_eq!(template_of("sshd.service"), None);
        assert_eq!(instance_of("getty@.service", "tty1"), "getty@tty1.service");
        assert!(is_template("getty@.service"));
        assert!(!is_template("getty@tty1.service"));
    }

    #[test]
    fn tmpfiles_quoting() {
        let cases = [
            ("/var/lib/foo", "/var/lib/foo"),
            ("/var/lib/a b", "\"/var/lib/a b\""),
            ("/var/lib/100%", "/var/lib/100%%"),
            ("/var/lib/q\"uote", "\"/var/lib/q\\\"uote\""),
            ("/var/lib/new\nline", "\"/var/lib/new\\x0aline\""),
        ];
        for (path, expected) in cases {
            assert_eq!(tmpfiles_path(path), expected);
        }
    }

    #[test]
    fn resolves_symlinks_inside_the_tree() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("usr/absolute")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("usr/escape")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let cases = [
            ("lib/x", true, root.join("usr/lib/x")),
            ("usr/absolute/x", true, root.join("usr/lib/x")),
            ("usr/escape/etc", true, root.join("etc")),
            ("lib", false, root.join("lib")),
            ("lib", true, root.join("usr/lib")),
            ("missing/lib", true, root.join("missing/lib")),
        ];
        for (relative, follow_last, expected) in cases {
            assert_eq!(resolve(root, Path::new(relative), follow_last).unwrap(), expected, "{relative}");
        }
        let error = resolve(root, Path::new("loop/x"), true).unwrap_err();
        assert_eq!(error.to_string(), "/loop/x: more than 40 symlinks (a symlink loop?)");
    }

    #[test]
    fn ostree_meta_round_trips() {
        let meta: OstreeMeta =
            (0, 0, (0o100_755_u32).to_be(), vec![(b"security.capability".to_vec(), vec![1, 2])]);
        let bytes = format_ostree_meta(meta.clone());
        assert_eq!(parse_ostree_meta(&bytes, Path::new("/x")).unwrap(), meta);
    }
}

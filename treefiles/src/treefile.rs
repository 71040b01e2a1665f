//! The treefile model: every top-level key rpm-ostree accepts, declared once in a table from which the
//! struct, key lookup, include merging, rendering and the JSON Schema are generated.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::read::{
    AddFile, BootLocation, CheckPasswd, Edition, FieldValue, MetadataPlacement, OptUsrlocal, PackageSet,
    Releasever, RemoveFromPackage, RepoPackages, Rojig, RpmdbBackend, Sysusers, Variable,
};

/// How a key is treated beyond its value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFlag {
    /// `${var}` is substituted in its string values.
    Substitute,
    /// Names files relative to the treefile that sets it.
    NamesFiles,
    /// Only for client-side layering: must be empty in a base compose.
    DeriveOnly,
    /// Deprecated: accepted with a warning.
    Deprecated(&'static str),
    /// Accepted for compatibility; arbor does nothing with it.
    NoEffect,
    /// A null value is an error (rpm-ostree's field is not an `Option`), with this advice; the value
    /// of every other key may be null, which is read as absent.
    NotNull(&'static str),
}

/// What the key table says about one key.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    pub name: &'static str,
    pub legacy_name: Option<&'static str>,
    pub description: &'static str,
    pub flags: &'static [KeyFlag],
    pub schema: fn() -> Value,
    /// The hint of the warning when the value is null ("every entry commented out?" for lists and
    /// mappings).
    pub null_hint: &'static str,
}

impl KeyInfo {
    pub fn has(&self, wanted: KeyFlag) -> bool {
        self.flags.iter().any(|flag| std::mem::discriminant(flag) == std::mem::discriminant(&wanted))
    }
}

macro_rules! treefile_keys {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $name:literal $(| $legacy:literal)? => $type:ty $([$($flag:expr),*])?;
    )*) => {
        /// A treefile: one file as read, or the flattened result of a file and its includes.
        /// Every key is optional; `None` means "not set" (rpm-ostree's defaults apply).
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Treefile {
            $($(#[doc = $doc])+ pub $field: Option<$type>,)*
        }

        /// Every key, in the order rendered output uses.
        pub const KEYS: &[KeyInfo] = &[$(KeyInfo {
            name: $name,
            legacy_name: treefile_keys!(@legacy $($legacy)?),
            description: concat!($($doc),+),
            flags: &[$($($flag),*)?],
            schema: <$type as FieldValue>::schema,
            null_hint: <$type as FieldValue>::NULL_HINT,
        }),*];

        impl Treefile {
            /// Reads the value of a known key; returns false if `name` is not a key of the table.
            pub(crate) fn read_key(
                &mut self,
                name: &str,
                node: &crate::node::Node,
                reader: &mut crate::read::Reader,
                path: &crate::locate::NodePath,
            ) -> bool {
                match name {
                    $($name => { self.$field = <$type as FieldValue>::read(node, reader, path); true })*
                    _ => false,
                }
            }

            /// Merges an included treefile into this (the including) one, key by key.
            pub(crate) fn merge_included(&mut self, included: Treefile) {
                $(if let Some(value) = included.$field {
                    <$type as FieldValue>::merge_included(&mut self.$field, value);
                })*
            }

            /// Which keys are set, and whether their value is empty.
            pub(crate) fn set_keys(&self) -> Vec<(&'static str, bool)> {
                let mut keys = Vec::new();
                $(if let Some(value) = &self.$field {
                    keys.push(($name, <$type as FieldValue>::is_empty(value)));
                })*
                keys
            }

            /// The treefile as a JSON object: keys in table order, unset keys left out, and so are keys
            /// whose value renders as null (a free-form value such as `custom: .nan`), which would read
            /// back as unset.
            pub fn to_json(&self) -> Map<String, Value> {
                let mut object = Map::new();
                $(if let Some(value) = &self.$field {
                    let rendered = <$type as FieldValue>::render(value);
                    if !rendered.is_null() {
                        object.insert($name.to_string(), rendered);
                    }
                })*
                object
            }
        }
    };
    (@legacy $legacy:literal) => { Some($legacy) };
    (@legacy) => { None };
}

use KeyFlag::{Deprecated, DeriveOnly, NamesFiles, NoEffect, NotNull, Substitute};

treefile_keys! {
    /// Treefile edition: "2014" (default) or "2024" (kernel in /usr/lib/modules, /tmp a directory).
    edition: "edition" => Edition;
    /// The ostree branch to commit to, e.g. "fedora/${basearch}/coreos/${stream}". Required.
    reference: "ref" => String [Substitute];
    /// Architecture this treefile is for; must match the compose architecture.
    basearch: "basearch" => String;
    /// Free-form metadata about the tree (not part of the input hash).
    metadata: "metadata" => BTreeMap<String, Value> [Substitute];
    /// Variables for conditions and ${var} substitution: booleans, non-negative integers or strings.
    variables: "variables" => BTreeMap<String, Variable>;
    /// Values for $variables in .repo files.
    repovars: "repovars" => BTreeMap<String, String>;
    /// Legacy jigdo metadata (name, summary, license, description); accepted, no effect.
    rojig: "rojig" => Rojig [NoEffect];
    /// Repository ids, from .repo files next to the treefile, to install from.
    repos: "repos" => Vec<String>;
    /// Repositories used only for packages pinned by a lockfile.
    lockfile_repos: "lockfile-repos" => Vec<String>;
    /// Release version: sets the "releasever" variable and $releasever in .repo files.
    releasever: "releasever" => Releasever;
    /// Packages to install; entries split on white space; quote version queries: "'podman >= 4.1'".
    packages: "packages" => PackageSet;
    /// Packages that must come from a given repository.
    repo_packages: "repo-packages" => Vec<RepoPackages>;
    /// Deprecated list of packages installed first.
    bootstrap_packages: "bootstrap_packages" => PackageSet [Deprecated("merged into packages")];
    /// Packages that must not be installed (a hard dependency on one is an error).
    exclude_packages: "exclude-packages" => Vec<String>;
    /// Install weak dependencies (Recommends). Default true.
    recommends: "recommends" => bool;
    /// Install documentation. Default true.
    documentation: "documentation" => bool;
    /// Languages to keep (rpm's %_install_langs).
    install_langs: "install-langs" => Vec<String>;
    /// The platform module (e.g. platform:f41).
    platform_module: "platform-module" => String [Substitute];
    /// ostree commits layered on top of the package tree.
    ostree_layers: "ostree-layers" => Vec<String>;
    /// ostree commits layered on top, allowed to replace files.
    ostree_override_layers: "ostree-override-layers" => Vec<String>;
    /// Files to copy into the tree: [source next to the treefile, destination].
    add_files: "add-files" => Vec<AddFile> [NamesFiles];
    /// Paths (regexes) to remove from the tree.
    remove_files: "remove-files" => Vec<String>;
    /// Paths (regexes) to remove from given packages: [package, regex, ...].
    remove_from_packages: "remove-from-packages" => Vec<RemoveFromPackage>;
    /// Shell scripts run in the tree after install, in order (bubblewrap, no network).
    postprocess: "postprocess" => Vec<String>;
    /// A script file run last in the tree (bubblewrap, no network).
    postprocess_script: "postprocess-script" => String [NamesFiles];
    /// systemd units to enable.
    units: "units" => Vec<String>;
    /// The systemd default target.
    default_target: "default-target" | "default_target" => String;
    /// Users to add to groups in /etc/group.
    etc_group_members: "etc-group-members" => Vec<String>;
    /// Keep the previous build's uid/gid assignments. Default true.
    preserve_passwd: "preserve-passwd" => bool;
    /// How /etc/passwd is checked: {type: none|previous|file|data}.
    check_passwd: "check-passwd" => CheckPasswd [NamesFiles];
    /// How /etc/group is checked: {type: none|previous|file|data}.
    check_groups: "check-groups" => CheckPasswd [NamesFiles];
    /// Users allowed to disappear between builds ("*" for all).
    ignore_removed_users: "ignore-removed-users" => BTreeSet<String>;
    /// Groups allowed to disappear between builds ("*" for all).
    ignore_removed_groups: "ignore-removed-groups" => BTreeSet<String>;
    /// How users and groups are created: compose-auto or compose-forced.
    sysusers: "sysusers" => Sysusers;
    /// Keep /etc/machine-id compatibility. Default true; false disables "units".
    machineid_compat: "machineid-compat" => bool;
    /// Remove write bits from executables.
    readonly_executables: "readonly-executables" => bool;
    /// Make /tmp a directory instead of a symlink to sysroot/tmp.
    tmp_is_dir: "tmp-is-dir" => bool;
    /// How /opt and /usr/local are set up: var, root or stateoverlay.
    opt_usrlocal: "opt-usrlocal" => OptUsrlocal;
    /// Where the kernel goes: new, modules or kernel-install.
    boot_location: "boot-location" | "boot_location" => BootLocation;
    /// Extra dracut arguments (deprecated upstream; kept for compatibility).
    initramfs_args: "initramfs-args" => Vec<String>;
    /// Do not generate an initramfs.
    no_initramfs: "no-initramfs" => bool;
    /// Label the tree with SELinux. Default true.
    selinux: "selinux" => bool;
    /// SELinux labeling version (0 or 1).
    selinux_label_version: "selinux-label-version" => u32;
    /// Keep device nodes from packages out of the tree.
    ignore_devices: "ignore-devices" => bool;
    /// Carry IMA signatures as xattrs.
    ima: "ima" => bool;
    /// Build a container image tree (implies tmp-is-dir, no SELinux).
    container: "container" => bool;
    /// Default command for container images.
    container_cmd: "container-cmd" => Vec<String>;
    /// Wrap rpm and dracut with client-side shims.
    cliwrap: "cliwrap" => bool;
    /// Binaries to wrap with cliwrap.
    cliwrap_binaries: "cliwrap-binaries" => Vec<String>;
    /// GPG key id to sign the commit with.
    gpg_key: "gpg-key" | "gpg_key" => String;
    /// Version prefix, e.g. "${releasever}.<date:%Y%m%d>.dev"; versions count up within a prefix.
    automatic_version_prefix: "automatic-version-prefix" | "automatic_version_prefix" => String [Substitute];
    /// One ASCII character between prefix and counter. Default ".".
    automatic_version_suffix: "automatic-version-suffix" => String;
    /// Rewrite VERSION / PRETTY_NAME in os-release with this value.
    mutate_os_release: "mutate-os-release" => String [Substitute];
    /// Extra commit metadata (string values may use ${var}).
    add_commit_metadata: "add-commit-metadata" => BTreeMap<String, Value> [Substitute];
    /// Where repo metadata goes in the commit: inline, detached or disabled.
    repo_metadata: "repo-metadata" => MetadataPlacement
        [NotNull("write inline, detached or disabled, or remove the key for the default (inline)")];
    /// Where advisory metadata goes in the commit: inline, detached or disabled.
    advisories_metadata: "advisories-metadata" => MetadataPlacement;
    /// rpmdb format: target, host (or an explicit backend).
    rpmdb: "rpmdb" => RpmdbBackend;
    /// Make the rpmdb reproducible (needs SOURCE_DATE_EPOCH).
    rpmdb_normalize: "rpmdb-normalize" => bool;
    /// Client-side: the base to layer on.
    base_refspec: "base-refspec" => String [DeriveOnly];
    /// Client-side: the container image to layer on.
    container_image_reference: "container-image-reference" => String [DeriveOnly];
    /// Client-side: local RPMs to layer.
    packages_local: "packages-local" => BTreeMap<String, String> [DeriveOnly];
    /// Client-side: local RPMs allowed to replace files.
    packages_local_fileoverride: "packages-local-fileoverride" => BTreeMap<String, String> [DeriveOnly];
    /// Client-side: base packages to remove.
    override_remove: "override-remove" => Vec<String> [DeriveOnly];
    /// Client-side: base packages to replace from repositories.
    ex_override_replace: "ex-override-replace" => Vec<Value> [DeriveOnly];
    /// Client-side: base packages to replace with local RPMs.
    override_replace_local: "override-replace-local" => BTreeMap<String, String> [DeriveOnly];
    /// Client-side: initramfs settings.
    initramfs: "initramfs" => Value [DeriveOnly];
    /// Client-side: custom origin data.
    custom: "custom" => Value [DeriveOnly];
    /// Client-side: a base commit to use.
    override_commit: "override-commit" => String [DeriveOnly];
    /// Client-side: text shown when the system is not configured.
    unconfigured_state: "unconfigured-state" => String [DeriveOnly];
}

impl Treefile {
    /// Every package spec: `packages` plus the packages of `repo-packages`.
    pub fn all_packages(&self) -> BTreeSet<&str> {
        let mut all: BTreeSet<&str> = self.packages.iter().flat_map(PackageSet::iter).collect();
        for entry in self.repo_packages.iter().flatten() {
            all.extend(entry.packages.iter().map(String::as_str));
        }
        all
    }

    /// Rewrites file names relative to the declaring file into names relative to `directory`.
    pub(crate) fn rebase_paths(&mut self, directory: &std::path::Path) {
        let rebase = |name: &mut String| {
            if !name.starts_with('/') {
                *name = crate::paths::normalize(&directory.join(&*name)).to_string_lossy().into_owned();
            }
        };
        if let Some(script) = &mut self.postprocess_script {
            rebase(script);
        }
        for entry in self.add_files.iter_mut().flatten() {
            rebase(&mut entry.source);
        }
        for check in [&mut self.check_passwd, &mut self.check_groups].into_iter().flatten() {
            if check.kind == "file"
                && let Some(filename) = &mut check.filename
            {
                rebase(filename);
            }
        }
    }

    /// Files named by this treefile (relative to its directory): postprocess-script, add-files
    /// sources, passwd/group check files. With the key that names each.
    pub fn referenced_files(&self) -> Vec<(&'static str, &str)> {
        let mut files = Vec::new();
        if let Some(script) = &self.postprocess_script {
            files.push(("postprocess-script", script.as_str()));
        }
        for entry in self.add_files.iter().flatten() {
            files.push(("add-files", entry.source.as_str()));
        }
        for (key, check) in [("check-passwd", &self.check_passwd), ("check-groups", &self.check_groups)] {
            if let Some(CheckPasswd { kind, filename: Some(filename), .. }) = check
                && kind == "file"
            {
                files.push((key, filename.as_str()));
            }
        }
        files
    }
}

/// Looks a key up by its name or legacy name.
pub fn key_info(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|key| key.name == name || key.legacy_name == Some(name))
}

//! Turning an [`RpmSpec`] into `rpm` crate calls, fixing up `SOURCERPM`, and writing the file.

use super::dependency::parse_dependency;
use super::files::{FileEntry, RegularFileKind};
use super::{Compression, DependencyKind, RpmSpec, ScriptPhase};
use anyhow::{Context, Result, bail};
use rpm::{
    BuildConfig, CompressionWithLevel, DependencyFlags, FileOptions, FileOptionsBuilder, HeaderEntry,
    IndexData, IndexSignatureTag, IndexTag, PackageBuilder, RpmFormat, Scriptlet, SignatureHeaderBuilder,
    Timestamp,
};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// zlib's own default level: a fair size at a speed that keeps test fixtures fast.
const GZIP_LEVEL: u32 = 6;
/// zstd's own default level; the `rpm` crate's default (19) is slow for multi-megabyte test payloads.
const ZSTD_LEVEL: i32 = 3;
/// xz's own default preset; preset 9 needs ~700 MiB of memory to compress.
const XZ_LEVEL: u32 = 6;

/// The interpreter every scriptlet runs with, as in a spec file without `-p`.
const SCRIPT_INTERPRETER: &str = "/bin/sh";

fn compression_with_level(compression: Compression) -> CompressionWithLevel {
    match compression {
        Compression::Gzip => CompressionWithLevel::Gzip(GZIP_LEVEL),
        Compression::Zstd => CompressionWithLevel::Zstd(ZSTD_LEVEL),
        Compression::Xz => CompressionWithLevel::Xz(XZ_LEVEL),
        Compression::None => CompressionWithLevel::None,
    }
}

/// Builds the package and returns the bytes of its `.rpm` file.
pub(super) fn package_bytes(spec: &RpmSpec) -> Result<Vec<u8>> {
    let package = build_package(spec)?;
    let mut bytes = Vec::new();
    package.write(&mut bytes).with_context(|| format!("serializing package {}", spec.nevra()))?;
    Ok(bytes)
}

/// Writes the package into `directory` and gives the file the build time as mtime.
pub(super) fn write_package(spec: &RpmSpec, directory: &Path) -> Result<PathBuf> {
    let bytes = package_bytes(spec)?;
    std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    let path = directory.join(spec.file_name());
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let build_time = UNIX_EPOCH + Duration::from_secs(u64::from(spec.build_time));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(build_time))
        .with_context(|| format!("setting the mtime of {}", path.display()))?;
    Ok(path)
}

fn build_package(spec: &RpmSpec) -> Result<rpm::Package> {
    let nevra = spec.nevra();
    let summary = spec.summary.clone().unwrap_or_else(|| format!("Test package {}", spec.name));
    let mut builder = PackageBuilder::new(&spec.name, &spec.version, &spec.license, &spec.arch, &summary);
    builder.using_config(
        BuildConfig::v4().compression(compression_with_level(spec.compression)).source_date(spec.build_time),
    );
    builder.release(spec.release.clone()).build_host(&spec.build_host);
    builder.description(spec.description.clone().unwrap_or(summary));
    if let Some(epoch) = spec.epoch {
        builder.epoch(epoch);
    }
    if let Some(url) = &spec.url {
        builder.url(url.clone());
    }
    if let Some(vendor) = &spec.vendor {
        builder.vendor(vendor.clone());
    }
    if let Some(packager) = &spec.packager {
        builder.packager(packager.clone());
    }
    if let Some(group) = &spec.group {
        builder.group(group.clone());
    }
    add_dependencies(&mut builder, spec)?;
    add_files(&mut builder, spec).with_context(|| format!("adding the files of package {nevra}"))?;
    for (phase, body) in &spec.scripts {
        let script = Scriptlet::new(body.clone()).prog(vec![SCRIPT_INTERPRETER]);
        match phase {
            ScriptPhase::PreInstall => builder.pre_install_script(script),
            ScriptPhase::PostInstall => builder.post_install_script(script),
            ScriptPhase::PreUninstall => builder.pre_uninstall_script(script),
            ScriptPhase::PostUninstall => builder.post_uninstall_script(script),
            ScriptPhase::PreTransaction => builder.pre_trans_script(script),
            ScriptPhase::PostTransaction => builder.post_trans_script(script),
        };
    }
    for entry in &spec.changelog {
        builder.add_changelog_entry(&entry.author, &entry.text, Timestamp(entry.timestamp));
    }
    let package = builder.build().with_context(|| format!("building package {nevra}"))?;
    let mut package = with_source_rpm(package, &spec.source_rpm_name())
        .with_context(|| format!("setting SOURCERPM of package {nevra}"))?;
    if let Some(key) = spec.signing_key {
        package
            .sign_with_timestamp(key.signer()?, Timestamp(spec.build_time))
            .with_context(|| format!("signing package {nevra} with test key {key:?}"))?;
    }
    Ok(package)
}

fn add_dependencies(builder: &mut PackageBuilder, spec: &RpmSpec) -> Result<()> {
    for (kind, text) in &spec.dependencies {
        let mut dependency = parse_dependency(&spec.nevra(), text)?;
        match kind {
            DependencyKind::Requires => builder.requires(dependency),
            DependencyKind::RequiresPreInstall => {
                dependency.flags |= DependencyFlags::SCRIPT_PRE;
                builder.requires(dependency)
            }
            DependencyKind::Provides => builder.provides(dependency),
            DependencyKind::Conflicts => builder.conflicts(dependency),
            DependencyKind::Obsoletes => builder.obsoletes(dependency),
            DependencyKind::Recommends => builder.recommends(dependency),
            DependencyKind::Suggests => builder.suggests(dependency),
            DependencyKind::Supplements => builder.supplements(dependency),
            DependencyKind::Enhances => builder.enhances(dependency),
        };
    }
    Ok(())
}

/// The options of a regular file at `path`, taking content flags and owner from `entry`.
fn regular_options(
    path: &str,
    entry: &FileEntry,
    capabilities: Option<&str>,
    modified_at: Timestamp,
) -> Result<FileOptionsBuilder> {
    let FileEntry::Regular { mode, user, group, kind, .. } = entry else {
        bail!("{path}: internal error, not a regular file entry");
    };
    let mut options =
        FileOptions::new(path).permissions(*mode).user(user).group(group).modified_at(modified_at);
    options = match kind {
        RegularFileKind::Plain => options,
        RegularFileKind::Configuration => options.config().noreplace(),
        RegularFileKind::Documentation => options.doc(),
        RegularFileKind::License => options.license(),
    };
    if let Some(capabilities) = capabilities {
        options =
            options.caps(capabilities).with_context(|| format!("{path}: capabilities `{capabilities}`"))?;
    }
    Ok(options)
}

fn add_files(builder: &mut PackageBuilder, spec: &RpmSpec) -> Result<()> {
    let modified_at = Timestamp(spec.build_time);
    let regular_files: HashMap<&str, &FileEntry> = spec
        .entries
        .iter()
        .filter_map(|entry| match entry {
            FileEntry::Regular { path, .. } => Some((path.as_str(), entry)),
            _ => None,
        })
        .collect();
    let capabilities: HashMap<&str, &str> =
        spec.file_capabilities.iter().map(|(path, caps)| (path.as_str(), caps.as_str())).collect();
    if let Some(path) = capabilities.keys().find(|path| !regular_files.contains_key(**path)) {
        bail!("file capabilities set on {path}, which is not a regular file of this package");
    }
    let hardlink_targets: BTreeSet<&str> = spec
        .entries
        .iter()
        .filter_map(|entry| match entry {
            FileEntry::Hardlink { target, .. } => Some(target.as_str()),
            _ => None,
        })
        .collect();
    for entry in &spec.entries {
        match entry {
            FileEntry::Regular { path, content, .. } => {
                let mut options =
                    regular_options(path, entry, capabilities.get(path.as_str()).copied(), modified_at)?;
                if hardlink_targets.contains(path.as_str()) {
                    options = options.hardlink(path.clone());
                }
                builder.with_file_contents(content.clone(), options)?;
            }
            FileEntry::Hardlink { path, target } => {
                let Some(target_entry) = regular_files.get(target.as_str()) else {
                    bail!("hardlink {path} -> {target}: the target is not a regular file of this package");
                };
                let FileEntry::Regular { content, .. } = target_entry else {
                    bail!("hardlink {path} -> {target}: internal error, target is not a regular file");
                };
                let target_capabilities = capabilities.get(target.as_str()).copied();
                let options = regular_options(path, target_entry, target_capabilities, modified_at)?;
                builder.with_file_contents(content.clone(), options.hardlink(target.clone()))?;
            }
            FileEntry::Directory { path, mode, user, group } => {
                let options = FileOptions::dir(path).permissions(*mode).user(user).group(group);
                builder.with_dir_entry(options.modified_at(modified_at))?;
            }
            FileEntry::Symlink { path, target } => {
                builder.with_symlink(FileOptions::symlink(path, target).modified_at(modified_at))?;
            }
            FileEntry::Ghost { path, mode } => {
                builder.with_ghost(FileOptions::ghost(path).permissions(*mode).modified_at(modified_at))?;
            }
        }
    }
    Ok(())
}

/// Replaces the `SOURCERPM` tag (the `rpm` crate always writes `(none)`) and recomputes the
/// signature header's digests over the new header. The package must be unsigned (it is signed
/// afterwards, if at all).
fn with_source_rpm(package: rpm::Package, source_rpm: &str) -> Result<rpm::Package> {
    let entries = package.metadata.header.get_all_entries()?;
    let rewritten = entries
        .into_iter()
        // The region tag is recreated by `from_entries`.
        .filter(|(tag, _)| *tag != IndexTag::RPMTAG_HEADERIMMUTABLE as u32)
        .map(|(tag, data)| {
            if tag == IndexTag::RPMTAG_SOURCERPM as u32 {
                HeaderEntry::new(tag, IndexData::StringTag(source_rpm.to_string()))
            } else {
                HeaderEntry::new(tag, data)
            }
        });
    let header = rpm::Header::<IndexTag>::from_entries(rewritten, IndexTag::RPMTAG_HEADERIMMUTABLE);
    let mut package = rpm::Package {
        metadata: rpm::PackageMetadata {
            lead: package.metadata.lead,
            signature: rpm::Header::<IndexSignatureTag>::new_empty(),
            header,
        },
        payload: package.payload,
    };
    let header_bytes = package.header_bytes()?;
    let content_length = header_bytes.len() as u64 + package.payload.len() as u64;
    package.metadata.signature = SignatureHeaderBuilder::new()
        .format(RpmFormat::V4)
        .set_content_length(content_length)
        .calculate_digests(&header_bytes)
        .build()?;
    Ok(package)
}

//! A minimal operating system as RPM packages, for tests that compose whole trees, and the hostile
//! packages that [`RpmSpec`] deliberately cannot describe.
//!
//! [`MinimalOs`] is three packages that together make a tree in which scriptlets and postprocess
//! scripts run:
//! - `filesystem`: the merged-`/usr` skeleton (`/bin` → `usr/bin`, `/lib` → `usr/lib`, `/lib64` →
//!   `usr/lib64`, `/sbin` → `usr/sbin`), the usual directories, and the link the ELF interpreter is
//!   named by (Debian: `/usr/lib64/ld-linux-x86-64.so.2`);
//! - `setup`: `/etc/passwd` and `/etc/group` with `root` and the user and group `alice` (1000);
//! - `shell`: the host's `/bin/sh` at `/usr/bin/sh` with the shared libraries it needs (see
//!   [`HostFiles`]); it provides `/bin/sh`, which every scriptlet requires.
//!
//! For tests of hostile input: [`write_device_node_package`] writes a package whose payload holds a
//! character device, and [`corrupt_payload_content`] changes a file's content inside an uncompressed
//! payload after the header recorded its digest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rpm::{BuildConfig, CompressionWithLevel, FileOptions, PackageBuilder, Timestamp};

use crate::host_files::HostFiles;
use crate::repository::TestRepository;
use crate::rpm_builder::{DEFAULT_BUILD_TIME, RpmSpec};

/// The architecture of the fixture's packages that carry host binaries.
pub const ARCH: &str = "x86_64";

/// Version and release of every fixture package.
pub const VERSION: &str = "1.0";
pub const RELEASE: &str = "1";

/// The names of the [`MinimalOs`] packages, in the order [`MinimalOs::packages`] returns them.
pub const PACKAGE_NAMES: [&str; 3] = ["filesystem", "setup", "shell"];

/// The ordinary user (and its own group) that `setup` defines besides root.
pub const USER_NAME: &str = "alice";
pub const USER_ID: u32 = 1000;
pub const GROUP_NAME: &str = "alice";
pub const GROUP_ID: u32 = 1000;

/// The host program copied into `shell`: whatever `/bin/sh` is (dash on Debian, bash on Fedora).
const HOST_SHELL: &str = "/bin/sh";

/// The top-level links of a merged-`/usr` tree, as Fedora and Debian 12 have them.
const MERGED_USR_LINKS: [(&str, &str); 4] =
    [("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin")];

/// The usual permissions of system directories.
const DIRECTORY_MODE: u16 = 0o755;
/// `/tmp` and `/var/tmp`: writable by everyone, sticky.
const STICKY_DIRECTORY_MODE: u16 = 0o1777;
/// World-readable configuration files.
const FILE_MODE: u16 = 0o644;

/// The skeleton's directories besides those the shell's files need.
const SKELETON_DIRECTORIES: [(&str, u16); 14] = [
    ("/etc", DIRECTORY_MODE),
    ("/tmp", STICKY_DIRECTORY_MODE),
    ("/usr", DIRECTORY_MODE),
    ("/usr/bin", DIRECTORY_MODE),
    ("/usr/lib", DIRECTORY_MODE),
    ("/usr/lib/modules", DIRECTORY_MODE),
    ("/usr/lib64", DIRECTORY_MODE),
    ("/usr/libexec", DIRECTORY_MODE),
    ("/usr/sbin", DIRECTORY_MODE),
    ("/usr/share", DIRECTORY_MODE),
    ("/var", DIRECTORY_MODE),
    ("/var/lib", DIRECTORY_MODE),
    ("/var/log", DIRECTORY_MODE),
    ("/var/tmp", STICKY_DIRECTORY_MODE),
];

/// The three packages of a minimal tree that runs shell scripts; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct MinimalOs {
    shell: HostFiles,
}

impl MinimalOs {
    /// Copies the host's `/bin/sh` and its libraries (fails naming what is missing on the host).
    pub fn from_host() -> Result<Self> {
        let shell = HostFiles::resolve([HOST_SHELL]).context("copying the host shell for the minimal OS")?;
        Ok(Self { shell })
    }

    /// `filesystem`, `setup` and `shell`, as [`PACKAGE_NAMES`] lists them.
    pub fn packages(&self) -> Vec<RpmSpec> {
        vec![self.filesystem(), self.setup(), self.shell()]
    }

    /// An rpm-md repository (with its metadata written) of the minimal OS and `extra` packages.
    pub fn repository_with(&self, extra: &[RpmSpec]) -> Result<TestRepository> {
        let mut repository = TestRepository::new()?;
        for spec in self.packages().iter().chain(extra) {
            repository.add_package(spec)?;
        }
        repository.write_metadata()?;
        Ok(repository)
    }

    /// The skeleton: directories, the merged-`/usr` links and the ELF interpreter link.
    pub fn filesystem(&self) -> RpmSpec {
        let mut directories: std::collections::BTreeMap<String, u16> =
            SKELETON_DIRECTORIES.iter().map(|(path, mode)| (path.to_string(), *mode)).collect();
        for directory in self.shell.directories() {
            directories.entry(directory).or_insert(DIRECTORY_MODE);
        }
        let spec = RpmSpec::new("filesystem", VERSION, RELEASE).arch(ARCH);
        let spec = directories.iter().fold(spec, |spec, (directory, mode)| spec.directory(directory, *mode));
        let links = MERGED_USR_LINKS.into_iter().chain(self.shell.interpreter_links());
        links.fold(spec, |spec, (link, target)| spec.symlink(link, target))
    }

    /// The user and group database: `root` (0) and `alice` (1000), each with its own group.
    pub fn setup(&self) -> RpmSpec {
        let user = format!("{USER_NAME}:x:{USER_ID}:{GROUP_ID}:Alice:/home/{USER_NAME}:/bin/sh\n");
        let passwd = format!("root:x:0:0:root:/root:/bin/sh\n{user}");
        let group = format!("root:x:0:\n{GROUP_NAME}:x:{GROUP_ID}:\n");
        RpmSpec::new("setup", VERSION, RELEASE)
            .requires("filesystem")
            .config_file("/etc/passwd", passwd, FILE_MODE)
            .config_file("/etc/group", group, FILE_MODE)
            .provides(&format!("user({USER_NAME})"))
            .provides(&format!("group({GROUP_NAME})"))
    }

    /// The host's shell at `/usr/bin/sh` with its libraries; provides `/bin/sh` for scriptlets.
    pub fn shell(&self) -> RpmSpec {
        let spec = RpmSpec::new("shell", VERSION, RELEASE)
            .arch(ARCH)
            .requires("filesystem")
            .provides("/bin/sh")
            .provides("/usr/bin/sh");
        self.shell.add_to(spec)
    }
}

/// Writes `NAME-1.0-1.noarch.rpm` into `directory`, whose payload holds the character device
/// `path` (major 1, minor 3: `/dev/null`), something [`RpmSpec`] never produces; returns its path.
pub fn write_device_node_package(directory: &Path, name: &str, path: &str) -> Result<PathBuf> {
    /// `/dev/null`'s device numbers.
    const MAJOR: u8 = 1;
    const MINOR: u8 = 3;
    let summary = format!("Test package {name} with a device node");
    let mut builder = PackageBuilder::new(name, VERSION, "MIT", "noarch", &summary);
    builder.using_config(
        BuildConfig::v4().compression(CompressionWithLevel::None).source_date(DEFAULT_BUILD_TIME),
    );
    builder.release(RELEASE);
    builder
        .with_special_file(
            FileOptions::character_device(path, MAJOR, MINOR).modified_at(Timestamp(DEFAULT_BUILD_TIME)),
        )
        .with_context(|| format!("adding the device node {path}"))?;
    let package = builder.build().with_context(|| format!("building package {name}"))?;
    std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    let rpm_path = directory.join(format!("{name}-{VERSION}-{RELEASE}.noarch.rpm"));
    package.write_file(&rpm_path).with_context(|| format!("writing {}", rpm_path.display()))?;
    Ok(rpm_path)
}

/// Flips one bit in the last copy of `content` in the package file `rpm_path`, which must have an
/// uncompressed payload ([`crate::Compression::None`]) where the file content lies as it is. The
/// header (and its digest of that file) is left alone, so the header and the payload disagree.
pub fn corrupt_payload_content(rpm_path: &Path, content: &[u8]) -> Result<()> {
    let mut bytes = std::fs::read(rpm_path).with_context(|| format!("reading {}", rpm_path.display()))?;
    let Some(position) = bytes.windows(content.len()).rposition(|window| window == content) else {
        bail!("{} does not contain the given content (is its payload compressed?)", rpm_path.display());
    };
    bytes[position] ^= 1;
    std::fs::write(rpm_path, bytes).with_context(|| format!("writing {}", rpm_path.display()))
}

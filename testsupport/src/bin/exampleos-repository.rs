//! Builds the exampleos demo repository (`make demo`): every package the examples/ treefiles name, at
//! the versions examples/manifest-lock.x86_64.json locks (plus the fast-tracked exampleos-release 1.1
//! and a few unlocked dependencies), written with the test-support RPM builder and createrepo_c.
//!
//! Usage: exampleos-repository [DIRECTORY]   (default /var/tmp/arbor-demo/repo, as examples/exampleos.repo says)

use std::path::PathBuf;

use anyhow::Context;
use arbor_testsupport::{RpmSpec, TestRepository};

const DEFAULT_DIRECTORY: &str = "/var/tmp/arbor-demo/repo";

/// One package of the demo repository.
struct DemoPackage {
    name: &'static str,
    epoch: u32,
    version: &'static str,
    arch: &'static str,
    requires: &'static [&'static str],
    provides: &'static [&'static str],
}

const fn package(
    name: &'static str,
    epoch: u32,
    version: &'static str,
    arch: &'static str,
    requires: &'static [&'static str],
    provides: &'static [&'static str],
) -> DemoPackage {
    DemoPackage { name, epoch, version, arch, requires, provides }
}

const PACKAGES: &[DemoPackage] = &[
    package("filesystem", 0, "1.0", "x86_64", &["setup"], &[]),
    package("setup", 0, "1.0", "noarch", &[], &[]),
    package("bash", 0, "1.0", "x86_64", &["filesystem"], &["/bin/sh", "/usr/bin/sh"]),
    package("coreutils", 0, "1.0", "x86_64", &["bash"], &[]),
    package("systemd", 0, "1.0", "x86_64", &["bash", "coreutils", "setup"], &[]),
    package("exampleos-release", 0, "1.0", "noarch", &[], &["system-release"]),
    package("exampleos-release", 0, "1.1", "noarch", &[], &["system-release"]),
    package("sudo", 0, "1.0", "x86_64", &["setup", "bash"], &[]),
    package("kernel", 0, "1.0", "x86_64", &["coreutils"], &[]),
    package("dracut", 0, "1.0", "x86_64", &["bash", "coreutils", "systemd"], &[]),
    package("openssh-server", 0, "1.0", "x86_64", &["systemd", "setup"], &[]),
    package("NetworkManager", 1, "1.0", "x86_64", &["systemd"], &[]),
    package("chrony", 0, "1.0", "x86_64", &["systemd"], &[]),
    package("podman", 0, "1.0", "x86_64", &["systemd", "(crun or runc)"], &[]),
    package("crun", 0, "1.0", "x86_64", &[], &[]),
    package("curl", 0, "1.0", "x86_64", &["libcurl.so.4()(64bit)"], &[]),
    package("libcurl", 0, "1.0", "x86_64", &[], &["libcurl.so.4()(64bit)"]),
    package("jq", 0, "1.0", "x86_64", &["libjq.so.1()(64bit)"], &[]),
    package("libjq", 0, "1.0", "x86_64", &[], &["libjq.so.1()(64bit)"]),
    package("less", 0, "1.0", "x86_64", &["bash"], &[]),
    package("vim-minimal", 0, "1.0", "x86_64", &["bash"], &[]),
    package("grub2-efi-x64", 0, "1.0", "x86_64", &[], &[]),
    package("shim-x64", 0, "1.0", "x86_64", &[], &[]),
    package("exampleos-debug-tools", 0, "1.0", "noarch", &["bash", "jq"], &[]),
];

fn main() -> anyhow::Result<()> {
    let directory = std::env::args().nth(1).map_or_else(|| PathBuf::from(DEFAULT_DIRECTORY), PathBuf::from);
    if directory.exists() {
        std::fs::remove_dir_all(&directory).with_context(|| format!("clearing {}", directory.display()))?;
    }
    std::fs::create_dir_all(&directory).with_context(|| format!("creating {}", directory.display()))?;
    let mut repository = TestRepository::at(&directory)?;
    for DemoPackage { name, epoch, version, arch, requires, provides } in PACKAGES {
        let mut package = RpmSpec::new(name, version, "1")
            .arch(arch)
            .summary(&format!("exampleos {name}"))
            .license("MIT")
            .file(&format!("/usr/share/doc/{name}/README"), format!("{name} {version}\n"), 0o644);
        if *epoch > 0 {
            package = package.epoch(*epoch);
        }
        for requirement in *requires {
            package = package.requires(requirement);
        }
        for provide in *provides {
            package = package.provides(provide);
        }
        repository.add_package(&package).with_context(|| format!("building {}", package.nevra()))?;
    }
    repository.write_metadata().context("writing repository metadata")?;
    println!("exampleos repository: {} packages in {}", PACKAGES.len(), directory.display());
    Ok(())
}

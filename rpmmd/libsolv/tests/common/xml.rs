//! rpm-md XML text (`primary.xml`, `filelists.xml`, `updateinfo.xml`) for fixture packages.

use std::fmt::Write as _;

use super::fixture::FixturePackage;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One `<rpm:entry>` of a dependency written as `name [op evr]`.
fn dependency_entry(dependency: &str) -> String {
    let parts: Vec<&str> = dependency.split_whitespace().collect();
    if dependency.starts_with('(') || parts.len() != 3 {
        return format!("<rpm:entry name=\"{}\"/>", escape(dependency));
    }
    let flags = match parts[1] {
        "<" => "LT",
        "<=" => "LE",
        "=" => "EQ",
        ">=" => "GE",
        ">" => "GT",
        other => panic!("unknown operator {other}"),
    };
    let (epoch, version_release) = parts[2].split_once(':').unwrap_or(("0", parts[2]));
    let release = match version_release.split_once('-') {
        Some((version, release)) => format!("ver=\"{version}\" rel=\"{release}\""),
        None => format!("ver=\"{version_release}\""),
    };
    format!("<rpm:entry name=\"{}\" flags=\"{flags}\" epoch=\"{epoch}\" {release}/>", escape(parts[0]))
}

fn dependency_block(out: &mut String, tag: &str, dependencies: &[String]) {
    let entries: Vec<String> = dependencies.iter().map(|dependency| dependency_entry(dependency)).collect();
    entry_block(out, tag, &entries);
}

fn entry_block(out: &mut String, tag: &str, entries: &[String]) {
    if entries.is_empty() {
        return;
    }
    writeln!(out, "      <rpm:{tag}>").unwrap();
    for entry in entries {
        writeln!(out, "        {entry}").unwrap();
    }
    writeln!(out, "      </rpm:{tag}>").unwrap();
}

/// The text of a `primary.xml` listing `packages`.
pub fn primary_xml(packages: &[FixturePackage]) -> String {
    let mut out = String::new();
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>").unwrap();
    writeln!(
        out,
        "<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{}\">",
        packages.len()
    )
    .unwrap();
    for package in packages {
        let mut provides = vec![format!("{} = {}", package.name, package.evr())];
        provides.extend(package.provides.iter().cloned());
        writeln!(out, "<package type=\"rpm\">").unwrap();
        writeln!(out, "  <name>{}</name>", escape(&package.name)).unwrap();
        writeln!(out, "  <arch>{}</arch>", package.arch).unwrap();
        writeln!(
            out,
            "  <version epoch=\"{}\" ver=\"{}\" rel=\"{}\"/>",
            package.epoch, package.version, package.release
        )
        .unwrap();
        writeln!(out, "  <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum>", package.checksum()).unwrap();
        writeln!(out, "  <summary>The {} package</summary>", escape(&package.name)).unwrap();
        writeln!(out, "  <description>Fixture package {}.</description>", escape(&package.name)).unwrap();
        writeln!(out, "  <packager/>\n  <url>https://example.com/</url>").unwrap();
        writeln!(out, "  <time file=\"{}\" build=\"{}\"/>", package.build_time + 60, package.build_time)
            .unwrap();
        writeln!(
            out,
            "  <size package=\"{}\" installed=\"{}\" archive=\"{}\"/>",
            package.download_size,
            package.install_size,
            package.install_size + 500
        )
        .unwrap();
        writeln!(out, "  <location href=\"{}\"/>", package.location()).unwrap();
        writeln!(out, "  <format>").unwrap();
        writeln!(out, "      <rpm:license>{}</rpm:license>", escape(&package.license)).unwrap();
        writeln!(out, "      <rpm:vendor/>\n      <rpm:group>Unspecified</rpm:group>").unwrap();
        writeln!(out, "      <rpm:buildhost>builder</rpm:buildhost>").unwrap();
        writeln!(out, "      <rpm:sourcerpm>{}</rpm:sourcerpm>", package.sourcerpm()).unwrap();
        writeln!(out, "      <rpm:header-range start=\"4504\" end=\"9000\"/>").unwrap();
        dependency_block(&mut out, "provides", &provides);
        let mut requires: Vec<String> =
            package.requires.iter().map(|dependency| dependency_entry(dependency)).collect();
        requires.extend(package.requires_pre.iter().map(|dependency| {
            dependency_entry(dependency).replacen("<rpm:entry ", "<rpm:entry pre=\"1\" ", 1)
        }));
        entry_block(&mut out, "requires", &requires);
        dependency_block(&mut out, "conflicts", &package.conflicts);
        dependency_block(&mut out, "obsoletes", &package.obsoletes);
        dependency_block(&mut out, "recommends", &package.recommends);
        for file in &package.primary_files {
            writeln!(out, "      <file>{}</file>", escape(file)).unwrap();
        }
        writeln!(out, "  </format>\n</package>").unwrap();
    }
    writeln!(out, "</metadata>").unwrap();
    out
}

/// The text of a `filelists.xml` for `packages` (primary files plus filelist-only files).
pub fn filelists_xml(packages: &[FixturePackage]) -> String {
    let mut out = String::new();
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>").unwrap();
    writeln!(
        out,
        "<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"{}\">",
        packages.len()
    )
    .unwrap();
    for package in packages {
        writeln!(
            out,
            "<package pkgid=\"{}\" name=\"{}\" arch=\"{}\">",
            package.checksum(),
            escape(&package.name),
            package.arch
        )
        .unwrap();
        writeln!(
            out,
            "  <version epoch=\"{}\" ver=\"{}\" rel=\"{}\"/>",
            package.epoch, package.version, package.release
        )
        .unwrap();
        for file in package.primary_files.iter().chain(&package.filelist_files) {
            writeln!(out, "  <file>{}</file>", escape(file)).unwrap();
        }
        writeln!(out, "</package>").unwrap();
    }
    writeln!(out, "</filelists>").unwrap();
    out
}

/// The text of an `updateinfo.xml` with one security advisory for `package`.
pub fn updateinfo_xml(advisory: &str, package: &FixturePackage) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n\
         <update from=\"updates@example.com\" status=\"stable\" type=\"security\" version=\"2.0\">\n\
         <id>{advisory}</id>\n<title>Fix for {name}</title>\n<issued date=\"2024-01-01 00:00:00\"/>\n\
         <severity>Important</severity>\n<description>A fix.</description>\n<pkglist>\n\
         <collection short=\"F41\"><name>Fedora 41</name>\n\
         <package name=\"{name}\" version=\"{version}\" release=\"{release}\" epoch=\"{epoch}\" arch=\"{arch}\" \
         src=\"{src}\"><filename>{name}-{version}-{release}.{arch}.rpm</filename></package>\n\
         </collection>\n</pkglist>\n</update>\n</updates>\n",
        name = package.name,
        version = package.version,
        release = package.release,
        epoch = package.epoch,
        arch = package.arch,
        src = package.sourcerpm(),
    )
}

//! The primary.xml reader against libsolv's own (`repo_add_rpmmd`): the same file must give the
//! same solvables, dependencies, file lists and package details.

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CStr;
use std::path::Path;

use libsolv_sys as sys;

use crate::error::MetadataKind;
use crate::pool::Pool;

const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="5">
<package type="rpm">
  <name>bash</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="5.2.26" rel="1.fc41"/>
  <checksum type="sha256" pkgid="YES">0d34c6721db8790bbe553b79c9982da014e6977cecd7a9620d97f50bfbe769e3</checksum>
  <summary>The GNU Bourne Again shell &amp; more</summary>
  <summary lang="de">Die GNU-Shell</summary>
  <description>Long text nobody reads.</description>
  <packager>Fedora Project</packager>
  <url>https://www.gnu.org/software/bash</url>
  <time file="1700000100" build="1700000000"/>
  <size package="1888614" installed="8000000" archive="8001000"/>
  <location href="Packages/b/bash-5.2.26-1.fc41.x86_64.rpm"/>
  <format>
    <rpm:license>GPL-3.0-or-later</rpm:license>
    <rpm:vendor>Fedora Project</rpm:vendor>
    <rpm:group>Unspecified</rpm:group>
    <rpm:buildhost>buildhw</rpm:buildhost>
    <rpm:sourcerpm>bash-5.2.26-1.fc41.src.rpm</rpm:sourcerpm>
    <rpm:header-range start="4504" end="7400"/>
    <rpm:provides>
      <rpm:entry name="/bin/sh"/>
      <rpm:entry name="bash" flags="EQ" epoch="0" ver="5.2.26" rel="1.fc41"/>
      <rpm:entry name="config(bash)" flags="EQ" epoch="0" ver="5.2.26" rel="1.fc41"/>
      <rpm:entry name="weird" flags="XX" ver="1"/>
    </rpm:provides>
    <rpm:requires>
      <rpm:entry name="filesystem" flags="GE" epoch="0" ver="3" pre="1"/>
      <rpm:entry name="libc.so.6(GLIBC_2.34)(64bit)"/>
      <rpm:entry name="libtinfo.so.6()(64bit)"/>
      <rpm:entry name="(glibc-langpack-en or glibc-all-langpacks)"/>
      <rpm:entry name="/usr/bin/env"/>
      <rpm:entry name="old" flags="LT" epoch="2" ver="1.0"/>
      <rpm:entry name="newer" flags="LE" ver="1:2"/>
      <rpm:entry name="pattern-thing" kind="pattern"/>
      <rpm:entry name="plain" kind="package" flags="NE" ver="3" rel="4"/>
    </rpm:requires>
    <rpm:conflicts><rpm:entry name="zsh" flags="GT" ver="9"/></rpm:conflicts>
    <rpm:obsoletes><rpm:entry name="bash-old"/></rpm:obsoletes>
    <rpm:recommends><rpm:entry name="(bash-completion if bash)"/></rpm:recommends>
    <rpm:suggests><rpm:entry name="bash-doc"/></rpm:suggests>
    <rpm:supplements><rpm:entry name="(bash and shells)"/></rpm:supplements>
    <rpm:enhances><rpm:entry name="shells"/></rpm:enhances>
    <file>/usr/bin/bash</file>
    <file>/usr/bin/sh</file>
    <file type="dir">/etc/skel</file>
    <file>/etc/skel/.bashrc</file>
    <file>relative/file</file>
    <file>toplevel</file>
    <file type="ghost">/etc/bash &amp; co</file>
  </format>
</package>
<package type="rpm">
  <name>bash</name>
  <arch>src</arch>
  <version epoch="3" ver="5.2.26" rel="1.fc41"/>
  <checksum type="sha1">da39a3ee5e6b4b0d3255bfef95601890afd80709</checksum>
  <summary>source</summary>
  <location xml:base="media:/dvd#2" href="SRPMS/bash.src.rpm"/>
  <format><rpm:sourcerpm></rpm:sourcerpm></format>
</package>
<package type="rpm">
  <name>noarch-default</name>
  <version ver="1:0.1"/>
  <checksum type="sha256">1111111111111111111111111111111111111111111111111111111111111111</checksum>
  <location xml:base="https://mirror.example/base/" href="n.rpm"/>
</package>
<package type="rpm">
  <name>empty-version</name>
  <arch>noarch</arch>
  <version/>
  <checksum type="sha512">22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222</checksum>
  <format><rpm:provides/><rpm:requires></rpm:requires></format>
</package>
<package type="rpm"><name>x&#233;&#x41;</name><arch>aarch64</arch><version epoch="" ver="1" rel=""/>
  <checksum type="sha256"><![CDATA[3333333333333333333333333333333333333333333333333333333333333333]]></checksum>
</package>
</metadata>
"#;

/// Everything libsolv knows of each solvable of the pool's first repository, as text.
fn dump(pool: &Pool) -> Vec<String> {
    let repo = pool.repos()[0];
    let raw_pool = pool.raw.as_ptr();
    let raw_repo = pool.repository(repo).raw.as_ptr();
    let text = |id: sys::Id| -> String {
        // SAFETY: `id` is an id of this pool; the string is copied at once.
        unsafe { CStr::from_ptr(sys::pool_dep2str(raw_pool, id)) }.to_string_lossy().into_owned()
    };
    let mut lines = Vec::new();
    // SAFETY: start..end of a valid repository lies within the solvable array.
    unsafe {
        for index in (*raw_repo).start..(*raw_repo).end {
            let solvable = &*(*raw_pool).solvables.add(index as usize);
            if solvable.repo != raw_repo {
                continue;
            }
            lines.push(format!(
                "solvable {} {} {} vendor={}",
                text(solvable.name),
                text(solvable.evr),
                text(solvable.arch),
                if solvable.vendor == 0 { String::new() } else { text(solvable.vendor) }
            ));
            for (label, offset) in [
                ("provides", solvable.provides),
                ("requires", solvable.requires),
                ("conflicts", solvable.conflicts),
                ("obsoletes", solvable.obsoletes),
                ("recommends", solvable.recommends),
                ("suggests", solvable.suggests),
                ("supplements", solvable.supplements),
                ("enhances", solvable.enhances),
            ] {
                let mut cursor = (*raw_repo).idarraydata.add(offset as usize);
                while offset != 0 && *cursor != 0 {
                    lines.push(format!("  {label} {}", text(*cursor)));
                    cursor = cursor.add(1);
                }
            }
            let mut iterator = std::mem::MaybeUninit::<sys::Dataiterator>::uninit();
            let key = sys::solv_knownid_SOLVABLE_FILELIST as sys::Id;
            sys::dataiterator_init(
                iterator.as_mut_ptr(),
                raw_pool,
                raw_repo,
                index,
                key,
                std::ptr::null(),
                0,
            );
            let iterator = iterator.assume_init_mut();
            while sys::dataiterator_step(iterator) != 0 {
                let path = sys::repodata_dir2str(iterator.data, iterator.kv.id, iterator.kv.str_);
                lines.push(format!("  file {}", CStr::from_ptr(path).to_string_lossy()));
            }
            sys::dataiterator_free(iterator);
            let id = crate::pool::SolvableId(index);
            lines.push(format!("  {:?} summary {:?}", pool.package(id), pool.summary(id)));
        }
    }
    lines
}

fn load_with_libsolv(path: &Path) -> Pool {
    let mut pool = Pool::new("x86_64").unwrap();
    pool.add_repository("r", 0, |pool, repo| {
        pool.read_into(repo, MetadataKind::Primary, path, |stream| {
            // SAFETY: valid repository and stream.
            unsafe { sys::repo_add_rpmmd(repo, stream, std::ptr::null(), 0) }
        })
    })
    .unwrap();
    pool
}

fn load_with_ours(path: &Path) -> Pool {
    let mut pool = Pool::new("x86_64").unwrap();
    pool.add_rpmmd_repo("r", 0, path, None, None).unwrap();
    pool
}

#[test]
fn same_solvables_as_libsolv() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("primary.xml");
    std::fs::write(&path, PRIMARY).unwrap();
    let ours = dump(&load_with_ours(&path));
    let theirs = dump(&load_with_libsolv(&path));
    assert!(ours.len() > 30, "{ours:#?}");
    assert_eq!(ours, theirs);
}

/// Set `ARBOR_PRIMARY_XML` to a (large) primary.xml to compare the two readers on it.
#[test]
fn same_solvables_as_libsolv_on_a_given_file() {
    let Some(path) = std::env::var_os("ARBOR_PRIMARY_XML") else { return };
    let path = std::path::PathBuf::from(path);
    let ours = dump(&load_with_ours(&path));
    let theirs = dump(&load_with_libsolv(&path));
    assert_eq!(ours.len(), theirs.len());
    for (our, their) in ours.iter().zip(&theirs) {
        assert_eq!(our, their);
    }
}

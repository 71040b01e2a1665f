#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Postprocessing of assembled trees: small root filesystems built by each test in a temporary
//! directory, with "repository objects" outside the root hardlinked into it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tree::postprocess::{
    self, InitramfsCommand, PostprocessContext, PostprocessError, PostprocessReport, before_scripts, finalize,
};
use treefiles::{
    AddFile, BootLocation, Edition, FileSystemLoader, Flattened, LoadOptions, OptUsrlocal, RemoveFromPackage,
    Treefile,
};

/// A tree under construction: `root` is the root filesystem, `objects` stands for the ostree repository.
struct Tree {
    directory: tempfile::TempDir,
}

impl Tree {
    /// The tree's passwd names the user running the tests `svc` (listed first, so that it also names
    /// user id 0 when the tests run as root): owners in the output are the same for every runner.
    fn new() -> Tree {
        let tree = Tree { directory: tempfile::tempdir().unwrap() };
        fs::create_dir_all(tree.root()).unwrap();
        fs::create_dir_all(tree.objects()).unwrap();
        tree.file(
            "etc/passwd",
            &format!("svc:x:{}:{}::/:/sbin/nologin\nroot:x:0:0:root:/root:/bin/bash\n", uid(), gid()),
            0o644,
        );
        tree.file("etc/group", &format!("svc:x:{}:\nroot:x:0:\nwheel:x:10:\n", gid()), 0o644);
        tree.file("etc/nsswitch.conf", "passwd: files systemd\ngroup: files systemd\n", 0o644);
        tree
    }

    fn root(&self) -> PathBuf {
        self.directory.path().join("root")
    }

    fn objects(&self) -> PathBuf {
        self.directory.path().join("objects")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// Creates the missing parents of `path` with mode 0755, whatever the umask.
    fn parents(&self, path: &Path) {
        let mut missing = Vec::new();
        let mut current = path.parent().unwrap();
        while !current.exists() {
            missing.push(current.to_path_buf());
            current = current.parent().unwrap();
        }
        for directory in missing.iter().rev() {
            fs::create_dir(directory).unwrap();
            fs::set_permissions(directory, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn directory(&self, relative: &str, mode: u32) {
        let path = self.path(relative);
        self.parents(&path);
        if !path.exists() {
            fs::create_dir(&path).unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn file(&self, relative: &str, contents: &str, mode: u32) {
        let path = self.path(relative);
        self.parents(&path);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A repository object (outside the root) hardlinked at `relative`; returns the object's path.
    fn object(&self, name: &str, relative: &[&str], contents: &str, mode: u32) -> PathBuf {
        let object = self.objects().join(name);
        fs::write(&object, contents).unwrap();
        fs::set_permissions(&object, fs::Permissions::from_mode(mode)).unwrap();
        for path in relative {
            let path = self.path(path);
            self.parents(&path);
            fs::hard_link(&object, &path).unwrap();
        }
        object
    }

    fn symlink(&self, relative: &str, target: &str) {
        let path = self.path(relative);
        self.parents(&path);
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap()
    }

    fn link_target(&self, relative: &str) -> String {
        fs::read_link(self.path(relative)).unwrap().to_string_lossy().into_owned()
    }

    fn exists(&self, relative: &str) -> bool {
        fs::symlink_metadata(self.path(relative)).is_ok()
    }

    fn mode(&self, relative: &str) -> u32 {
        fs::symlink_metadata(self.path(relative)).unwrap().mode() & 0o7777
    }

    fn inode(&self, relative: &str) -> u64 {
        fs::symlink_metadata(self.path(relative)).unwrap().ino()
    }

    fn entries(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(relative))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

fn uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

fn gid() -> u32 {
    fs::metadata("/proc/self").unwrap().gid()
}

fn flattened(treefile: Treefile, directory: &Path) -> Flattened {
    Flattened { treefile, directory: directory.to_path_buf(), sources: Vec::new(), warnings: Vec::new() }
}

fn no_packages() -> BTreeMap<String, Vec<String>> {
    BTreeMap::new()
}

fn run(tree: &Tree, treefile: Treefile) -> Result<PostprocessReport, PostprocessError> {
    let packages = no_packages();
    let context = PostprocessContext { package_files: &packages };
    postprocess::postprocess(&tree.root(), &flattened(treefile, tree.directory.path()), &context)
}

/// Byte- and mode-identity of a repository object.
fn object_state(path: &Path) -> (Vec<u8>, u32) {
    (fs::read(path).unwrap(), fs::metadata(path).unwrap().mode())
}

#[test]
fn remove_from_packages_deletes_matching_files_of_that_package_only() {
    let tree = Tree::new();
    tree.file("usr/share/doc/foo/README", "foo", 0o644);
    tree.file("usr/share/doc/foo/COPYING", "license", 0o644);
    tree.file("usr/bin/foo", "binary", 0o755);
    tree.file("usr/share/doc/bar/README", "bar", 0o644);
    tree.directory("usr/lib/systemd/system-generators", 0o755);
    tree.file("usr/lib/systemd/system-generators/systemd-gpt-auto-generator", "gen", 0o755);
    tree.symlink("lib", "usr/lib");
    let mut packages = BTreeMap::new();
    packages.insert(
        "foo".to_string(),
        vec![
            "/usr/bin/foo".to_string(),
            "/usr/share/doc/foo".to_string(),
            "/usr/share/doc/foo/COPYING".to_string(),
            "/usr/share/doc/foo/README".to_string(),
        ],
    );
    packages.insert("bar".to_string(), vec!["/usr/share/doc/bar/README".to_string()]);
    packages.insert(
        "systemd".to_string(),
        vec!["/lib/systemd/system-generators/systemd-gpt-auto-generator".to_string()],
    );
    let treefile = Treefile {
        remove_from_packages: Some(vec![
            RemoveFromPackage {
                package: "foo".into(),
                patterns: vec!["/usr/share/doc/.*".into(), "README".into()],
            },
            RemoveFromPackage { package: "systemd".into(), patterns: vec!["gpt-auto".into()] },
        ]),
        ..Treefile::default()
    };
    let context = PostprocessContext { package_files: &packages };

    let report = before_scripts(&tree.root(), &flattened(treefile, tree.directory.path()), &context).unwrap();

    assert_eq!(
        report.removed,
        ["/usr/share/doc/foo", "/lib/systemd/system-generators/systemd-gpt-auto-generator"]
    );
    assert!(!tree.exists("usr/share/doc/foo"));
    assert!(tree.exists("usr/bin/foo"));
    assert_eq!(tree.read("usr/share/doc/bar/README"), "bar");
    assert!(!tree.exists("usr/lib/systemd/system-generators/systemd-gpt-auto-generator"));
    assert!(tree.exists("lib"), "the symlinked parent stays");
}

#[test]
fn remove_from_packages_errors_name_the_package_and_regex() {
    let tree = Tree::new();
    let mut packages = BTreeMap::new();
    packages.insert("foo".to_string(), vec!["/usr/bin/foo".to_string()]);
    let context = PostprocessContext { package_files: &packages };
    let cases = [
        (
            RemoveFromPackage { package: "nosuch".into(), patterns: vec![".*".into()] },
            "remove-from-packages: package \"nosuch\" is not installed",
        ),
        (
            RemoveFromPackage { package: "foo".into(), patterns: vec!["/usr/bin/(".into()] },
            "remove-from-packages: package \"foo\": invalid regex \"/usr/bin/(\"",
        ),
    ];
    for (entry, expected) in cases {
        let treefile = Treefile { remove_from_packages: Some(vec![entry]), ..Treefile::default() };
        let error =
            before_scripts(&tree.root(), &flattened(treefile, tree.directory.path()), &context).unwrap_err();
        assert!(error.to_string().starts_with(expected), "{error}");
    }
}

#[test]
fn remove_files_deletes_relative_paths_and_rejects_others() {
    let tree = Tree::new();
    tree.file("etc/hosts", "127.0.0.1 localhost\n", 0o644);
    tree.file("usr/share/info/dir", "info", 0o644);
    let treefile = Treefile {
        remove_files: Some(vec!["etc/hosts".into(), "usr/share/info".into(), "usr/share/man".into()]),
        ..Treefile::default()
    };
    let packages = no_packages();
    let context = PostprocessContext { package_files: &packages };
    let report = before_scripts(&tree.root(), &flattened(treefile, tree.directory.path()), &context).unwrap();
    assert_eq!(report.removed, ["/etc/hosts", "/usr/share/info"]);
    assert!(report.notes.contains(&"remove-files: /usr/share/man is not in the tree".to_string()));
    assert!(!tree.exists("etc/hosts"));
    assert!(!tree.exists("usr/share/info"));

    for (path, expected) in [
        (
            "/etc/hosts",
            "remove-files: invalid path \"/etc/hosts\": must be relative to the root, like \"usr/share/info\"",
        ),
        ("usr/../etc", "remove-files: invalid path \"usr/../etc\": must not contain \"..\""),
    ] {
        let treefile = Treefile { remove_files: Some(vec![path.into()]), ..Treefile::default() };
        let error =
            before_scripts(&tree.root(), &flattened(treefile, tree.directory.path()), &context).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn shared_repository_objects_stay_identical() {
    let tree = Tree::new();
    let tool =
        tree.object("tool", &["usr/bin/tool", "usr/libexec/tool-alias"], "#!/bin/sh\necho tool\n", 0o755);
    let setuid = tree.object("setuid", &["usr/bin/su-like"], "setuid binary", 0o4755);
    let config = tree.object("config", &["etc/app.conf"], "key=value\n", 0o644);
    let removed = tree.object("removed", &["usr/share/removed/file"], "gone", 0o755);
    let data = tree.object("data", &["usr/share/data"], "not executable", 0o644);
    xattr::set(&tree.path("usr/bin/tool"), "user.arbor-test", b"kept");
    let before: Vec<_> =
        [&tool, &setuid, &config, &removed, &data].map(|object| object_state(object)).to_vec();
    let treefile = Treefile {
        readonly_executables: Some(true),
        remove_files: Some(vec!["usr/share/removed".into()]),
        ..Treefile::default()
    };

    run(&tree, treefile).unwrap();

    let after: Vec<_> =
        [&tool, &setuid, &config, &removed, &data].map(|object| object_state(object)).to_vec();
    assert_eq!(before, after, "objects outside the root are untouched");
    assert_eq!(tree.mode("usr/bin/tool"), 0o555);
    assert_eq!(tree.read("usr/bin/tool"), "#!/bin/sh\necho tool\n");
    assert_eq!(xattr::get(&tree.path("usr/bin/tool"), "user.arbor-test"), Some(b"kept".to_vec()));
    assert_eq!(
        tree.inode("usr/bin/tool"),
        tree.inode("usr/libexec/tool-alias"),
        "hardlinks in the tree stay linked"
    );
    assert_ne!(tree.inode("usr/bin/tool"), fs::metadata(&tool).unwrap().ino());
    assert_eq!(tree.mode("usr/bin/su-like"), 0o4555);
    assert_eq!(
        tree.inode("usr/etc/app.conf"),
        fs::metadata(&config).unwrap().ino(),
        "/etc moved, not copied"
    );
    assert_eq!(tree.inode("usr/share/data"), fs::metadata(&data).unwrap().ino(), "non-executables untouched");
    assert!(!tree.exists("usr/share/removed"));
}

/// User xattrs through rustix (the tests' temporary directory supports them).
mod xattr {
    use std::path::Path;

    pub fn set(path: &Path, name: &str, value: &[u8]) {
        rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
    }

    pub fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let mut buffer = vec![0_u8; 4096];
        match rustix::fs::getxattr(path, name, &mut buffer[..]) {
            Ok(length) => Some(buffer[..length].to_vec()),
            Err(_) => None,
        }
    }
}

#[test]
fn readonly_executables_rewrites_ostree_metadata() {
    use ostree::glib::prelude::*;
    let tree = Tree::new();
    tree.file("usr/bin/user-mode", "bare-user object", 0o755);
    let meta = (0_u32, 0_u32, 0o100_775_u32.to_be(), Vec::<(Vec<u8>, Vec<u8>)>::new()).to_variant();
    xattr::set(&tree.path("usr/bin/user-mode"), "user.ostreemeta", meta.data());
    let treefile = Treefile { readonly_executables: Some(true), ..Treefile::default() };
    run(&tree, treefile).unwrap();
    let value = xattr::get(&tree.path("usr/bin/user-mode"), "user.ostreemeta").unwrap();
    let variant = ostree::glib::Variant::from_data_with_type(
        value,
        ostree::glib::VariantTy::new("(uuua(ayay))").unwrap(),
    );
    let (_, _, mode, _) = variant.get::<(u32, u32, u32, Vec<(Vec<u8>, Vec<u8>)>)>().unwrap();
    assert_eq!(u32::from_be(mode), 0o100_555);
    assert_eq!(tree.mode("usr/bin/user-mode"), 0o555);
}

#[test]
fn add_files_copies_from_the_treefile_directory() {
    let tree = Tree::new();
    let config = tree.directory.path().join("config");
    fs::create_dir_all(config.join("files")).unwrap();
    fs::create_dir_all(config.join("sub")).unwrap();
    fs::write(
        config.join("manifest.yaml"),
        "ref: test/x86_64\ninclude: sub/extra.yaml\nadd-files:\n  - [files/motd, /etc/motd]\n  - [files/hello, /usr/libexec/new/hello]\n  - [files/motd, /usr/etc/issue]\n",
    )
    .unwrap();
    fs::write(config.join("sub/extra.yaml"), "add-files:\n  - [extra.txt, /usr/share/extra.txt]\n").unwrap();
    for (name, contents, mode) in [
        ("files/motd", "welcome\n", 0o600),
        ("files/hello", "#!/bin/sh\n", 0o750),
        ("sub/extra.txt", "extra\n", 0o644),
    ] {
        fs::write(config.join(name), contents).unwrap();
        fs::set_permissions(config.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    let motd_object = tree.object("motd", &["etc/motd"], "package motd\n", 0o644);
    let loaded =
        treefiles::load(&FileSystemLoader, &config.join("manifest.yaml"), &LoadOptions::for_arch("x86_64"))
            .unwrap();
    let packages = no_packages();
    let context = PostprocessContext { package_files: &packages };

    let report = before_scripts(&tree.root(), &loaded, &context).unwrap();

    assert_eq!(report.added, ["/usr/share/extra.txt", "/etc/motd", "/usr/libexec/new/hello", "/etc/issue"]);
    assert_eq!((tree.read("etc/motd"), tree.mode("etc/motd")), ("welcome\n".to_string(), 0o600));
    assert_eq!(
        (tree.read("usr/libexec/new/hello"), tree.mode("usr/libexec/new/hello")),
        ("#!/bin/sh\n".to_string(), 0o750)
    );
    assert_eq!(tree.mode("usr/libexec/new"), 0o755);
    assert_eq!(tree.read("etc/issue"), "welcome\n");
    assert_eq!(tree.read("usr/share/extra.txt"), "extra\n");
    assert_eq!(object_state(&motd_object), (b"package motd\n".to_vec(), 0o100_644));
}

fn unit(tree: &Tree, name: &str, install: &str) {
    tree.file(
        &format!("usr/lib/systemd/system/{name}"),
        &format!("[Unit]\nDescription={name}\n\n[Install]\n{install}"),
        0o644,
    );
}

#[test]
fn units_are_enabled_from_their_install_section() {
    let tree = Tree::new();
    unit(&tree, "sshd.service", "WantedBy=multi-user.target\n");
    unit(&tree, "podman.socket", "WantedBy=sockets.target\nAlso=podman.service\n");
    unit(&tree, "podman.service", "RequiredBy=default.target\nAlias=docker.service\n");
    unit(&tree, "serial-getty@.service", "WantedBy=getty.target\nDefaultInstance=ttyS0\n");
    tree.file("usr/lib/systemd/system/plain.service", "[Service]\nExecStart=/bin/true\n", 0o644);
    unit(&tree, "graphical.target", "");
    tree.file("etc/systemd/system/local.service", "[Install]\nWantedBy=multi-user.target\n", 0o644);
    tree.symlink("usr/lib/systemd/system/default.target", "multi-user.target");
    let treefile = Treefile {
        units: Some(vec![
            "sshd.service".into(),
            "podman.socket".into(),
            "serial-getty@.service".into(),
            "getty@tty2.service".into(),
            "plain.service".into(),
            "local.service".into(),
        ]),
        default_target: Some("graphical.target".into()),
        ..Treefile::default()
    };
    unit(&tree, "getty@.service", "WantedBy=getty.target\n");
    let packages = no_packages();
    let context = PostprocessContext { package_files: &packages };

    let report = before_scripts(&tree.root(), &flattened(treefile, tree.directory.path()), &context).unwrap();

    let system = "usr/lib/systemd/system";
    let expected_links = [
        ("multi-user.target.wants/sshd.service", "/usr/lib/systemd/system/sshd.service"),
        ("sockets.target.wants/podman.socket", "/usr/lib/systemd/system/podman.socket"),
        ("default.target.requires/podman.service", "/usr/lib/systemd/system/podman.service"),
        ("docker.service", "/usr/lib/systemd/system/podman.service"),
        ("getty.target.wants/serial-getty@ttyS0.service", "/usr/lib/systemd/system/serial-getty@.service"),
        ("getty.target.wants/getty@tty2.service", "/usr/lib/systemd/system/getty@.service"),
        ("multi-user.target.wants/plain.service", "/usr/lib/systemd/system/plain.service"),
        ("multi-user.target.wants/local.service", "/etc/systemd/system/local.service"),
        ("default.target", "/usr/lib/systemd/system/graphical.target"),
    ];
    for (link, target) in expected_links {
        assert_eq!(tree.link_target(&format!("{system}/{link}")), target, "{link}");
    }
    assert_eq!(report.enabled_units.len(), expected_links.len());
    assert!(
        report.notes.iter().any(|note| note.starts_with("units: plain.service has no [Install] targets"))
    );
}

#[test]
fn unknown_unit_is_an_error_naming_it() {
    let tree = Tree::new();
    unit(&tree, "sshd.service", "WantedBy=multi-user.target\n");
    let treefile =
        Treefile { units: Some(vec!["sshd.service".into(), "nosuch.service".into()]), ..Treefile::default() };
    let error = run(&tree, treefile).unwrap_err();
    insta::assert_snapshot!(error.to_string());

    let treefile = Treefile { default_target: Some("nosuch.target".into()), ..Treefile::default() };
    let error = run(&tree, treefile).unwrap_err();
    assert_eq!(
        error.to_string(),
        "default-target: unit \"nosuch.target\" is not in the tree (looked in /etc/systemd/system and /usr/lib/systemd/system)"
    );
    let treefile = Treefile {
        units: Some(vec!["sshd.service".into()]),
        machineid_compat: Some(false),
        ..Treefile::default()
    };
    assert!(matches!(run(&tree, treefile), Err(PostprocessError::UnitsWithoutMachineId)));
    let treefile = Treefile { units: Some(vec!["../../etc/passwd".into()]), ..Treefile::default() };
    assert!(matches!(run(&tree, treefile), Err(PostprocessError::InvalidUnitName { .. })));
}

#[test]
fn machine_id_compat() {
    let tree = Tree::new();
    tree.file("etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444);
    tree.directory("boot/0123456789abcdef0123456789abcdef/6.1.0", 0o755);
    let report = run(&tree, Treefile::default()).unwrap();
    assert_eq!(tree.read("usr/etc/machine-id"), "");
    assert!(!tree.exists("boot/0123456789abcdef0123456789abcdef"));
    assert!(report.notes.contains(&"empty /etc/machine-id (machineid-compat)".to_string()));

    let tree = Tree::new();
    tree.file("etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444);
    run(&tree, Treefile { machineid_compat: Some(false), ..Treefile::default() }).unwrap();
    assert!(!tree.exists("usr/etc/machine-id"));
}

#[test]
fn tmp_is_a_symlink_or_a_directory() {
    let cases = [
        (Treefile::default(), false),
        (Treefile { tmp_is_dir: Some(true), ..Treefile::default() }, true),
        (Treefile { edition: Some(Edition("2024".into())), ..Treefile::default() }, true),
        (Treefile { container: Some(true), ..Treefile::default() }, true),
        (
            Treefile {
                edition: Some(Edition("2024".into())),
                tmp_is_dir: Some(false),
                ..Treefile::default()
            },
            false,
        ),
    ];
    for (index, (treefile, is_directory)) in cases.into_iter().enumerate() {
        let tree = Tree::new();
        tree.directory("tmp", 0o755);
        run(&tree, treefile).unwrap();
        if is_directory {
            assert_eq!(tree.mode("tmp"), 0o1777, "case {index}");
            assert!(fs::symlink_metadata(tree.path("tmp")).unwrap().is_dir(), "case {index}");
        } else {
            assert_eq!(tree.link_target("tmp"), "sysroot/tmp", "case {index}");
        }
        assert!(tree.path("sysroot").is_dir());
        for (link, target) in [("home", "var/home"), ("root", "var/roothome"), ("ostree", "sysroot/ostree")] {
            assert_eq!(tree.link_target(link), target, "case {index}");
        }
    }
}

#[test]
fn opt_usrlocal_modes() {
    // var (the default): symlinks into /var, package content of /opt kept in /usr/lib/opt.
    let tree = Tree::new();
    tree.file("opt/vendor/bin/tool", "tool", 0o755);
    tree.directory("usr/local/bin", 0o755);
    let report = run(&tree, Treefile::default()).unwrap();
    assert_eq!(tree.link_target("opt"), "var/opt");
    assert_eq!(tree.link_target("usr/local"), "../var/usrlocal");
    assert_eq!(tree.read("usr/lib/opt/vendor/bin/tool"), "tool");
    let tmpfiles = tree.read("usr/lib/tmpfiles.d/arbor-autovar.conf");
    for line in
        ["d /var/opt 0755", "L /var/opt/vendor - - - - /usr/lib/opt/vendor", "d /var/usrlocal/bin 0755"]
    {
        assert!(tmpfiles.contains(line), "{line} in\n{tmpfiles}");
    }
    assert!(report.notes.iter().any(|note| note.contains("/opt/vendor")));

    let tree = Tree::new();
    tree.file("opt/vendor/file", "x", 0o644);
    tree.symlink("usr/local", "../var/usrlocal");
    run(&tree, Treefile { opt_usrlocal: Some(OptUsrlocal("root".into())), ..Treefile::default() }).unwrap();
    assert!(fs::symlink_metadata(tree.path("opt")).unwrap().is_dir());
    assert!(fs::symlink_metadata(tree.path("usr/local")).unwrap().is_dir());
    assert_eq!(tree.read("opt/vendor/file"), "x");

    let tree = Tree::new();
    tree.file("opt/vendor/file", "x", 0o644);
    unit(&tree, "ostree-state-overlay@.service", "");
    run(&tree, Treefile { opt_usrlocal: Some(OptUsrlocal("stateoverlay".into())), ..Treefile::default() })
        .unwrap();
    assert_eq!(tree.link_target("opt"), "usr/lib/opt");
    assert_eq!(tree.read("usr/lib/opt/vendor/file"), "x");
    assert!(fs::symlink_metadata(tree.path("usr/local")).unwrap().is_dir());
    assert_eq!(
        tree.entries("usr/lib/systemd/system/local-fs.target.requires"),
        ["ostree-state-overlay@usr-lib-opt.service", "ostree-state-overlay@usr-local.service"]
    );
}

#[test]
fn var_becomes_tmpfiles_entries() {
    let tree = Tree::new();
    tree.directory("var/lib/app", 0o750);
    tree.directory("var/lib/app/state dir", 0o700);
    tree.directory("var/log/journal", 0o2755);
    tree.directory("var/cache", 0o755);
    tree.symlink("var/lock", "../run/lock");
    tree.symlink("var/run", "../run");
    tree.file("var/lib/app/leftover.db", "data", 0o644);
    tree.file("var/log/wtmp", "", 0o664);
    tree.file(
        "usr/lib/tmpfiles.d/systemd.conf",
        "d /var/log/journal 2755 root systemd-journal - -\nZ /var/cache 0755 root root -\nx /var/lib/app\n",
        0o644,
    );

    let report = run(&tree, Treefile::default()).unwrap();

    insta::assert_snapshot!(tree.read("usr/lib/tmpfiles.d/arbor-autovar.conf"));
    assert_eq!(tree.entries("var"), Vec::<String>::new());
    assert_eq!(tree.mode("usr/lib/tmpfiles.d/arbor-autovar.conf"), 0o644);
    assert!(
        report.warnings.iter().any(|warning| warning
            == "dropped 1 files under /var (only directories and symlinks become tmpfiles.d entries): /var/lib/app/leftover.db"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn etc_moves_to_usr_etc_and_passwd_to_usr_lib() {
    let tree = Tree::new();
    tree.file("etc/os-release", "NAME=test\n", 0o644);
    tree.file(
        "etc/passwd",
        &format!(
            "svc:x:{}:{}::/:/sbin/nologin\nroot:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/:/sbin/nologin\n",
            uid(),
            gid()
        ),
        0o644,
    );
    run(&tree, Treefile { etc_group_members: Some(vec!["wheel".into()]), ..Treefile::default() }).unwrap();
    assert!(!tree.exists("etc"));
    assert_eq!(tree.read("usr/etc/os-release"), "NAME=test\n");
    let expected_etc_passwd = if uid() == 0 {
        format!("svc:x:{}:{}::/:/sbin/nologin\nroot:x:0:0:root:/root:/bin/bash\n", uid(), gid())
    } else {
        "root:x:0:0:root:/root:/bin/bash\n".to_string()
    };
    assert_eq!(tree.read("usr/etc/passwd"), expected_etc_passwd);
    assert!(tree.read("usr/lib/passwd").ends_with("bin:x:1:1::/:/sbin/nologin\n"));
    assert!(tree.read("usr/etc/group").contains("wheel:x:10:\n"));
    assert!(tree.read("usr/lib/group").contains("wheel:x:10:\n"));
    assert_eq!(
        tree.read("usr/etc/nsswitch.conf"),
        "passwd: files altfiles systemd\ngroup: files altfiles systemd\n"
    );

    let tree = Tree::new();
    tree.file("usr/etc/stray", "x", 0o644);
    let error = run(&tree, Treefile::default()).unwrap_err();
    assert_eq!(error.to_string(), "cannot move /etc to /usr/etc: /usr/etc already exists in the tree");
}

fn kernel_tree(version: &str) -> Tree {
    let tree = Tree::new();
    tree.object("vmlinuz", &[&format!("boot/vmlinuz-{version}")], "kernel image", 0o755);
    tree.file(&format!("boot/System.map-{version}"), "map", 0o644);
    tree.file(&format!("boot/initramfs-{version}.img"), "host initramfs", 0o600);
    tree.file("boot/loader/entries/build.conf", "title build\n", 0o644);
    tree.file("boot/efi/EFI/fedora/grubx64.efi", "grub", 0o700);
    tree.file(&format!("usr/lib/modules/{version}/modules.dep"), "", 0o644);
    tree
}

#[test]
fn kernel_moves_to_the_modules_directory_and_dracut_is_planned() {
    let tree = kernel_tree("6.1.0-1.fc41.x86_64");
    tree.file("usr/bin/dracut", "#!/bin/sh\n", 0o755);
    tree.file("usr/lib/modules/6.1.0-1.fc41.x86_64/initramfs.img", "package initramfs", 0o644);
    let treefile = Treefile {
        boot_location: Some(BootLocation("modules".into())),
        initramfs_args: Some(vec!["--no-hostonly".into(), "--add".into(), "iscsi".into()]),
        ..Treefile::default()
    };

    let report = run(&tree, treefile).unwrap();

    let modules = "usr/lib/modules/6.1.0-1.fc41.x86_64";
    assert_eq!(tree.read(&format!("{modules}/vmlinuz")), "kernel image");
    assert_eq!(tree.read(&format!("{modules}/System.map")), "map");
    assert!(!tree.exists(&format!("{modules}/initramfs.img")), "dracut writes a new file");
    assert_eq!(tree.entries("boot"), Vec::<String>::new());
    assert_eq!(tree.read("usr/lib/ostree-boot/efi/EFI/fedora/grubx64.efi"), "grub");
    assert!(!tree.exists("usr/lib/ostree-boot/loader"));
    assert_eq!(report.kernel_version.as_deref(), Some("6.1.0-1.fc41.x86_64"));
    assert!(report.bootable);
    assert_eq!(
        report.initramfs_command,
        Some(InitramfsCommand {
            kernel_version: "6.1.0-1.fc41.x86_64".into(),
            argv: [
                "/usr/bin/dracut",
                "--no-hostonly",
                "--add",
                "iscsi",
                "--kver",
                "6.1.0-1.fc41.x86_64",
                "--reproducible",
                "-v",
                "--add",
                "ostree",
                "-f",
                "/usr/lib/modules/6.1.0-1.fc41.x86_64/initramfs.img",
            ]
            .map(String::from)
            .to_vec(),
            output: PathBuf::from("usr/lib/modules/6.1.0-1.fc41.x86_64/initramfs.img"),
        })
    );
}

#[test]
fn kernel_without_dracut_or_with_no_initramfs() {
    let tree = Tree::new();
    tree.file("usr/lib/modules/6.2.0/vmlinuz", "kernel", 0o755);
    let report = run(&tree, Treefile::default()).unwrap();
    assert_eq!(report.kernel_version.as_deref(), Some("6.2.0"));
    assert!(report.bootable);
    assert_eq!(report.initramfs_command, None);
    assert!(report.notes.contains(&"no initramfs generated (the tree has no dracut)".to_string()));

    let tree = kernel_tree("6.3.0");
    tree.file("usr/bin/dracut", "#!/bin/sh\n", 0o755);
    let report = run(&tree, Treefile { no_initramfs: Some(true), ..Treefile::default() }).unwrap();
    assert_eq!(report.initramfs_command, None);
    assert!(report.notes.contains(&"no initramfs generated (no-initramfs is set)".to_string()));
    assert_eq!(tree.read("usr/lib/modules/6.3.0/vmlinuz"), "kernel image");

    let tree = kernel_tree("6.4.0");
    let report = run(&tree, Treefile { container: Some(true), ..Treefile::default() }).unwrap();
    assert!(!report.bootable);
    assert_eq!(report.kernel_version, None);

    let tree = Tree::new();
    let report = run(&tree, Treefile::default()).unwrap();
    assert!(!report.bootable);
    assert!(report.notes.contains(&"no kernel in the tree: it is not bootable".to_string()));
}

#[test]
fn several_kernels_are_an_error() {
    let tree = kernel_tree("6.1.0");
    tree.file("usr/lib/modules/6.2.0/vmlinuz", "other", 0o755);
    let error = run(&tree, Treefile::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the tree has several kernels (6.1.0, 6.2.0); a bootable tree has exactly one"
    );
}

#[test]
fn the_same_tree_gives_the_same_result() {
    let build = || {
        let tree = kernel_tree("6.1.0");
        tree.directory("var/lib/b", 0o755);
        tree.directory("var/lib/a", 0o755);
        tree.file("usr/lib/systemd/system/sshd.service", "[Install]\nWantedBy=multi-user.target\n", 0o644);
        let treefile = Treefile { units: Some(vec!["sshd.service".into()]), ..Treefile::default() };
        let report = run(&tree, treefile).unwrap();
        (report, tree.read("usr/lib/tmpfiles.d/arbor-autovar.conf"), tree.read("usr/lib/passwd"))
    };
    assert_eq!(build(), build());
}

#[test]
fn before_scripts_and_finalize_split_the_work() {
    let tree = Tree::new();
    tree.file("etc/hosts", "x", 0o644);
    let treefile = Treefile { remove_files: Some(vec!["etc/hosts".into()]), ..Treefile::default() };
    let flattened = flattened(treefile, tree.directory.path());
    let packages = no_packages();
    let context = PostprocessContext { package_files: &packages };
    before_scripts(&tree.root(), &flattened, &context).unwrap();
    assert!(tree.path("etc").is_dir(), "the scripts see /etc where it was");
    assert!(!tree.exists("etc/hosts"));
    // A postprocess script runs here.
    tree.file("etc/from-script", "y", 0o644);
    tree.file("usr/lib/added-by-script", "z", 0o644);
    finalize(&tree.root(), &flattened).unwrap();
    assert_eq!(tree.read("usr/etc/from-script"), "y");
}

#[test]
fn add_file_entries_are_plain_data() {
    // AddFile is built by the loader from [source, destination]; absolute sources are used as they are.
    let tree = Tree::new();
    let source = tree.directory.path().join("absolute-source");
    fs::write(&source, "abs").unwrap();
    let treefile = Treefile {
        add_files: Some(vec![AddFile {
            source: source.to_string_lossy().into_owned(),
            destination: "/usr/share/abs".into(),
        }]),
        ..Treefile::default()
    };
    run(&tree, treefile).unwrap();
    assert_eq!(tree.read("usr/share/abs"), "abs");
}

//! Running code inside a tree: the rofiles-fuse + bwrap sandbox (copy-up protects hardlinked
//! objects, no network, a fixed environment, time limits, mounts cleaned up), rpm-style scriptlet
//! phases, and the rpm database written with the host's rpm. Needs root, bwrap, rofiles-fuse and
//! rpm (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbor_testsupport::RpmSpec;
use arbor_testsupport::root::{install_host_program, install_host_shell};
use arbor_testsupport::tools::{require_tool, tool_stdout};
use common::blocking::Cancellation;
use tree::rpmdb::{DATABASE_DIRECTORY, DATABASE_FILE, PackageFile, SYSIMAGE_LINK, write_rpmdb};
use tree::sandbox::{ProtectedRoot, SandboxCommand, SandboxError, cleanup_stale_mounts};
use tree::scriptlets::{
    FileTrigger, PackageScripts, Phase, Script, ScriptedPackage, ScriptletError, run_phase,
};

/// A work directory holding `root/`, a tree whose /bin/sh works.
fn shell_tree() -> (tempfile::TempDir, PathBuf) {
    require_tool("bwrap").unwrap();
    require_tool("rofiles-fuse").unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    install_host_shell(&root).unwrap();
    (work, root)
}

fn shell(description: &str, body: &str) -> SandboxCommand {
    SandboxCommand::new(description, vec!["/bin/sh".to_string()]).script(body)
}

/// The FUSE mount points of this process's mount namespace.
fn fuse_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|field| *field == "-")?;
            fields[separator + 1].starts_with("fuse").then(|| PathBuf::from(fields[4]))
        })
        .collect()
}

#[test]
fn writes_copy_up_and_leave_the_stored_object_alone() {
    let (work, root) = shell_tree();
    let store = work.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("object"), "stored\n").unwrap();
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::fs::hard_link(store.join("object"), root.join("usr/share/data")).unwrap();
    std::fs::create_dir_all(root.join("var/tmp")).unwrap();

    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    protected
        .run(&shell(
            "writer",
            "echo appended >> /usr/share/data\n\
             echo new > /usr/share/created\n\
             echo junk > /var/tmp/junk\n\
             echo junk > /tmp/junk\n\
             echo state > /run/state\n",
        ))
        .unwrap();
    drop(protected);

    assert_eq!(std::fs::read_to_string(store.join("object")).unwrap(), "stored\n", "the object is unchanged");
    assert_eq!(std::fs::metadata(store.join("object")).unwrap().nlink(), 1, "the link was broken");
    assert_eq!(std::fs::read_to_string(root.join("usr/share/data")).unwrap(), "stored\nappended\n");
    assert_eq!(std::fs::read_to_string(root.join("usr/share/created")).unwrap(), "new\n");
    assert!(!root.join("var/tmp/junk").exists(), "/var/tmp is a tmpfs");
    for mount_target in ["tmp", "run", "proc", "dev"] {
        assert!(!root.join(mount_target).exists(), "/{mount_target} was created for the sandbox and removed");
    }
    assert!(root.join("var/tmp").is_dir(), "a mount target that was there stays");
}

#[test]
fn a_failing_script_reports_its_output() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let error = protected.run(&shell("failing", "echo about to fail\necho oops >&2\nexit 3\n")).unwrap_err();
    let SandboxError::Failed { status, output, .. } = &error else { panic!("{error}") };
    assert_eq!(status.code(), Some(3));
    assert_eq!(output, "about to fail\noops\n");
    let message = error.to_string();
    assert!(message.starts_with("failing failed (exit status: 3)"), "{message}");
    assert!(message.contains("about to fail\noops"), "{message}");
}

#[test]
fn the_sandbox_has_no_network() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let output = protected
        .run(&shell(
            "interfaces",
            "while read -r line; do case \"$line\" in *:*) echo \"${line%%:*}\";; esac; done < /proc/net/dev\n",
        ))
        .unwrap();
    assert_eq!(output.output, "lo\n");
}

#[test]
fn the_environment_is_fixed_plus_what_is_asked_for() {
    let (_work, root) = shell_tree();
    let mut protected = ProtectedRoot::mount_beside(&root).unwrap();
    protected.set_environment("SOURCE_DATE_EPOCH", "1700000000");
    let command = shell("environment", "export -p\n").environment("RPM_INSTALL_PREFIX", "/usr");
    let output = protected.run(&command).unwrap().output;
    let exported: Vec<&str> = output.lines().collect();
    assert_eq!(
        exported,
        [
            "export HOME='/root'",
            "export LANG='C.UTF-8'",
            "export PATH='/usr/sbin:/usr/bin:/sbin:/bin'",
            "export PWD='/'",
            "export RPM_INSTALL_PREFIX='/usr'",
            "export SOURCE_DATE_EPOCH='1700000000'",
        ]
    );
}

#[test]
fn scripts_get_interpreter_arguments_their_arguments_and_stdin() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let command = SandboxCommand::new("bash.post", vec!["/bin/sh".into(), "-e".into()])
        .script("echo \"$0 $*\"\nwhile read -r line; do echo \"read $line\"; done\n")
        .argument("1")
        .stdin(b"/usr/lib/a\n/usr/lib/b\n".to_vec());
    let output = protected.run(&command).unwrap();
    assert_eq!(output.output, "/run/arbor/bash.post 1\nread /usr/lib/a\nread /usr/lib/b\n");
    assert_eq!(output.omitted_bytes, 0);
}

#[test]
fn scripts_can_give_files_to_other_users() {
    let (_work, root) = shell_tree();
    install_host_program(&root, Path::new("/usr/bin/chown")).unwrap();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    protected.run(&shell("chowner", "echo x > /owned\nchown 1234:5678 /owned\n")).unwrap();
    drop(protected);
    let metadata = std::fs::metadata(root.join("owned")).unwrap();
    assert_eq!((metadata.uid(), metadata.gid()), (1234, 5678));
}

#[test]
fn a_missing_interpreter_is_named() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let command =
        SandboxCommand::new("python3-libs.post", vec!["/usr/bin/python3".into()]).script("print(1)");
    let error = protected.run(&command).unwrap_err();
    assert!(matches!(error, SandboxError::ProgramMissing { .. }), "{error}");
    assert!(
        error.to_string().starts_with("python3-libs.post needs /usr/bin/python3, which is not in the tree"),
        "{error}"
    );
}

#[test]
fn a_script_that_runs_too_long_is_killed() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let started = Instant::now();
    let command = shell("spinner", "echo spinning\nwhile :; do :; done\n").timeout(Duration::from_secs(1));
    let error = protected.run(&command).unwrap_err();
    let SandboxError::TimedOut { output, .. } = &error else { panic!("{error}") };
    assert_eq!(output, "spinning\n");
    assert!(started.elapsed() < Duration::from_secs(30), "killed promptly: {:?}", started.elapsed());
}

#[test]
fn the_mount_is_gone_after_drop() {
    let (work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let mountpoint = protected.mountpoint().to_path_buf();
    assert_eq!(mountpoint, work.path().canonicalize().unwrap().join("root.rofiles"));
    assert!(fuse_mounts().contains(&mountpoint));
    assert!(mountpoint.join("usr/bin/sh").exists(), "the tree shows through the mount");
    drop(protected);
    assert!(!fuse_mounts().contains(&mountpoint));
    assert!(!mountpoint.exists(), "the mount point it created is removed");
}

#[test]
fn mounting_twice_at_one_place_is_refused() {
    let (work, root) = shell_tree();
    let mountpoint = work.path().join("mnt");
    let first = ProtectedRoot::mount(&root, &mountpoint).unwrap();
    let error = ProtectedRoot::mount(&root, &mountpoint).unwrap_err();
    assert!(matches!(error, SandboxError::AlreadyMounted { .. }), "{error}");
    first.unmount().unwrap();
    assert!(!fuse_mounts().contains(&mountpoint));
}

#[test]
fn stale_mounts_of_a_killed_run_are_cleaned_up() {
    let (work, root) = shell_tree();
    let mountpoint = work.path().join("root.rofiles");
    std::fs::create_dir(&mountpoint).unwrap();
    // What a run killed with -9 leaves: a FUSE mount whose daemon is gone.
    let mut daemon = std::process::Command::new("rofiles-fuse")
        .arg("--copyup")
        .arg(&root)
        .arg(&mountpoint)
        .arg("-f")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fuse_mounts().contains(&mountpoint) {
        assert!(Instant::now() < deadline, "rofiles-fuse did not mount");
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(fuse_mounts().contains(&mountpoint), "the dead mount stays");

    let cleaned = cleanup_stale_mounts(work.path()).unwrap();
    assert_eq!(cleaned, std::slice::from_ref(&mountpoint));
    assert!(!fuse_mounts().contains(&mountpoint));
    assert_eq!(cleanup_stale_mounts(work.path()).unwrap(), Vec::<PathBuf>::new());

    // The mount point can be used again.
    let protected = ProtectedRoot::mount(&root, &mountpoint).unwrap();
    protected.run(&shell("after cleanup", "true\n")).unwrap();
}

fn script(body: &str) -> Option<Script> {
    Some(Script { interpreter: vec!["/bin/sh".into()], body: body.into() })
}

fn read_log(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(root.join(name)).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn phases_run_in_transaction_order_with_rpm_arguments() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let logging = |what: &str| script(&format!("echo \"{what} $#:$*\" >> /order.log\n"));
    let first = PackageScripts {
        pre: logging("first pre"),
        post: logging("first post"),
        posttrans: logging("first posttrans"),
        transfiletriggerin: Vec::new(),
    };
    let second = PackageScripts { post: logging("second post"), ..PackageScripts::default() };
    let lua = PackageScripts {
        post: Some(Script { interpreter: vec!["<lua>".into()], body: "print('hi')".into() }),
        ..PackageScripts::default()
    };
    // A body-less `-p PROGRAM` scriptlet: the program alone, no arguments.
    let program_only = PackageScripts {
        post: Some(Script {
            interpreter: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo \"program-only post $#\" >> /order.log".into(),
            ],
            body: String::new(),
        }),
        ..PackageScripts::default()
    };
    let packages = [
        ScriptedPackage { nevra: "first-1-1.x86_64", name: "first", scripts: &first, files: &[] },
        ScriptedPackage { nevra: "lua-1-1.noarch", name: "lua", scripts: &lua, files: &[] },
        ScriptedPackage { nevra: "second-1-1.x86_64", name: "second", scripts: &second, files: &[] },
        ScriptedPackage {
            nevra: "program-only-1-1.noarch",
            name: "program-only",
            scripts: &program_only,
            files: &[],
        },
    ];
    let cancellation = Cancellation::default();
    let pre = run_phase(&protected, Phase::Pre, &packages, &cancellation).unwrap();
    let post = run_phase(&protected, Phase::Post, &packages, &cancellation).unwrap();
    let posttrans = run_phase(&protected, Phase::PostTrans, &packages, &cancellation).unwrap();
    assert_eq!((pre.scripts_run, post.scripts_run, posttrans.scripts_run), (1, 3, 1));
    assert_eq!(post.lua_skipped, ["lua-1-1.noarch"]);
    assert!(pre.lua_skipped.is_empty());
    assert_eq!(
        read_log(&root, "order.log"),
        ["first pre 1:1", "first post 1:1", "second post 1:1", "program-only post 0", "first posttrans 1:1"]
    );
}

#[test]
fn file_triggers_fire_on_matching_paths_in_priority_order() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let trigger = |name: &str, prefixes: &[&str], priority: i32| FileTrigger {
        interpreter: vec!["/bin/sh".into()],
        body: format!(
            "echo \"{name} $*\" >> /triggers.log\nwhile read -r path; do echo \" $path\" >> /triggers.log; done\n"
        ),
        prefixes: prefixes.iter().map(|prefix| prefix.to_string()).collect(),
        priority,
    };
    let fonts = PackageScripts {
        transfiletriggerin: vec![
            trigger("fonts", &["/usr/share/fonts/"], 10),
            trigger("nothing", &["/opt/"], 500),
        ],
        ..PackageScripts::default()
    };
    let libraries = PackageScripts {
        transfiletriggerin: vec![trigger("ldconfig", &["/usr/lib64/", "/lib64/"], 100)],
        ..PackageScripts::default()
    };
    let content_files: Vec<String> =
        ["/usr/share/fonts", "/usr/share/fonts/a.ttf", "/usr/lib64/libz.so.1", "/usr/bin/tool"]
            .map(String::from)
            .to_vec();
    let more_files: Vec<String> =
        ["/usr/share/fonts/b.ttf", "/usr/lib64/libz.so.1"].map(String::from).to_vec();
    let no_scripts = PackageScripts::default();
    let packages = [
        ScriptedPackage { nevra: "fontconfig-2-1.x86_64", name: "fontconfig", scripts: &fonts, files: &[] },
        ScriptedPackage {
            nevra: "content-1-1.x86_64",
            name: "content",
            scripts: &no_scripts,
            files: &content_files,
        },
        ScriptedPackage { nevra: "glibc-2-1.x86_64", name: "glibc", scripts: &libraries, files: &[] },
        ScriptedPackage { nevra: "more-1-1.noarch", name: "more", scripts: &no_scripts, files: &more_files },
    ];
    let report =
        run_phase(&protected, Phase::TransFileTriggerIn, &packages, &Cancellation::default()).unwrap();
    assert_eq!(report.scripts_run, 2);
    assert_eq!(
        read_log(&root, "triggers.log"),
        [
            "ldconfig 0",
            " /usr/lib64/libz.so.1",
            "fonts 0",
            " /usr/share/fonts/a.ttf",
            " /usr/share/fonts/b.ttf",
        ]
    );
}

#[test]
fn a_failing_scriptlet_names_package_phase_and_output() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let scripts =
        PackageScripts { post: script("echo cannot add the user\nexit 4\n"), ..PackageScripts::default() };
    let packages =
        [ScriptedPackage { nevra: "daemon-1-1.x86_64", name: "daemon", scripts: &scripts, files: &[] }];
    let error = run_phase(&protected, Phase::Post, &packages, &Cancellation::default()).unwrap_err();
    let ScriptletError::Failed { package, phase, status, output } = &error else { panic!("{error}") };
    assert_eq!((package.as_str(), *phase, status.code()), ("daemon-1-1.x86_64", Phase::Post, Some(4)));
    assert_eq!(output, "cannot add the user\n");
    assert_eq!(
        error.to_string(),
        "the %post scriptlet of daemon-1-1.x86_64 failed (exit status: 4); its output:\ncannot add the user\n"
    );
}

#[test]
fn a_cancelled_phase_runs_nothing() {
    let (_work, root) = shell_tree();
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    let scripts = PackageScripts { post: script("echo ran > /ran\n"), ..PackageScripts::default() };
    let packages = [ScriptedPackage { nevra: "a-1-1.noarch", name: "a", scripts: &scripts, files: &[] }];
    let cancellation = Cancellation::default();
    cancellation.cancel();
    let error = run_phase(&protected, Phase::Post, &packages, &cancellation).unwrap_err();
    assert!(matches!(error, ScriptletError::Cancelled { phase: Phase::Post }), "{error}");
    drop(protected);
    assert!(!root.join("ran").exists());
}

#[test]
fn scriptlets_read_from_a_built_package_run() {
    let (work, root) = shell_tree();
    let path = RpmSpec::new("greeter", "1.0", "1")
        .post_install_script("echo \"greeter post $1\" > /greeting\n")
        .write_to(work.path())
        .unwrap();
    let metadata = rpm::PackageMetadata::open(&path).unwrap();
    let scripts = PackageScripts::from_header(&metadata).unwrap();
    let packages =
        [ScriptedPackage { nevra: "greeter-1.0-1.noarch", name: "greeter", scripts: &scripts, files: &[] }];
    let protected = ProtectedRoot::mount_beside(&root).unwrap();
    run_phase(&protected, Phase::Post, &packages, &Cancellation::default()).unwrap();
    drop(protected);
    assert_eq!(std::fs::read_to_string(root.join("greeting")).unwrap(), "greeter post 1\n");
}

/// Three packages written to `directory`, returned with their NEVRAs.
fn small_package_set(directory: &Path) -> (Vec<PackageFile>, Vec<String>) {
    std::fs::create_dir_all(directory).unwrap();
    let specs = [
        RpmSpec::new("alpha", "1.0", "1").arch("x86_64").file("/usr/bin/alpha", b"#!/bin/sh\n", 0o755),
        RpmSpec::new("beta", "2.1", "3").requires("alpha").file("/usr/share/beta/data", b"beta\n", 0o644),
        RpmSpec::new("gamma", "0.9", "1").epoch(2).directory("/usr/lib/gamma", 0o755),
    ];
    let nevra = |spec: &RpmSpec| {
        format!("{}-{}-{}.{}", spec.name(), spec.version(), spec.release(), spec.architecture())
    };
    let files = specs
        .iter()
        .map(|spec| PackageFile { nevra: nevra(spec), path: spec.write_to(directory).unwrap() })
        .collect();
    let mut nevras: Vec<String> = specs.iter().map(nevra).collect();
    nevras.sort();
    (files, nevras)
}

fn query_database(root: &Path, format: &str) -> Vec<String> {
    let root_argument = root.to_str().unwrap();
    let database = format!("/{DATABASE_DIRECTORY}");
    let output =
        tool_stdout("rpm", ["-qa", "--root", root_argument, "--dbpath", &database, "--qf", format]).unwrap();
    let mut lines: Vec<String> = output.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn directory_names(directory: &Path) -> BTreeSet<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn the_rpm_database_lists_every_package_and_is_reproducible() {
    require_tool("rpm").unwrap();
    let work = tempfile::tempdir().unwrap();
    let (first_files, nevras) = small_package_set(&work.path().join("packages"));
    // The same packages at other paths, under other names (as the download cache names them), given in
    // another order.
    let (mut second_files, _) = small_package_set(&work.path().join("elsewhere"));
    second_files.reverse();
    for (index, file) in second_files.iter_mut().enumerate() {
        let renamed = file.path.with_file_name(format!("sha256-{index:064}.rpm"));
        std::fs::rename(&file.path, &renamed).unwrap();
        file.path = renamed;
    }

    let store = work.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("object"), "stored\n").unwrap();
    let mut roots = Vec::new();
    for (name, files) in [("first", &first_files), ("second", &second_files)] {
        let root = work.path().join(name);
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::hard_link(store.join("object"), root.join("usr/bin/alpha")).unwrap();
        // What Fedora's rpm package ships, replaced by the link.
        std::fs::create_dir_all(root.join(SYSIMAGE_LINK)).unwrap();
        write_rpmdb(&root, files, Some(1_700_000_000)).unwrap();
        roots.push(root);
    }

    let database_directory = roots[0].join(DATABASE_DIRECTORY);
    assert_eq!(
        directory_names(&database_directory),
        BTreeSet::from([DATABASE_FILE.to_string()]),
        "no side files"
    );
    let first_database = std::fs::read(database_directory.join(DATABASE_FILE)).unwrap();
    let second_database = std::fs::read(roots[1].join(DATABASE_DIRECTORY).join(DATABASE_FILE)).unwrap();
    assert!(first_database == second_database, "the two databases differ");
    assert_eq!(&first_database[18..20], &[1, 1], "rollback-journal mode");

    assert_eq!(query_database(&roots[0], "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"), nevras);
    assert_eq!(query_database(&roots[0], "%{INSTALLTID}\\n"), ["1700000000"; 3]);
    assert_eq!(
        std::fs::read_link(roots[0].join(SYSIMAGE_LINK)).unwrap(),
        Path::new("../../share/rpm"),
        "usr/lib/sysimage/rpm points to the database"
    );
    // Reading leaves the database as it is, with no side files.
    assert_eq!(std::fs::read(database_directory.join(DATABASE_FILE)).unwrap(), first_database);
    assert_eq!(directory_names(&database_directory), BTreeSet::from([DATABASE_FILE.to_string()]));
    // --justdb touched no file of the tree.
    assert_eq!(std::fs::read_to_string(store.join("object")).unwrap(), "stored\n");
    assert_eq!(std::fs::metadata(store.join("object")).unwrap().nlink(), 3);

    // Writing again replaces the database.
    write_rpmdb(&roots[0], &first_files[..1], Some(1_700_000_000)).unwrap();
    assert_eq!(query_database(&roots[0], "%{NAME}\\n"), ["alpha"]);
}

/// `cargo nextest run -p tree --test scriptlets --run-ignored only corpus` with the corpus of
/// ~470 packages in /var/tmp/arbor-corpus/gen0: prints how long writing its database takes.
#[test]
#[ignore = "needs the package corpus in /var/tmp/arbor-corpus/gen0"]
fn corpus_rpmdb_timing() {
    let corpus = Path::new("/var/tmp/arbor-corpus/gen0/Packages");
    let mut files = Vec::new();
    for directory in std::fs::read_dir(corpus).unwrap() {
        for entry in std::fs::read_dir(directory.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "rpm") {
                let nevra = path.file_stem().unwrap().to_string_lossy().into_owned();
                files.push(PackageFile { nevra, path });
            }
        }
    }
    let work = tempfile::tempdir().unwrap();
    let mut databases = Vec::new();
    for name in ["first", "second"] {
        let root = work.path().join(name);
        let started = Instant::now();
        write_rpmdb(&root, &files, Some(1_700_000_000)).unwrap();
        eprintln!("{} packages recorded in {:?}", files.len(), started.elapsed());
        assert_eq!(query_database(&root, "%{NAME}\\n").len(), files.len());
        databases.push(std::fs::read(root.join(DATABASE_DIRECTORY).join(DATABASE_FILE)).unwrap());
    }
    assert!(databases[0] == databases[1], "the two databases differ");
}

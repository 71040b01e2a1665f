//! Builds the exampleos demo repository (`make demo`): every package the examples/ treefiles name, at
//! the versions examples/manifest-lock.x86_64.json locks (plus the fast-tracked exampleos-release 1.1
//! and a few unlocked dependencies), written with the test-support RPM builder and createrepo_c.
//!
//! The packages make a small but working tree: `bash`, `coreutils` (and `sed`) are the build host's
//! own executables with their shared libraries ([`HostFiles`]), `filesystem` and `setup` are the
//! skeleton and the user database, the daemons ship real systemd units with `[Install]` sections,
//! `kernel` ships a placeholder `vmlinuz`, and `dracut` is a bash stand-in that writes a small,
//! deterministic text file in place of an initramfs. Scriptlets use only what the tree ships.
//! examples/README.md lists what each package contains.
//!
//! Usage: exampleos-repository [DIRECTORY]   (default /var/tmp/arbor-demo/repo, as examples/exampleos.repo says)

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use arbor_testsupport::{HostFiles, RpmSpec, TestRepository};

const DEFAULT_DIRECTORY: &str = "/var/tmp/arbor-demo/repo";

/// The release of every package, as the lockfile has it.
const RELEASE: &str = "1";

/// The architecture of the demo OS (the lockfile is manifest-lock.x86_64.json).
const ARCH: &str = "x86_64";

/// `uname -r` of the exampleos kernel: its directory under /usr/lib/modules.
const KERNEL_VERSION: &str = "6.1.0-exampleos.x86_64";

/// The host executables of `bash`.
const BASH_EXECUTABLES: [&str; 1] = ["/usr/bin/bash"];

/// The host executables of `coreutils`: what the scriptlets, the treefiles' postprocess scripts
/// and the `bwrap … /usr/bin/env bash -c` command line of the compose use. `sed` is not part of GNU
/// coreutils, but exampleos has no `sed` package (the lockfile would have to name it).
const COREUTILS_EXECUTABLES: [&str; 17] = [
    "/usr/bin/cat",
    "/usr/bin/chmod",
    "/usr/bin/chown",
    "/usr/bin/cp",
    "/usr/bin/echo",
    "/usr/bin/env",
    "/usr/bin/false",
    "/usr/bin/install",
    "/usr/bin/ln",
    "/usr/bin/ls",
    "/usr/bin/mkdir",
    "/usr/bin/mv",
    "/usr/bin/rm",
    "/usr/bin/sed",
    "/usr/bin/test",
    "/usr/bin/touch",
    "/usr/bin/true",
];

/// Directories anyone may list and enter.
const DIRECTORY_MODE: u16 = 0o755;
/// World-writable with the sticky bit: `/tmp` and `/var/tmp`.
const STICKY_DIRECTORY_MODE: u16 = 0o1777;
/// `/proc`, `/sys`, `/boot`: read-only mount points, as Fedora's filesystem package has them.
const READ_ONLY_DIRECTORY_MODE: u16 = 0o555;
/// `/root`: root's home, readable by root and its group only (Fedora's `dr-xr-x---`).
const ROOT_HOME_MODE: u16 = 0o550;
/// Directories that hold secrets or private state of a service.
const PRIVATE_DIRECTORY_MODE: u16 = 0o700;
/// sshd's privilege-separation directory: enterable, not listable.
const PRIVILEGE_SEPARATION_DIRECTORY_MODE: u16 = 0o711;
/// A service's state directory, shared with its group.
const GROUP_DIRECTORY_MODE: u16 = 0o750;
/// Regular files.
const FILE_MODE: u16 = 0o644;
/// Executables and scripts.
const EXECUTABLE_MODE: u16 = 0o755;
/// Files only root may read: sshd_config.
const PRIVATE_FILE_MODE: u16 = 0o600;
/// Files root and the service's group may read: chrony.keys.
const GROUP_FILE_MODE: u16 = 0o640;
/// /etc/sudoers: read-only, root and group.
const SUDOERS_MODE: u16 = 0o440;
/// /etc/shadow and /etc/gshadow: no permission bits at all (root reads them anyway), as Fedora.
const SHADOW_MODE: u16 = 0o000;
/// Files under /boot/efi (a FAT file system without permissions on real machines; Fedora packages
/// them as root-only).
const EFI_FILE_MODE: u16 = 0o700;

/// The filesystem package's directories and their modes (merged `/usr`: the top-level `bin`,
/// `sbin`, `lib` and `lib64` are links, see [`MERGED_USR_LINKS`]).
const SKELETON_DIRECTORIES: &[(&str, u16)] = &[
    ("/boot", READ_ONLY_DIRECTORY_MODE),
    ("/dev", DIRECTORY_MODE),
    ("/etc", DIRECTORY_MODE),
    ("/home", DIRECTORY_MODE),
    ("/media", DIRECTORY_MODE),
    ("/mnt", DIRECTORY_MODE),
    ("/opt", DIRECTORY_MODE),
    ("/proc", READ_ONLY_DIRECTORY_MODE),
    ("/root", ROOT_HOME_MODE),
    ("/run", DIRECTORY_MODE),
    ("/srv", DIRECTORY_MODE),
    ("/sys", READ_ONLY_DIRECTORY_MODE),
    ("/tmp", STICKY_DIRECTORY_MODE),
    ("/usr", DIRECTORY_MODE),
    ("/usr/bin", DIRECTORY_MODE),
    ("/usr/lib", DIRECTORY_MODE),
    ("/usr/lib/modules", DIRECTORY_MODE),
    ("/usr/lib64", DIRECTORY_MODE),
    ("/usr/libexec", DIRECTORY_MODE),
    ("/usr/local", DIRECTORY_MODE),
    ("/usr/local/bin", DIRECTORY_MODE),
    ("/usr/local/sbin", DIRECTORY_MODE),
    ("/usr/sbin", DIRECTORY_MODE),
    ("/usr/share", DIRECTORY_MODE),
    ("/usr/share/doc", DIRECTORY_MODE),
    ("/usr/share/info", DIRECTORY_MODE),
    ("/var", DIRECTORY_MODE),
    ("/var/cache", DIRECTORY_MODE),
    ("/var/lib", DIRECTORY_MODE),
    ("/var/log", DIRECTORY_MODE),
    ("/var/tmp", STICKY_DIRECTORY_MODE),
];

/// The top-level links of a merged-`/usr` tree.
const MERGED_USR_LINKS: [(&str, &str); 4] =
    [("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")];

/// A user of `setup`: name, uid (= gid of its own group), comment, home, shell.
struct SystemUser {
    name: &'static str,
    id: u32,
    comment: &'static str,
    home: &'static str,
    shell: &'static str,
}

/// No login: the shell of system users (exampleos ships no nologin program, like a minimal Fedora
/// container image without util-linux).
const NO_LOGIN_SHELL: &str = "/usr/sbin/nologin";

/// The users of `setup`, by uid. `sshd` is Fedora's fixed uid 74; Fedora allocates chrony's uid
/// dynamically below 1000, exampleos fixes one (992) so that the packages are reproducible.
const USERS: [SystemUser; 6] = [
    SystemUser { name: "root", id: 0, comment: "Super User", home: "/root", shell: "/bin/bash" },
    SystemUser { name: "bin", id: 1, comment: "bin", home: "/bin", shell: NO_LOGIN_SHELL },
    SystemUser { name: "daemon", id: 2, comment: "daemon", home: "/sbin", shell: NO_LOGIN_SHELL },
    SystemUser {
        name: "sshd",
        id: 74,
        comment: "Privilege-separated SSH",
        home: "/usr/share/empty.sshd",
        shell: NO_LOGIN_SHELL,
    },
    SystemUser {
        name: "chrony",
        id: 992,
        comment: "chrony system user",
        home: "/var/lib/chrony",
        shell: NO_LOGIN_SHELL,
    },
    SystemUser {
        name: "nobody",
        id: 65534,
        comment: "Kernel Overflow User",
        home: "/",
        shell: NO_LOGIN_SHELL,
    },
];

/// The groups of `setup`, by gid: each user's own group plus the usual system groups.
const GROUPS: [(&str, u32); 13] = [
    ("root", 0),
    ("bin", 1),
    ("daemon", 2),
    ("sys", 3),
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("wheel", 10),
    ("utmp", 22),
    ("sshd", 74),
    ("users", 100),
    ("chrony", 992),
    ("nobody", 65534),
];

/// A package with the locked name, version and arch, the release every package has and a README.
fn package(name: &str, version: &str, arch: &str, summary: &str) -> RpmSpec {
    let readme = format!(
        "{name} {version}: {summary}.\n\nPart of exampleos, the demo OS of arbor; built by \
         testsupport/src/bin/exampleos-repository.rs (see examples/README.md).\n"
    );
    RpmSpec::new(name, version, RELEASE)
        .arch(arch)
        .summary(summary)
        .license("MIT")
        .doc_file(&format!("/usr/share/doc/{name}/README"), readme)
}

/// A bash script standing in for a daemon that exampleos does not really ship, so that the
/// `ExecStart=` of its unit names an existing program.
fn stand_in_daemon(name: &str) -> String {
    format!(
        "#!/usr/bin/bash\n\
         # exampleos stand-in for {name}: the demo OS ships the unit and configuration, not the daemon.\n\
         echo \"{name}: exampleos stand-in, not a real daemon\" >&2\n\
         exit 1\n"
    )
}

/// A systemd unit file that starts `program`, enabled into multi-user.target by its `[Install]` section.
fn service_unit(description: &str, after: &str, program: &str, extra_install: &str) -> String {
    format!(
        "[Unit]\nDescription={description}\nAfter={after}\n\n\
         [Service]\nExecStart={program}\n\n\
         [Install]\nWantedBy=multi-user.target\n{extra_install}"
    )
}

/// The file-system skeleton, merged-`/usr` links, and the directories and ELF interpreter link
/// that the packages made of host executables (`host`) need.
fn filesystem(host: &[&HostFiles]) -> RpmSpec {
    let mut spec = package("filesystem", "1.0", ARCH, "The basic directory layout of exampleos")
        .requires_pre_install("setup");
    let mut directories: BTreeMap<String, u16> =
        SKELETON_DIRECTORIES.iter().map(|(path, mode)| (path.to_string(), *mode)).collect();
    for directory in host.iter().flat_map(|files| files.directories()) {
        directories.entry(directory).or_insert(DIRECTORY_MODE);
    }
    for (directory, mode) in &directories {
        spec = spec.directory(directory, *mode);
    }
    let mut links: BTreeMap<&str, &str> = MERGED_USR_LINKS.into_iter().collect();
    links.extend(host.iter().flat_map(|files| files.interpreter_links()));
    for (link, target) in links {
        spec = spec.symlink(link, target);
    }
    spec
}

/// The user and group database and a few basic configuration files.
fn setup() -> RpmSpec {
    let passwd: String = USERS
        .iter()
        .map(|user| {
            let SystemUser { name, id, comment, home, shell } = user;
            format!("{name}:x:{id}:{id}:{comment}:{home}:{shell}\n")
        })
        .collect();
    // No password for anyone (`!*`: locked, no password ever set) and no dates, so that the file is
    // the same whenever it is built.
    let shadow: String = USERS.iter().map(|user| format!("{}:!*:::::::\n", user.name)).collect();
    let group: String = GROUPS.iter().map(|(name, id)| format!("{name}:x:{id}:\n")).collect();
    let group_shadow: String = GROUPS.iter().map(|(name, _)| format!("{name}:!*::\n")).collect();
    let mut spec = package("setup", "1.0", "noarch", "System users, groups and basic configuration files")
        .config_file("/etc/passwd", passwd, FILE_MODE)
        .config_file("/etc/group", group, FILE_MODE)
        .config_file("/etc/shadow", shadow, SHADOW_MODE)
        .config_file("/etc/gshadow", group_shadow, SHADOW_MODE)
        .config_file("/etc/shells", "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n", FILE_MODE)
        .config_file("/etc/hosts", "127.0.0.1   localhost\n::1         localhost\n", FILE_MODE)
        .config_file(
            "/etc/nsswitch.conf",
            "passwd: files\nshadow: files\ngroup: files\nhosts: files dns\n",
            FILE_MODE,
        )
        .directory("/etc/profile.d", DIRECTORY_MODE);
    for user in &USERS {
        spec = spec.provides(&format!("user({})", user.name));
    }
    for (name, _) in GROUPS {
        spec = spec.provides(&format!("group({name})"));
    }
    spec
}

fn bash(host: &HostFiles) -> RpmSpec {
    let spec = package("bash", "1.0", ARCH, "The GNU Bourne Again shell, copied from the build host")
        .license("GPL-3.0-or-later AND LGPL-2.1-or-later AND MIT")
        .requires("filesystem")
        .provides("/bin/sh")
        .provides("/usr/bin/sh")
        .provides("/bin/bash")
        .symlink("/usr/bin/sh", "bash");
    host.add_to(spec)
}

/// `install-info` stand-in, run after the whole transaction: adds coreutils to the info directory
/// (creating it) unless it is listed already. POSIX shell builtins only, as `/bin/sh` runs it.
const COREUTILS_POST_TRANSACTION: &str = r##"# exampleos stand-in for install-info: list coreutils in the info directory.
directory=/usr/share/info/dir
entry='* Coreutils: (coreutils).       Core file, shell and text utilities.'
if [ ! -e "$directory" ]; then
    printf 'This is the info directory of exampleos.\n\n* Menu:\n\n' > "$directory"
fi
while IFS= read -r line; do
    if [ "$line" = "$entry" ]; then
        exit 0
    fi
done < "$directory"
echo "$entry" >> "$directory"
"##;

fn coreutils(host: &HostFiles) -> RpmSpec {
    let spec = package("coreutils", "1.0", ARCH, "Core utilities (and sed), copied from the build host")
        .license("GPL-3.0-or-later AND LGPL-2.1-or-later AND BSD-3-Clause")
        .requires("bash")
        .requires("filesystem")
        .file(
            "/usr/share/info/coreutils.info",
            "This is coreutils.info: the exampleos stand-in for the GNU coreutils manual.\n",
            FILE_MODE,
        )
        .post_transaction_script(COREUTILS_POST_TRANSACTION);
    host.add_to(spec)
}

/// The systemd units of the `systemd` package: targets the other units order themselves against.
const SYSTEMD_TARGETS: [(&str, &str); 5] = [
    ("basic.target", "[Unit]\nDescription=Basic System\n"),
    (
        "multi-user.target",
        "[Unit]\nDescription=Multi-User System\nRequires=basic.target\nAfter=basic.target\nAllowIsolate=yes\n",
    ),
    ("network.target", "[Unit]\nDescription=Network\n"),
    ("network-online.target", "[Unit]\nDescription=Network is Online\nAfter=network.target\n"),
    ("sockets.target", "[Unit]\nDescription=Sockets\n"),
];

fn systemd() -> RpmSpec {
    let mut spec =
        package("systemd", "1.0", ARCH, "System and service manager: unit directories and targets")
            .requires("bash")
            .requires("coreutils")
            .requires("setup")
            .directory("/etc/systemd", DIRECTORY_MODE)
            .directory("/etc/systemd/system", DIRECTORY_MODE)
            .directory("/usr/lib/systemd", DIRECTORY_MODE)
            .directory("/usr/lib/systemd/system", DIRECTORY_MODE)
            .directory("/usr/lib/systemd/system-preset", DIRECTORY_MODE)
            .directory("/usr/lib/sysctl.d", DIRECTORY_MODE)
            .directory("/usr/lib/sysusers.d", DIRECTORY_MODE)
            .directory("/usr/lib/tmpfiles.d", DIRECTORY_MODE);
    for (name, content) in SYSTEMD_TARGETS {
        spec = spec.file(&format!("/usr/lib/systemd/system/{name}"), content, FILE_MODE);
    }
    spec
}

fn exampleos_release(version: &str) -> RpmSpec {
    let os_release = format!(
        "NAME=\"exampleos\"\nVERSION=\"{version}\"\nID=exampleos\nVERSION_ID=1\n\
         PRETTY_NAME=\"exampleos {version}\"\nHOME_URL=\"https://example.org/exampleos\"\n"
    );
    package("exampleos-release", version, "noarch", "exampleos release files")
        .provides("system-release")
        .provides("system-release(1)")
        .file("/usr/lib/os-release", os_release, FILE_MODE)
        .file("/usr/lib/exampleos-release", format!("exampleos release {version}\n"), FILE_MODE)
        .symlink("/etc/os-release", "../usr/lib/os-release")
        .symlink("/etc/exampleos-release", "../usr/lib/exampleos-release")
        .symlink("/etc/system-release", "exampleos-release")
}

fn sudo() -> RpmSpec {
    let sudoers = "## exampleos sudoers: members of wheel may run anything.\n\
                   root    ALL=(ALL)       ALL\n\
                   %wheel  ALL=(ALL)       ALL\n\
                   #includedir /etc/sudoers.d\n";
    package("sudo", "1.0", ARCH, "Execute commands as root: configuration")
        .requires("setup")
        .requires("bash")
        .config_file("/etc/sudoers", sudoers, SUDOERS_MODE)
        .directory("/etc/sudoers.d", GROUP_DIRECTORY_MODE)
}

fn kernel() -> RpmSpec {
    let modules = format!("/usr/lib/modules/{KERNEL_VERSION}");
    package("kernel", "1.0", ARCH, "The exampleos kernel (a placeholder image)")
        .license("GPL-2.0-only")
        .requires("coreutils")
        .provides(&format!("kernel-uname-r = {KERNEL_VERSION}"))
        .directory(&modules, DIRECTORY_MODE)
        .file(
            &format!("{modules}/vmlinuz"),
            format!("exampleos stand-in kernel image {KERNEL_VERSION}: not bootable\n"),
            EXECUTABLE_MODE,
        )
        .file(&format!("{modules}/modules.dep"), "", FILE_MODE)
        .file(
            &format!("{modules}/config"),
            "# exampleos stand-in kernel configuration\nCONFIG_EXAMPLEOS=y\n",
            FILE_MODE,
        )
}

/// The exampleos dracut: accepts rpm-ostree's (and arbor's) command line and writes a small text
/// file that depends only on the arguments and the configuration files present.
const DRACUT_SCRIPT: &str = r##"#!/usr/bin/bash
# dracut for exampleos: a STAND-IN, not the real initramfs generator.
#
# exampleos, the demo OS of arbor, has no kernel modules or early-boot programs to pack, so this
# script accepts the command line that rpm-ostree and arbor run,
#   dracut --no-hostonly --kver KVER --reproducible -v --add ostree -f /usr/lib/modules/KVER/initramfs.img
# checks it as dracut would, and writes a small text file in place of the cpio image. The file
# depends only on the arguments and the names of the configuration files: no timestamps, no host
# data, so the same tree always gives the same "initramfs".
set -euo pipefail
LC_ALL=C

arguments=("$@")
kernel_version=""
image=""
force=no
hostonly=yes
reproducible=no
verbose=no
modules=()
positional=()

fail() {
    echo "dracut: $*" >&2
    exit 1
}

while (($# > 0)); do
    case "$1" in
        --kver)
            (($# >= 2)) || fail "--kver needs a kernel version"
            kernel_version=$2
            shift
            ;;
        --kver=*) kernel_version=${1#--kver=} ;;
        -a | --add)
            (($# >= 2)) || fail "$1 needs a list of modules"
            read -r -a added <<< "$2"
            modules+=("${added[@]}")
            shift
            ;;
        --add=*)
            read -r -a added <<< "${1#--add=}"
            modules+=("${added[@]}")
            ;;
        -f | --force) force=yes ;;
        -H | --hostonly) hostonly=yes ;;
        -N | --no-hostonly) hostonly=no ;;
        --reproducible) reproducible=yes ;;
        --no-reproducible) reproducible=no ;;
        -v | --verbose) verbose=yes ;;
        -q | --quiet) verbose=no ;;
        --)
            shift
            positional+=("$@")
            break
            ;;
        -*) fail "option $1 is not supported by the exampleos stand-in" ;;
        *) positional+=("$1") ;;
    esac
    shift
done

# dracut [OPTION...] [IMAGE [KERNEL-VERSION]]
(( ${#positional[@]} <= 2 )) || fail "too many arguments: ${positional[*]}"
if (( ${#positional[@]} >= 1 )); then image=${positional[0]}; fi
if (( ${#positional[@]} == 2 )); then kernel_version=${positional[1]}; fi
[[ -n $kernel_version ]] || fail "no kernel version: give --kver (this stand-in does not guess)"
modules_directory=/usr/lib/modules/$kernel_version
[[ -d $modules_directory ]] || fail "cannot find module directory $modules_directory/"
[[ -n $image ]] || image=/boot/initramfs-$kernel_version.img
if [[ -e $image && $force != yes ]]; then
    fail "will not override existing initramfs ($image) without --force"
fi

configuration=()
for file in /etc/dracut.conf /etc/dracut.conf.d/*.conf /usr/lib/dracut/dracut.conf.d/*.conf; do
    if [[ -f $file ]]; then configuration+=("$file"); fi
done

if [[ $verbose == yes ]]; then
    echo "dracut: exampleos stand-in: creating $image for kernel $kernel_version" >&2
fi
# A new file, never one shared with another path; dracut makes its images private.
rm -f -- "$image"
umask 077
{
    echo "exampleos stand-in initramfs: a text file, not a cpio archive"
    echo "kernel-version: $kernel_version"
    echo "kernel-image: $modules_directory/vmlinuz"
    echo "hostonly: $hostonly"
    echo "reproducible: $reproducible"
    echo "modules: ${modules[*]}"
    echo "configuration-files: ${configuration[*]}"
    printf 'arguments:'
    printf ' %q' "${arguments[@]}"
    printf '\n'
} > "$image"
if [[ $verbose == yes ]]; then
    echo "dracut: exampleos stand-in: $image done" >&2
fi
"##;

fn dracut() -> RpmSpec {
    package("dracut", "1.0", ARCH, "Initramfs generator (the exampleos stand-in script)")
        .requires("bash")
        .requires("coreutils")
        .requires("systemd")
        .file("/usr/bin/dracut", DRACUT_SCRIPT, EXECUTABLE_MODE)
        .config_file(
            "/etc/dracut.conf",
            "# dracut configuration: see /usr/lib/dracut/dracut.conf.d\n",
            FILE_MODE,
        )
        .directory("/etc/dracut.conf.d", DIRECTORY_MODE)
        .directory("/usr/lib/dracut", DIRECTORY_MODE)
        .directory("/usr/lib/dracut/dracut.conf.d", DIRECTORY_MODE)
        .directory("/usr/lib/dracut/modules.d", DIRECTORY_MODE)
}

/// openssh-server's `%post`: writes a drop-in (created, then extended by one line). POSIX shell
/// builtins only.
const OPENSSH_SERVER_POST_INSTALL: &str = r##"# exampleos: no password logins for root, written at install time.
drop_in=/etc/ssh/sshd_config.d/50-exampleos.conf
echo "# Written by the %post scriptlet of openssh-server (exampleos)." > "$drop_in"
echo "PermitRootLogin prohibit-password" >> "$drop_in"
"##;

fn openssh_server() -> RpmSpec {
    let sshd_config = "# exampleos sshd configuration: the drop-ins come first, the first value wins.\n\
                       Include /etc/ssh/sshd_config.d/*.conf\n\
                       AuthorizedKeysFile .ssh/authorized_keys\n\
                       Subsystem sftp internal-sftp\n";
    let unit = service_unit("OpenSSH server daemon", "network.target", "/usr/sbin/sshd -D", "");
    package("openssh-server", "1.0", ARCH, "The OpenSSH server: unit, configuration and a stand-in daemon")
        .requires("systemd")
        .requires("setup")
        .requires("bash")
        .directory("/etc/ssh", DIRECTORY_MODE)
        .config_file("/etc/ssh/sshd_config", sshd_config, PRIVATE_FILE_MODE)
        .directory("/etc/ssh/sshd_config.d", PRIVATE_DIRECTORY_MODE)
        .directory("/usr/share/empty.sshd", PRIVILEGE_SEPARATION_DIRECTORY_MODE)
        .file("/usr/lib/systemd/system/sshd.service", unit, FILE_MODE)
        .file("/usr/sbin/sshd", stand_in_daemon("sshd"), EXECUTABLE_MODE)
        .post_install_script(OPENSSH_SERVER_POST_INSTALL)
}

fn network_manager() -> RpmSpec {
    let unit = service_unit(
        "Network Manager",
        "network-online.target",
        "/usr/sbin/NetworkManager --no-daemon",
        "Alias=dbus-org.freedesktop.NetworkManager.service\nAlso=NetworkManager-dispatcher.service\n",
    );
    let dispatcher = "[Unit]\nDescription=Network Manager Script Dispatcher Service\n\n\
                      [Service]\nExecStart=/usr/libexec/nm-dispatcher\n\n\
                      [Install]\nAlias=dbus-org.freedesktop.nm-dispatcher.service\n";
    let wait_online = "[Unit]\nDescription=Network Manager Wait Online\nRequires=NetworkManager.service\n\
                       After=NetworkManager.service\nBefore=network-online.target\n\n\
                       [Service]\nType=oneshot\nExecStart=/usr/bin/true\n\n\
                       [Install]\nWantedBy=network-online.target\n";
    let configuration = "# exampleos NetworkManager configuration.\n[main]\nplugins=keyfile\n";
    package("NetworkManager", "1.0", ARCH, "Network connection manager: units, configuration, stand-ins")
        .epoch(1)
        .license("GPL-2.0-or-later")
        .requires("systemd")
        .requires("bash")
        .directory("/etc/NetworkManager", DIRECTORY_MODE)
        .config_file("/etc/NetworkManager/NetworkManager.conf", configuration, FILE_MODE)
        .directory("/etc/NetworkManager/system-connections", PRIVATE_DIRECTORY_MODE)
        .file("/usr/lib/systemd/system/NetworkManager.service", unit, FILE_MODE)
        .file("/usr/lib/systemd/system/NetworkManager-dispatcher.service", dispatcher, FILE_MODE)
        .file("/usr/lib/systemd/system/NetworkManager-wait-online.service", wait_online, FILE_MODE)
        .file("/usr/sbin/NetworkManager", stand_in_daemon("NetworkManager"), EXECUTABLE_MODE)
        .file("/usr/libexec/nm-dispatcher", stand_in_daemon("nm-dispatcher"), EXECUTABLE_MODE)
}

fn chrony() -> RpmSpec {
    let unit = service_unit("NTP client/server", "network.target", "/usr/sbin/chronyd -n", "");
    let configuration = "# exampleos chrony configuration.\npool pool.ntp.org iburst\n\
                         driftfile /var/lib/chrony/drift\nmakestep 1.0 3\nrtcsync\n\
                         keyfile /etc/chrony.keys\n";
    package("chrony", "1.0", ARCH, "NTP client and server: unit, configuration, state directory")
        .license("GPL-2.0-only")
        .requires("systemd")
        .requires("bash")
        // The files below belong to the chrony user and group, which setup defines.
        .requires_pre_install("setup")
        .config_file("/etc/chrony.conf", configuration, FILE_MODE)
        .file_owned(
            "/etc/chrony.keys",
            "# Keys for NTP authentication (none).\n",
            GROUP_FILE_MODE,
            "root",
            "chrony",
        )
        .directory_owned("/var/lib/chrony", GROUP_DIRECTORY_MODE, "chrony", "chrony")
        .file("/usr/lib/systemd/system/chronyd.service", unit, FILE_MODE)
        .file("/usr/sbin/chronyd", stand_in_daemon("chronyd"), EXECUTABLE_MODE)
}

fn podman() -> RpmSpec {
    let service = "[Unit]\nDescription=Podman API Service\nRequires=podman.socket\nAfter=podman.socket\n\n\
                   [Service]\nType=exec\nExecStart=/usr/bin/podman system service\n\n\
                   [Install]\nWantedBy=default.target\n";
    let socket = "[Unit]\nDescription=Podman API Socket\n\n[Socket]\nListenStream=%t/podman/podman.sock\n\
                  SocketMode=0660\n\n[Install]\nWantedBy=sockets.target\n";
    package("podman", "1.0", ARCH, "Container engine: API units (not enabled)")
        .license("Apache-2.0")
        .requires("systemd")
        .requires("(crun or runc)")
        .file("/usr/lib/systemd/system/podman.service", service, FILE_MODE)
        .file("/usr/lib/systemd/system/podman.socket", socket, FILE_MODE)
}

fn exampleos_debug_tools() -> RpmSpec {
    let script = "#!/usr/bin/bash\n\
                  # exampleos-debug-info: what this exampleos tree is made of.\n\
                  set -euo pipefail\n\
                  cat /usr/lib/os-release\n\
                  echo \"kernels: $(ls /usr/lib/modules)\"\n\
                  if [[ -e /usr/share/exampleos/build-info ]]; then cat /usr/share/exampleos/build-info; fi\n";
    package("exampleos-debug-tools", "1.0", "noarch", "Debugging helpers for non-production exampleos")
        .requires("bash")
        .requires("coreutils")
        .requires("jq")
        .file("/usr/bin/exampleos-debug-info", script, EXECUTABLE_MODE)
}

/// The EFI directory of exampleos' boot loaders (moved to /usr/lib/ostree-boot by the compose).
const EFI_VENDOR_DIRECTORY: &str = "/boot/efi/EFI/exampleos";

fn grub2_efi_x64() -> RpmSpec {
    package("grub2-efi-x64", "1.0", ARCH, "GRUB for x86_64 EFI (a placeholder image)")
        .license("GPL-3.0-or-later")
        .directory("/boot/efi", PRIVATE_DIRECTORY_MODE)
        .directory("/boot/efi/EFI", PRIVATE_DIRECTORY_MODE)
        .directory(EFI_VENDOR_DIRECTORY, PRIVATE_DIRECTORY_MODE)
        .file(
            &format!("{EFI_VENDOR_DIRECTORY}/grubx64.efi"),
            "exampleos stand-in for grubx64.efi: not an EFI program\n",
            EFI_FILE_MODE,
        )
}

fn shim_x64() -> RpmSpec {
    package("shim-x64", "1.0", ARCH, "First-stage EFI boot loader for x86_64 (a placeholder image)")
        .license("BSD-2-Clause")
        .directory("/boot/efi", PRIVATE_DIRECTORY_MODE)
        .directory("/boot/efi/EFI", PRIVATE_DIRECTORY_MODE)
        .directory("/boot/efi/EFI/BOOT", PRIVATE_DIRECTORY_MODE)
        .directory(EFI_VENDOR_DIRECTORY, PRIVATE_DIRECTORY_MODE)
        .file(
            &format!("{EFI_VENDOR_DIRECTORY}/shimx64.efi"),
            "exampleos stand-in for shimx64.efi: not an EFI program\n",
            EFI_FILE_MODE,
        )
        .file(
            "/boot/efi/EFI/BOOT/BOOTX64.EFI",
            "exampleos stand-in for BOOTX64.EFI: not an EFI program\n",
            EFI_FILE_MODE,
        )
}

/// Every package of the repository.
fn packages() -> anyhow::Result<Vec<RpmSpec>> {
    let bash_files = HostFiles::resolve(BASH_EXECUTABLES).context("collecting the host files of bash")?;
    let coreutils_files =
        HostFiles::resolve(COREUTILS_EXECUTABLES).context("collecting the host files of coreutils")?;
    Ok(vec![
        filesystem(&[&bash_files, &coreutils_files]),
        setup(),
        bash(&bash_files),
        coreutils(&coreutils_files),
        systemd(),
        exampleos_release("1.0"),
        exampleos_release("1.1"),
        sudo(),
        kernel(),
        dracut(),
        openssh_server(),
        network_manager(),
        chrony(),
        podman(),
        package("crun", "1.0", ARCH, "OCI container runtime").license("GPL-2.0-or-later"),
        package("curl", "1.0", ARCH, "Command-line URL transfer tool").requires("libcurl.so.4()(64bit)"),
        package("libcurl", "1.0", ARCH, "URL transfer library").provides("libcurl.so.4()(64bit)"),
        package("jq", "1.0", ARCH, "Command-line JSON processor").requires("libjq.so.1()(64bit)"),
        package("libjq", "1.0", ARCH, "JSON processing library").provides("libjq.so.1()(64bit)"),
        package("less", "1.0", ARCH, "A text pager").license("GPL-3.0-or-later").requires("bash"),
        package("vim-minimal", "1.0", ARCH, "A minimal vi editor: configuration")
            .license("Vim")
            .requires("bash")
            .config_file(
                "/etc/virc",
                "\" exampleos vi configuration\nset nocompatible\nset backspace=indent,eol,start\n",
                FILE_MODE,
            ),
        grub2_efi_x64(),
        shim_x64(),
        exampleos_debug_tools(),
    ])
}

fn main() -> anyhow::Result<()> {
    let directory = std::env::args().nth(1).map_or_else(|| PathBuf::from(DEFAULT_DIRECTORY), PathBuf::from);
    let packages = packages()?;
    if directory.exists() {
        std::fs::remove_dir_all(&directory).with_context(|| format!("clearing {}", directory.display()))?;
    }
    std::fs::create_dir_all(&directory).with_context(|| format!("creating {}", directory.display()))?;
    let mut repository = TestRepository::at(&directory)?;
    for package in &packages {
        repository.add_package(package).with_context(|| format!("building {}", package.nevra()))?;
    }
    repository.write_metadata().context("writing repository metadata")?;
    println!("exampleos repository: {} packages in {}", packages.len(), directory.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, evra)` of every package of an rpm-ostree JSON lockfile, read line by line (this
    /// crate has no JSON parser; the lockfile is written one key per line).
    fn locked_packages(lockfile: &str) -> Vec<(String, String)> {
        let mut locked = Vec::new();
        let mut name = None;
        for line in lockfile.lines().map(str::trim) {
            if let Some(key) = line.strip_suffix(": {") {
                name = Some(key.trim_matches('"').to_string());
            } else if let Some(value) = line.strip_prefix("\"evra\": ")
                && let Some(name) = name.take()
            {
                locked.push((name, value.trim_end_matches(',').trim_matches('"').to_string()));
            }
        }
        locked
    }

    #[test]
    fn every_locked_package_is_built_at_its_locked_version() {
        let lockfile_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/manifest-lock.x86_64.json");
        let lockfile = std::fs::read_to_string(lockfile_path).unwrap();
        let locked = locked_packages(&lockfile);
        assert_eq!(locked.len(), 18, "{locked:?}");
        let built: Vec<(String, String)> = packages()
            .unwrap()
            .iter()
            .map(|spec| (spec.name().to_string(), format!("{}.{}", spec.evr(), spec.architecture())))
            .collect();
        for package in &locked {
            assert!(built.contains(package), "{package:?} is locked but not built: {built:?}");
        }
        // The fast-track of manifest-lock.overrides.yaml.
        assert!(built.contains(&("exampleos-release".to_string(), "1.1-1.noarch".to_string())));
    }
}

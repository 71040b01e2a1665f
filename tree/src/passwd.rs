//! passwd and group files of a tree: parsed and formatted without losing comments, looked up across
//! `/etc` and `/usr/lib` (nss-altfiles), and split between the two the way rpm-ostree does.
//!
//! rpm-ostree's split (`migrate_passwd_except_root` / `migrate_group_except_root`), which
//! [`migrate_to_usr_lib`] follows:
//! - users with user id 0 stay in `/etc/passwd`; every other user moves to `/usr/lib/passwd`;
//! - groups with group id 0 stay in `/etc/group`; every other group moves to `/usr/lib/group`; a group
//!   named in `etc-group-members` is written to **both** files, so a system administrator can add members
//!   in `/etc` while systems upgraded from before the split keep seeing it;
//! - `/etc/shadow` and `/etc/gshadow` are left as they are, with every entry: nss-altfiles serves no
//!   shadow database, so the entries of the users moved to `/usr/lib` must stay in `/etc/shadow`
//!   (their accounts are locked there, `!` or `*`); rpm-ostree does the same;
//! - the backup and lock files of shadow-utils (`passwd-`, `group-`, `shadow-`, `gshadow-`, `subuid-`,
//!   `subgid-`, `.pwd.lock`) are deleted from `/etc`.
//!
//! Comments, blank lines and NIS compatibility lines (`+…`, `-…`) stay where they are, in file order.
//! Files are replaced by writing a new file and renaming it over the old one: the tree's files may be
//! hardlinks to objects of an ostree repository and must never change in place.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::replace::replace_file;

/// Fields of a passwd line: name, password, user id, group id, GECOS, home, shell.
const PASSWD_FIELD_COUNT: usize = 7;
/// Fields of a group line: name, password, group id, members.
const GROUP_FIELD_COUNT: usize = 4;
/// Mode of passwd, group and nsswitch.conf: world-readable, as shadow-utils and glibc install them.
const PUBLIC_FILE_MODE: u32 = 0o644;
/// The user and group id that stays in `/etc` (root).
const SUPERUSER_ID: u32 = 0;

/// Backup and lock files that shadow-utils leaves next to the databases; rpm-ostree deletes them.
const BACKUP_AND_LOCK_FILES: &[&str] =
    &["passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-", ".pwd.lock"];

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{}:{line}: {message}", file.display())]
    Parse { file: PathBuf, line: usize, message: String },
    #[error("{operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PasswdError + 'a {
    move |source| PasswdError::Io { operation, path: path.to_path_buf(), source }
}

/// One user of a passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub password: String,
    pub user_id: u32,
    pub group_id: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// One group of a group file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub password: String,
    pub group_id: u32,
    /// Member user names, in file order (empty when the field is empty).
    pub members: Vec<String>,
}

/// One line of a passwd or group file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<T> {
    Entry(T),
    /// A comment, a blank line or a NIS compatibility line, kept exactly as read.
    Verbatim(String),
}

impl fmt::Display for PasswdEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PasswdEntry { name, password, user_id, group_id, gecos, home, shell } = self;
        write!(formatter, "{name}:{password}:{user_id}:{group_id}:{gecos}:{home}:{shell}")
    }
}

impl fmt::Display for GroupEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let GroupEntry { name, password, group_id, members } = self;
        write!(formatter, "{name}:{password}:{group_id}:{}", members.join(","))
    }
}

impl<T: fmt::Display> fmt::Display for Line<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Entry(entry) => entry.fmt(formatter),
            Line::Verbatim(text) => formatter.write_str(text),
        }
    }
}

/// Lines that are not entries: blank, `#` comments, NIS compatibility (`+name`, `-name`, `+`).
fn is_verbatim(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('+') || trimmed.starts_with('-')
}

fn split_fields<'a>(
    line: &'a str,
    expected: usize,
    file: &Path,
    number: usize,
) -> Result<Vec<&'a str>, PasswdError> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() != expected {
        return Err(PasswdError::Parse {
            file: file.to_path_buf(),
            line: number,
            message: format!("expected {expected} colon-separated fields, found {}", fields.len()),
        });
    }
    if fields[0].is_empty() {
        return Err(PasswdError::Parse {
            file: file.to_path_buf(),
            line: number,
            message: "the name is empty".to_string(),
        });
    }
    Ok(fields)
}

fn parse_id(text: &str, what: &str, file: &Path, number: usize) -> Result<u32, PasswdError> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    match text.parse::<u32>() {
        Ok(id) if digits_only => Ok(id),
        _ => Err(PasswdError::Parse {
            file: file.to_path_buf(),
            line: number,
            message: format!("{what} \"{text}\" is not a number from 0 to {}", u32::MAX),
        }),
    }
}

/// The lines of a text file without their line ends; a final line end does not make an extra line.
fn text_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let lines: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.strip_suffix('\n').unwrap_or(text).split('\n').collect()
    };
    lines.into_iter().enumerate().map(|(index, line)| (index + 1, line))
}

/// Parses a passwd file; `file` names it in errors.
pub fn parse_passwd(text: &str, file: &Path) -> Result<Vec<Line<PasswdEntry>>, PasswdError> {
    let mut lines = Vec::new();
    for (number, line) in text_lines(text) {
        if is_verbatim(line) {
            lines.push(Line::Verbatim(line.to_string()));
            continue;
        }
        let fields = split_fields(line, PASSWD_FIELD_COUNT, file, number)?;
        lines.push(Line::Entry(PasswdEntry {
            name: fields[0].to_string(),
            password: fields[1].to_string(),
            user_id: parse_id(fields[2], "user id", file, number)?,
            group_id: parse_id(fields[3], "group id", file, number)?,
            gecos: fields[4].to_string(),
            home: fields[5].to_string(),
            shell: fields[6].to_string(),
        }));
    }
    Ok(lines)
}

/// Parses a group file; `file` names it in errors.
pub fn parse_group(text: &str, file: &Path) -> Result<Vec<Line<GroupEntry>>, PasswdError> {
    let mut lines = Vec::new();
    for (number, line) in text_lines(text) {
        if is_verbatim(line) {
            lines.push(Line::Verbatim(line.to_string()));
            continue;
        }
        let fields = split_fields(line, GROUP_FIELD_COUNT, file, number)?;
        let members = if fields[3].is_empty() {
            Vec::new()
        } else {
            fields[3].split(',').map(str::to_string).collect()
        };
        lines.push(Line::Entry(GroupEntry {
            name: fields[0].to_string(),
            password: fields[1].to_string(),
            group_id: parse_id(fields[2], "group id", file, number)?,
            members,
        }));
    }
    Ok(lines)
}

/// Formats lines of a passwd or group file, each ended by a newline.
pub fn format_lines<T: fmt::Display>(lines: &[Line<T>]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

/// The tree's `/etc`: `ROOT/etc`, or `ROOT/usr/etc` once postprocessing has moved it.
pub fn etc_directory(root: &Path) -> PathBuf {
    let etc = root.join("etc");
    match std::fs::symlink_metadata(&etc) {
        Ok(metadata) if metadata.is_dir() => etc,
        _ => root.join("usr/etc"),
    }
}

/// Reads a file that may be missing (`None`).
fn read_optional(path: &Path) -> Result<Option<String>, PasswdError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("reading", path)(error)),
    }
}

fn read_passwd_file(path: &Path) -> Result<Vec<Line<PasswdEntry>>, PasswdError> {
    match read_optional(path)? {
        Some(text) => parse_passwd(&text, path),
        None => Ok(Vec::new()),
    }
}

fn read_group_file(path: &Path) -> Result<Vec<Line<GroupEntry>>, PasswdError> {
    match read_optional(path)? {
        Some(text) => parse_group(&text, path),
        None => Ok(Vec::new()),
    }
}

fn entries<T>(lines: &[Line<T>]) -> impl Iterator<Item = &T> {
    lines.iter().filter_map(|line| match line {
        Line::Entry(entry) => Some(entry),
        Line::Verbatim(_) => None,
    })
}

/// The users and groups of a tree, from `/etc/{passwd,group}` and then `/usr/lib/{passwd,group}`
/// (nss-altfiles order: the first entry of a name or id wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswdDatabase {
    user_ids: BTreeMap<String, u32>,
    user_names: BTreeMap<u32, String>,
    group_ids: BTreeMap<String, u32>,
    group_names: BTreeMap<u32, String>,
}

impl PasswdDatabase {
    /// Reads the tree at `root` (its `/etc` may already be at `/usr/etc`). Missing files are empty.
    pub fn read(root: &Path) -> Result<PasswdDatabase, PasswdError> {
        let etc = etc_directory(root);
        let usr_lib = root.join("usr/lib");
        let mut database = PasswdDatabase::default();
        for directory in [&etc, &usr_lib] {
            database.add_users(entries(&read_passwd_file(&directory.join("passwd"))?));
            database.add_groups(entries(&read_group_file(&directory.join("group"))?));
        }
        Ok(database)
    }

    /// Adds users; names and ids already known keep their first entry.
    pub fn add_users<'a>(&mut self, users: impl IntoIterator<Item = &'a PasswdEntry>) {
        for user in users {
            self.user_ids.entry(user.name.clone()).or_insert(user.user_id);
            self.user_names.entry(user.user_id).or_insert_with(|| user.name.clone());
        }
    }

    /// Adds groups; names and ids already known keep their first entry.
    pub fn add_groups<'a>(&mut self, groups: impl IntoIterator<Item = &'a GroupEntry>) {
        for group in groups {
            self.group_ids.entry(group.name.clone()).or_insert(group.group_id);
            self.group_names.entry(group.group_id).or_insert_with(|| group.name.clone());
        }
    }

    pub fn user_id(&self, name: &str) -> Option<u32> {
        self.user_ids.get(name).copied()
    }

    pub fn group_id(&self, name: &str) -> Option<u32> {
        self.group_ids.get(name).copied()
    }

    pub fn user_name(&self, user_id: u32) -> Option<&str> {
        self.user_names.get(&user_id).map(String::as_str)
    }

    pub fn group_name(&self, group_id: u32) -> Option<&str> {
        self.group_names.get(&group_id).map(String::as_str)
    }
}

/// What [`migrate_to_usr_lib`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// Users moved to `/usr/lib/passwd`, in file order.
    pub users_moved: Vec<String>,
    /// Groups moved to `/usr/lib/group`, in file order (including those also kept in `/etc`).
    pub groups_moved: Vec<String>,
    /// `etc-group-members` groups kept in `/etc/group` (and copied to `/usr/lib/group`).
    pub groups_kept_in_etc: Vec<String>,
    /// `etc-group-members` names that are not groups of the tree.
    pub unknown_etc_group_members: Vec<String>,
    /// Backup and lock files deleted from `/etc`.
    pub removed_files: Vec<String>,
}

/// Puts `moved` entries into `existing` (the `/usr/lib` file): an entry whose name is already there
/// replaces that line, others are appended, in order.
fn merge_by_name<T: Clone>(existing: &mut Vec<Line<T>>, moved: &[T], name: impl Fn(&T) -> &str) {
    for entry in moved {
        let position =
            existing.iter().position(|line| matches!(line, Line::Entry(old) if name(old) == name(entry)));
        match position {
            Some(index) => existing[index] = Line::Entry(entry.clone()),
            None => existing.push(Line::Entry(entry.clone())),
        }
    }
}

fn write_lines<T: fmt::Display>(path: &Path, lines: &[Line<T>]) -> Result<(), PasswdError> {
    replace_file(path, format_lines(lines).as_bytes(), PUBLIC_FILE_MODE).map_err(io_error("writing", path))
}

/// Splits the tree's passwd and group between `/etc` and `/usr/lib` as rpm-ostree does for
/// nss-altfiles (see the module documentation). `etc_group_members` is the treefile's
/// `etc-group-members`. Works on `ROOT/etc` (or `ROOT/usr/etc` if /etc was already moved).
pub fn migrate_to_usr_lib(root: &Path, etc_group_members: &[String]) -> Result<Migration, PasswdError> {
    let etc = etc_directory(root);
    let usr_lib = root.join("usr/lib");
    crate::umask::create_tree_directories(&usr_lib).map_err(io_error("creating", &usr_lib))?;
    let mut migration = Migration::default();

    let etc_passwd_path = etc.join("passwd");
    if let Some(text) = read_optional(&etc_passwd_path)? {
        let lines = parse_passwd(&text, &etc_passwd_path)?;
        let mut kept = Vec::new();
        let mut moved = Vec::new();
        for line in lines {
            match line {
                Line::Entry(user) if user.user_id != SUPERUSER_ID => moved.push(user),
                other => kept.push(other),
            }
        }
        let usr_lib_passwd_path = usr_lib.join("passwd");
        let mut usr_lib_lines = read_passwd_file(&usr_lib_passwd_path)?;
        merge_by_name(&mut usr_lib_lines, &moved, |user: &PasswdEntry| &user.name);
        write_lines(&usr_lib_passwd_path, &usr_lib_lines)?;
        write_lines(&etc_passwd_path, &kept)?;
        migration.users_moved = moved.into_iter().map(|user| user.name).collect();
    }

    let etc_group_path = etc.join("group");
    if let Some(text) = read_optional(&etc_group_path)? {
        let lines = parse_group(&text, &etc_group_path)?;
        let mut kept = Vec::new();
        let mut moved = Vec::new();
        for line in lines {
            match line {
                Line::Entry(group) if group.group_id != SUPERUSER_ID => {
                    if etc_group_members.contains(&group.name) {
                        migration.groups_kept_in_etc.push(group.name.clone());
                        kept.push(Line::Entry(group.clone()));
                    }
                    moved.push(group);
                }
                other => kept.push(other),
            }
        }
        let known: Vec<&str> = entries(&kept).chain(moved.iter()).map(|group| group.name.as_str()).collect();
        migration.unknown_etc_group_members =
            etc_group_members.iter().filter(|name| !known.contains(&name.as_str())).cloned().collect();
        let usr_lib_group_path = usr_lib.join("group");
        let mut usr_lib_lines = read_group_file(&usr_lib_group_path)?;
        merge_by_name(&mut usr_lib_lines, &moved, |group: &GroupEntry| &group.name);
        write_lines(&usr_lib_group_path, &usr_lib_lines)?;
        write_lines(&etc_group_path, &kept)?;
        migration.groups_moved = moved.into_iter().map(|group| group.name).collect();
    } else {
        migration.unknown_etc_group_members = etc_group_members.to_vec();
    }

    for name in BACKUP_AND_LOCK_FILES {
        let path = etc.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => migration.removed_files.push(format!("/etc/{name}")),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("removing", &path)(error)),
        }
    }
    Ok(migration)
}

/// What [`enable_altfiles`] found in `/etc/nsswitch.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltfilesChange {
    /// `altfiles` was added to the `passwd:` and `group:` lines.
    Added,
    /// Every `passwd:` and `group:` line already has it.
    AlreadyPresent,
    /// nsswitch.conf is a symlink: something else (authselect) owns it; left alone, as rpm-ostree does.
    Symlink,
    /// The tree has no nsswitch.conf.
    Missing,
}

/// Adds the `altfiles` source after `files` (or last) on the `passwd:` and `group:` lines.
pub fn add_altfiles(text: &str) -> String {
    let mut output = String::with_capacity(text.len() + 2 * "altfiles ".len());
    for line in text.split_inclusive('\n') {
        let (content, ending) = match line.strip_suffix('\n') {
            Some(content) => (content, "\n"),
            None => (line, ""),
        };
        let database = ["passwd:", "group:"].into_iter().find(|prefix| content.starts_with(prefix));
        let Some(prefix) = database else {
            output.push_str(line);
            continue;
        };
        let sources: Vec<&str> = content[prefix.len()..].split_whitespace().collect();
        if sources.contains(&"altfiles") {
            output.push_str(line);
            continue;
        }
        let mut new_sources = Vec::with_capacity(sources.len() + 1);
        let mut inserted = false;
        for source in sources {
            new_sources.push(source);
            if source == "files" && !inserted {
                new_sources.push("altfiles");
                inserted = true;
            }
        }
        if !inserted {
            new_sources.push("altfiles");
        }
        output.push_str(prefix);
        output.push(' ');
        output.push_str(&new_sources.join(" "));
        output.push_str(ending);
    }
    output
}

/// Makes glibc read `/usr/lib/{passwd,group}` through nss-altfiles: adds `altfiles` to the tree's
/// nsswitch.conf (replaced by a new file, never changed in place).
pub fn enable_altfiles(root: &Path) -> Result<AltfilesChange, PasswdError> {
    let path = etc_directory(root).join("nsswitch.conf");
    let metadata = match std::fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(AltfilesChange::Missing),
        Err(error) => return Err(io_error("inspecting", &path)(error)),
    };
    if metadata.file_type().is_symlink() {
        return Ok(AltfilesChange::Symlink);
    }
    let text = std::fs::read_to_string(&path).map_err(io_error("reading", &path))?;
    let changed = add_altfiles(&text);
    if changed == text {
        return Ok(AltfilesChange::AlreadyPresent);
    }
    replace_file(&path, changed.as_bytes(), PUBLIC_FILE_MODE).map_err(io_error("writing", &path))?;
    Ok(AltfilesChange::Added)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input text and the parsed lines or the error message.
    type Case<T> = (&'static str, Result<Vec<Line<T>>, &'static str>);

    fn user(name: &str, user_id: u32, group_id: u32) -> PasswdEntry {
        PasswdEntry {
            name: name.to_string(),
            password: "x".to_string(),
            user_id,
            group_id,
            gecos: String::new(),
            home: "/".to_string(),
            shell: "/sbin/nologin".to_string(),
        }
    }

    #[test]
    fn parses_passwd_lines() {
        let file = Path::new("etc/passwd");
        let cases: &[Case<PasswdEntry>] = &[
            ("", Ok(vec![])),
            ("\n", Ok(vec![Line::Verbatim(String::new())])),
            (
                "root:x:0:0:root:/root:/bin/bash\n",
                Ok(vec![Line::Entry(PasswdEntry {
                    name: "root".into(),
                    password: "x".into(),
                    user_id: 0,
                    group_id: 0,
                    gecos: "root".into(),
                    home: "/root".into(),
                    shell: "/bin/bash".into(),
                })]),
            ),
            ("bin:x:1:1::/:/sbin/nologin", Ok(vec![Line::Entry(user("bin", 1, 1))])),
            (
                "# comment\n+nisuser\n-\nbin:x:1:1::/:/sbin/nologin\n",
                Ok(vec![
                    Line::Verbatim("# comment".into()),
                    Line::Verbatim("+nisuser".into()),
                    Line::Verbatim("-".into()),
                    Line::Entry(user("bin", 1, 1)),
                ]),
            ),
            (
                "root:x:0:0:root:/root:/bin/bash\nbroken:x:1\n",
                Err("etc/passwd:2: expected 7 colon-separated fields, found 3"),
            ),
            (
                "a:x:1:1:::\nb:x:-1:1:::",
                Err("etc/passwd:2: user id \"-1\" is not a number from 0 to 4294967295"),
            ),
            ("a:x:+1:1:::", Err("etc/passwd:1: user id \"+1\" is not a number from 0 to 4294967295")),
            (
                "a:x:1:99999999999:::",
                Err("etc/passwd:1: group id \"99999999999\" is not a number from 0 to 4294967295"),
            ),
            (":x:1:1:::", Err("etc/passwd:1: the name is empty")),
            ("a:x:1:1::::extra", Err("etc/passwd:1: expected 7 colon-separated fields, found 8")),
        ];
        for (text, expected) in cases {
            let parsed = parse_passwd(text, file).map_err(|error| error.to_string());
            let expected = expected.clone().map_err(str::to_string);
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn parses_group_lines() {
        let file = Path::new("usr/lib/group");
        let group = |name: &str, group_id: u32, members: &[&str]| GroupEntry {
            name: name.to_string(),
            password: "x".to_string(),
            group_id,
            members: members.iter().map(|member| member.to_string()).collect(),
        };
        let cases: &[Case<GroupEntry>] = &[
            ("wheel:x:10:\n", Ok(vec![Line::Entry(group("wheel", 10, &[]))])),
            ("wheel:x:10:alice,bob\n", Ok(vec![Line::Entry(group("wheel", 10, &["alice", "bob"]))])),
            ("wheel:x:10:alice,\n", Ok(vec![Line::Entry(group("wheel", 10, &["alice", ""]))])),
            ("  # indented comment\n", Ok(vec![Line::Verbatim("  # indented comment".into())])),
            ("wheel:x:10\n", Err("usr/lib/group:1: expected 4 colon-separated fields, found 3")),
            (
                "\n\nwheel:x:ten:\n",
                Err("usr/lib/group:3: group id \"ten\" is not a number from 0 to 4294967295"),
            ),
        ];
        for (text, expected) in cases {
            let parsed = parse_group(text, file).map_err(|error| error.to_string());
            let expected = expected.clone().map_err(str::to_string);
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        let cases = [
            "root:x:0:0:root:/root:/bin/bash\n",
            "# header\n\nroot:x:0:0:root:/root:/bin/bash\n+@netgroup\nbin:x:1:1:bin:/bin:/sbin/nologin\n",
            "nobody:*:65534:65534:Kernel Overflow User:/:/sbin/nologin\n",
        ];
        for text in cases {
            let lines = parse_passwd(text, Path::new("passwd")).unwrap();
            assert_eq!(format_lines(&lines), text);
        }
        let groups = ["root:x:0:\nwheel:x:10:alice,bob\n# end\n", "tty:x:5:\n"];
        for text in groups {
            let lines = parse_group(text, Path::new("group")).unwrap();
            assert_eq!(format_lines(&lines), text);
        }
        let without_final_newline = parse_passwd("bin:x:1:1::/:/sbin/nologin", Path::new("passwd")).unwrap();
        assert_eq!(format_lines(&without_final_newline), "bin:x:1:1::/:/sbin/nologin\n");
    }

    #[test]
    fn inserts_altfiles() {
        let cases = [
            ("passwd:     files systemd\n", "passwd: files altfiles systemd\n"),
            ("group: sss files systemd\n", "group: sss files altfiles systemd\n"),
            ("passwd: sss\n", "passwd: sss altfiles\n"),
            ("passwd: files altfiles\n", "passwd: files altfiles\n"),
            ("shadow:     files\n", "shadow:     files\n"),
            ("# passwd: files\n", "# passwd: files\n"),
            ("hosts: files dns\npasswd: files", "hosts: files dns\npasswd: files altfiles"),
        ];
        for (input, expected) in cases {
            assert_eq!(add_altfiles(input), expected, "{input:?}");
            assert_eq!(add_altfiles(expected), expected, "idempotent for {expected:?}");
        }
    }

    #[test]
    fn database_prefers_etc_and_first_entries() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), "root:x:0:0::/root:/bin/bash\nadmin:x:5:5:::\n")
            .unwrap();
        std::fs::write(
            root.path().join("usr/lib/passwd"),
            "admin:x:6:6:::\ndaemon:x:2:2:::\nalias:x:2:2:::\n",
        )
        .unwrap();
        std::fs::write(root.path().join("usr/lib/group"), "root:x:0:\nwheel:x:10:\n").unwrap();
        let database = PasswdDatabase::read(root.path()).unwrap();
        let lookups = [
            (database.user_id("root"), Some(0)),
            (database.user_id("admin"), Some(5)),
            (database.user_id("daemon"), Some(2)),
            (database.user_id("nobody"), None),
            (database.group_id("wheel"), Some(10)),
            (database.group_id("admin"), None),
        ];
        for (index, (found, expected)) in lookups.into_iter().enumerate() {
            assert_eq!(found, expected, "lookup {index}");
        }
        assert_eq!(database.user_name(2), Some("daemon"));
        assert_eq!(database.user_name(6), Some("admin"));
        assert_eq!(database.group_name(0), Some("root"));
        assert_eq!(database.group_name(11), None);
    }

    #[test]
    fn migration_splits_like_rpm_ostree() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "# users\nroot:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\ntoor:x:0:0::/:/bin/sh\nsshd:x:74:74::/:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(etc.join("group"), "root:x:0:\nbin:x:1:\nwheel:x:10:\nsshd:x:74:\n").unwrap();
        std::fs::write(root.path().join("usr/lib/passwd"), "sshd:x:99:99::/old:/sbin/nologin\n").unwrap();
        std::fs::write(etc.join("shadow"), "root:!::0:99999:7:::\nbin:*::0:99999:7:::\n").unwrap();
        std::fs::write(etc.join("passwd-"), "backup").unwrap();
        let members = vec!["wheel".to_string(), "nosuchgroup".to_string()];

        let migration = migrate_to_usr_lib(root.path(), &members).unwrap();

        let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
        assert_eq!(read("etc/passwd"), "# users\nroot:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/:/bin/sh\n");
        assert_eq!(
            read("usr/lib/passwd"),
            "sshd:x:74:74::/:/sbin/nologin\nbin:x:1:1:bin:/bin:/sbin/nologin\n"
        );
        assert_eq!(read("etc/group"), "root:x:0:\nwheel:x:10:\n");
        assert_eq!(read("usr/lib/group"), "bin:x:1:\nwheel:x:10:\nsshd:x:74:\n");
        assert_eq!(read("etc/shadow"), "root:!::0:99999:7:::\nbin:*::0:99999:7:::\n");
        assert!(!etc.join("passwd-").exists());
        assert_eq!(
            migration,
            Migration {
                users_moved: vec!["bin".into(), "sshd".into()],
                groups_moved: vec!["bin".into(), "wheel".into(), "sshd".into()],
                groups_kept_in_etc: vec!["wheel".into()],
                unknown_etc_group_members: vec!["nosuchgroup".into()],
                removed_files: vec!["/etc/passwd-".into()],
            }
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.path().join("usr/lib/passwd")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, PUBLIC_FILE_MODE);
    }

    #[test]
    fn migration_replaces_files_instead_of_writing_in_place() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let object = root.path().join("object");
        let original = "root:x:0:0::/root:/bin/bash\nbin:x:1:1:::\n";
        std::fs::write(&object, original).unwrap();
        std::fs::hard_link(&object, etc.join("passwd")).unwrap();
        migrate_to_usr_lib(root.path(), &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&object).unwrap(), original);
        assert_eq!(std::fs::read_to_string(etc.join("passwd")).unwrap(), "root:x:0:0::/root:/bin/bash\n");
    }
}

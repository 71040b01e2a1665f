//! Pure parsers and checks for the values of arbor.toml: durations, sizes, names, paths, URLs and
//! image references. Each returns the message that follows the key in the error.

use std::time::Duration;

/// The rpm architectures arbor composes for (`basearch` values of the distributions it targets).
pub const KNOWN_ARCHES: &[&str] = &["x86_64", "aarch64", "ppc64le", "s390x", "riscv64"];
/// Other names people use for those architectures (Debian, Go, uname on other systems).
const ARCH_ALIASES: &[(&str, &str)] = &[
    ("amd64", "x86_64"),
    ("x86-64", "x86_64"),
    ("x64", "x86_64"),
    ("arm64", "aarch64"),
    ("ppc64el", "ppc64le"),
];
/// Stream names become image tags and path components; 64 characters keep tags and paths readable.
const STREAM_NAME_MAXIMUM: usize = 64;

/// A humane duration: an integer and a unit (`ms`, `s`, `m`, `h`, `d`), or several of them (`1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("\"{text}\" is not a duration; write e.g. \"90s\", \"5m\" or \"1h30m\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|character: char| !character.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit = rest.find(|character: char| character.is_ascii_digit()).unwrap_or(rest.len());
        let seconds_per_unit = match rest[..unit].trim() {
            "ms" => {
                total += Duration::from_millis(number);
                rest = &rest[unit..];
                continue;
            }
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 60 * 60,
            "d" => 24 * 60 * 60,
            _ => return Err(invalid()),
        };
        let seconds = number.checked_mul(seconds_per_unit).ok_or_else(invalid)?;
        total = total.checked_add(Duration::from_secs(seconds)).ok_or_else(invalid)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// A size in bytes: an integer with an optional unit, binary (`KiB`, `MiB`, `GiB`, `TiB`) or decimal
/// (`KB`, `MB`, `GB`, `TB`); a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("\"{text}\" is not a size; write e.g. \"20GiB\", \"500MiB\" or \"10GB\"");
    let trimmed = text.trim();
    let digits = trimmed.find(|character: char| !character.is_ascii_digit()).unwrap_or(trimmed.len());
    if digits == 0 {
        return Err(invalid());
    }
    let number: u64 = trimmed[..digits].parse().map_err(|_| invalid())?;
    let multiplier: u64 = match trimmed[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// A stream name: it becomes an image tag, a URL path segment and a directory name.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    let valid_first = name.chars().next().is_some_and(|first| first.is_ascii_alphanumeric());
    let valid_rest = name
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.'));
    if !valid_first || !valid_rest || name.chars().count() > STREAM_NAME_MAXIMUM {
        return Err(format!(
            "\"{name}\" is not a stream name: use letters, digits, \"-\", \"_\" and \".\", starting with a \
             letter or digit, at most {STREAM_NAME_MAXIMUM} characters (it becomes an image tag)"
        ));
    }
    Ok(())
}

/// A git branch name, by the rules of `git check-ref-format --branch`.
pub fn check_branch_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with("refs/") {
        Some("write the branch name without \"refs/heads/\"")
    } else if name.starts_with('-') {
        Some("it starts with \"-\"")
    } else if name.ends_with('/') || name.starts_with('/') || name.contains("//") {
        Some("it has an empty path component")
    } else if name.ends_with('.') || name.ends_with(".lock") {
        Some("it ends with \".\" or \".lock\"")
    } else if name.contains("..") || name.contains("@{") || name == "@" {
        Some("it contains \"..\" or \"@{\"")
    } else if name.split('/').any(|component| component.starts_with('.')) {
        Some("a component starts with \".\"")
    } else if name.chars().any(|character| {
        character.is_ascii_control() || matches!(character, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        Some("it contains a space, a control character or one of ~ ^ : ? * [ \\")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(format!("\"{name}\" is not a valid git branch name: {reason}")),
        None => Ok(()),
    }
}

/// A path inside the git repository: relative, no `..`, no empty components.
pub fn check_repository_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    if path.starts_with('/') {
        return Err(format!("\"{path}\" must be relative to the top of the git repository"));
    }
    if path.split('/').any(|component| component == "..") {
        return Err(format!("\"{path}\" must stay inside the git repository (no \"..\")"));
    }
    if path.contains('\0') || path.split('/').any(str::is_empty) {
        return Err(format!("\"{path}\" has an empty path component"));
    }
    Ok(())
}

/// The rpm architecture `arch`, or what it was probably meant to be.
pub fn check_arch(arch: &str) -> Result<(), String> {
    if KNOWN_ARCHES.contains(&arch) {
        return Ok(());
    }
    let suggestion = ARCH_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(arch))
        .map(|(_, arch)| (*arch).to_string())
        .or_else(|| treefiles::suggest(arch, KNOWN_ARCHES.iter().copied()));
    let hint = match suggestion {
        Some(known) => format!(" (did you mean \"{known}\"?)"),
        None => String::new(),
    };
    Err(format!(
        "\"{arch}\" is not an rpm architecture arbor composes for{hint}; known: {}",
        KNOWN_ARCHES.join(", ")
    ))
}

/// An OCI repository reference with its registry and without tag or digest:
/// `registry.example.com[:port]/path/name`.
pub fn check_image_repository(reference: &str) -> Result<(), String> {
    let invalid = |reason: &str| {
        Err(format!(
            "\"{reference}\" is not an image repository ({reason}); write e.g. \"registry.example.com/os/exampleos\""
        ))
    };
    if reference.contains('@') {
        return invalid("no digest: arbor pushes :<stream> and :<version> tags itself");
    }
    let Some((registry, path)) = reference.split_once('/') else {
        return invalid("it needs a registry host and a path");
    };
    let is_host = registry.contains('.') || registry.contains(':') || registry == "localhost";
    let host_characters = registry.chars().all(|character| {
        character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | ':' | '[' | ']')
    });
    if !is_host || !host_characters {
        return invalid(
            "the first component must be a registry host such as registry.example.com or localhost:5000",
        );
    }
    if path.contains(':') {
        return invalid("no tag: arbor pushes :<stream> and :<version> tags itself");
    }
    let component_valid = |component: &str| {
        !component.is_empty()
            && component
                .starts_with(|character: char| character.is_ascii_lowercase() || character.is_ascii_digit())
            && component
                .ends_with(|character: char| character.is_ascii_lowercase() || character.is_ascii_digit())
            && component.chars().all(|character| {
                character.is_ascii_lowercase()
                    || character.is_ascii_digit()
                    || matches!(character, '.' | '_' | '-')
            })
    };
    if !path.split('/').all(component_valid) {
        return invalid("path components are lowercase letters, digits and . _ -, not at either end");
    }
    Ok(())
}

/// How arbor reaches a git remote, from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    File,
    /// Plain `http://`; `loopback` when the host is 127.0.0.1, ::1 or localhost (tests, local proxies).
    Http {
        loopback: bool,
    },
    Https,
    /// `ssh://` or the scp-like `user@host:path`.
    Ssh,
}

/// What is wrong with a git URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    /// The URL carries a password or token.
    Credentials,
    Invalid(String),
}

/// Classifies a git remote URL and rejects credentials in it.
pub fn classify_git_url(url: &str) -> Result<RemoteKind, UrlProblem> {
    let invalid = |reason: &str| {
        UrlProblem::Invalid(format!(
            "\"{url}\" is not a git remote URL arbor can fetch ({reason}); use file://, https://, ssh:// \
             or user@host:path"
        ))
    };
    if url.starts_with('-') || url.chars().any(|character| character.is_ascii_control() || character == ' ') {
        return Err(invalid("it starts with \"-\" or contains spaces or control characters"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        // scp-like syntax: [user@]host:path, where host has no slash before the colon.
        return match url.split_once(':') {
            Some((host, path)) if !host.contains('/') && !host.is_empty() && !path.is_empty() => {
                Ok(RemoteKind::Ssh)
            }
            _ => Err(invalid("no scheme")),
        };
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    match scheme {
        "file" => {
            if !authority.is_empty() && authority != "localhost" {
                return Err(invalid("file:// URLs have no host: write file:///path/to/repository.git"));
            }
            Ok(RemoteKind::File)
        }
        "http" | "https" => {
            if userinfo.is_some() {
                return Err(UrlProblem::Credentials);
            }
            if host.is_empty() {
                return Err(invalid("no host"));
            }
            if scheme == "https" {
                return Ok(RemoteKind::Https);
            }
            let hostname = host.rsplit_once(':').map_or(host, |(name, _)| name);
            let loopback = matches!(hostname, "localhost" | "[::1]") || hostname.starts_with("127.");
            Ok(RemoteKind::Http { loopback })
        }
        "ssh" => {
            if userinfo.is_some_and(|userinfo| userinfo.contains(':')) {
                return Err(UrlProblem::Credentials);
            }
            if host.is_empty() {
                return Err(invalid("no host"));
            }
            Ok(RemoteKind::Ssh)
        }
        other => Err(invalid(&format!("unsupported scheme \"{other}\""))),
    }
}

/// The database URL's kind; `Err(None)` when it carries a password, `Err(Some(message))` otherwise.
pub fn check_database_url(url: &str) -> Result<(), Option<String>> {
    if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let has_password = authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'));
        let query = rest.split_once('?').map_or("", |(_, query)| query);
        if has_password || query.split('&').any(|parameter| parameter.starts_with("password=")) {
            return Err(None);
        }
        return Ok(());
    }
    if url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .is_some_and(|path| !path.is_empty())
    {
        return Ok(());
    }
    Err(Some(format!(
        "\"{url}\" is not a database URL: use sqlite:///path/to/arbor.db or postgres://user@host/database"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("60s", Some(60_000)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("250ms", Some(250)),
            ("2d", Some(172_800_000)),
            ("1m 30s", Some(90_000)),
            ("60", None),
            ("", None),
            ("s", None),
            ("5 minutes", None),
            ("-5s", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_duration(text).ok().map(|duration| duration.as_millis());
            assert_eq!(parsed, expected, "{text}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("20GiB", Some(20 << 30)),
            ("500 MiB", Some(500 << 20)),
            ("10GB", Some(10_000_000_000)),
            ("4096", Some(4096)),
            ("1.5GiB", None),
            ("GiB", None),
            ("20gib", None),
            ("99999999999999TiB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn names_and_paths() {
        for valid in ["testing-devel", "stable", "f42.next", "rhel_10"] {
            assert_eq!(check_stream_name(valid), Ok(()), "{valid}");
        }
        for invalid in ["", "-x", "has space", "a/b", "é", &"x".repeat(65)] {
            assert!(check_stream_name(invalid).is_err(), "{invalid}");
        }
        for valid in ["main", "testing-devel", "release/42", "user.name"] {
            assert_eq!(check_branch_name(valid), Ok(()), "{valid}");
        }
        for invalid in ["", "refs/heads/main", "-x", "a..b", "a/", "x.lock", "a b", "a:b", ".hidden", "a@{1}"]
        {
            assert!(check_branch_name(invalid).is_err(), "{invalid}");
        }
        for valid in ["manifest.yaml", "os/manifest.yaml", "./manifest.yaml"] {
            assert_eq!(check_repository_path(valid), Ok(()), "{valid}");
        }
        for invalid in ["", "/etc/manifest.yaml", "../manifest.yaml", "os/../../x", "os//x"] {
            assert!(check_repository_path(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn arches_suggest_the_rpm_name() {
        assert_eq!(check_arch("x86_64"), Ok(()));
        let cases = [("amd64", "x86_64"), ("arm64", "aarch64"), ("x86-64", "x86_64"), ("aarch46", "aarch64")];
        for (arch, suggestion) in cases {
            let message = check_arch(arch).unwrap_err();
            assert!(message.contains(&format!("(did you mean \"{suggestion}\"?)")), "{arch}: {message}");
        }
        assert!(!check_arch("sparc").unwrap_err().contains("did you mean"));
    }

    #[test]
    fn image_repositories() {
        for valid in ["registry.example.com/os/exampleos", "localhost:5000/exampleos", "quay.io/a/b-c_d.e"] {
            assert_eq!(check_image_repository(valid), Ok(()), "{valid}");
        }
        for invalid in [
            "exampleos",
            "os/exampleos",
            "registry.example.com/os/exampleos:latest",
            "registry.example.com/os/exampleos@sha256:abcd",
            "registry.example.com/OS/exampleos",
            "registry.example.com/os/",
            "registry.example.com/os/-x",
        ] {
            assert!(check_image_repository(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn git_urls() {
        let cases: [(&str, Result<RemoteKind, ()>); 12] = [
            ("file:///srv/git/os.git", Ok(RemoteKind::File)),
            ("https://git.example.com/os/config.git", Ok(RemoteKind::Https)),
            ("http://127.0.0.1:8080/os.git", Ok(RemoteKind::Http { loopback: true })),
            ("http://git.example.com/os.git", Ok(RemoteKind::Http { loopback: false })),
            ("ssh://git@git.example.com:2222/os/config.git", Ok(RemoteKind::Ssh)),
            ("git@git.example.com:os/config.git", Ok(RemoteKind::Ssh)),
            ("https://user:token@git.example.com/os.git", Err(())),
            ("https://token@git.example.com/os.git", Err(())),
            ("ssh://git:password@git.example.com/os.git", Err(())),
            ("ftp://git.example.com/os.git", Err(())),
            ("/srv/git/os.git", Err(())),
            ("file://host/srv/os.git", Err(())),
        ];
        for (url, expected) in cases {
            assert_eq!(classify_git_url(url).map_err(|_| ()), expected, "{url}");
        }
        assert_eq!(classify_git_url("https://a:b@example.com/x"), Err(UrlProblem::Credentials));
    }

    #[test]
    fn database_urls() {
        assert_eq!(check_database_url("sqlite:///var/lib/arbor/arbor.db"), Ok(()));
        assert_eq!(check_database_url("postgres://arbor@db.example.com/arbor"), Ok(()));
        assert_eq!(check_database_url("postgres://arbor:secret@db.example.com/arbor"), Err(None));
        assert_eq!(check_database_url("postgresql://db/arbor?user=a&password=b"), Err(None));
        assert!(matches!(check_database_url("mysql://db/arbor"), Err(Some(_))));
    }
}

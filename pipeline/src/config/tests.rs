//! Tests of arbor.toml: defaults, the example configuration, and one snapshot of every class of error.

use super::*;
use std::fmt::Write;

const MINIMAL: &str = r#"
[git]
url = "https://git.example.com/os/config.git"

[[streams]]
name = "testing-devel"
arches = ["x86_64"]
image = "registry.example.com/os/exampleos"
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/arbor/arbor.toml"))
}

#[test]
fn a_minimal_configuration_gets_the_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.state_dir, Path::new("/var/lib/arbor"));
    assert_eq!(config.server.database.url, "sqlite:///var/lib/arbor/arbor.db");
    assert_eq!(config.server.database.password, None);
    assert_eq!((config.server.workers, config.server.public_read), (1, false));
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.worker.lease_duration, Duration::from_secs(60));
    assert_eq!(config.worker.heartbeat_interval, Duration::from_secs(15));
    assert_eq!(config.cache.directory, Path::new("/var/lib/arbor/cache"));
    assert_eq!(config.cache.max_size, 20 << 30);
    assert_eq!(config.git.poll_interval, Duration::from_secs(60));
    assert_eq!(config.git.fetch_timeout, crate::git::DEFAULT_FETCH_TIMEOUT);
    assert_eq!(config.git.credentials, GitCredentialSettings::None);
    assert_eq!(config.git.remote_kind, RemoteKind::Https);
    assert_eq!(config.git.webhook_secret, None);
    assert_eq!(config.registry, RegistrySettings { authfile: None, tls_verify: true });
    let stream = config.stream("testing-devel").unwrap();
    assert_eq!((stream.branch.as_str(), stream.treefile.as_str()), ("testing-devel", "manifest.yaml"));
    assert_eq!((stream.priority, stream.variables.len()), (0, 0));
}

#[test]
fn relative_paths_are_relative_to_the_configuration_file() {
    let text = r#"
[server]
state-dir = "state"
[git]
url = "ssh://git@git.example.com/os/config.git"
ssh-key-file = "keys/git"
strict-host-key-checking = false
webhook-secret-file = "webhook-secret"
[registry]
authfile = "/etc/containers/auth.json"
[[streams]]
name = "stable"
branch = "release/stable"
treefile = "./os/manifest.yaml"
arches = ["x86_64", "aarch64"]
image = "localhost:5000/os/exampleos"
variables = { variant = "server", release = 42, debug = false }
priority = -5
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.server.state_dir, Path::new("/etc/arbor/state"));
    assert_eq!(config.server.database.url, "sqlite:///etc/arbor/state/arbor.db");
    assert_eq!(
        config.git.credentials,
        GitCredentialSettings::SshKey {
            key_file: "/etc/arbor/keys/git".into(),
            known_hosts_file: "/etc/arbor/state/git/known_hosts".into(),
            accept_new_host_keys: true,
        }
    );
    assert_eq!(config.git.webhook_secret, Some(SecretSource::File("/etc/arbor/webhook-secret".into())));
    assert_eq!(config.registry.authfile.as_deref(), Some(Path::new("/etc/containers/auth.json")));
    let stream = &config.streams[0];
    assert_eq!((stream.branch.as_str(), stream.treefile.as_str()), ("release/stable", "os/manifest.yaml"));
    assert_eq!(stream.arches, ["x86_64", "aarch64"]);
    assert_eq!(stream.priority, -5);
    let variables: Vec<String> =
        stream.variables.iter().map(|(name, value)| format!("{name}={value}")).collect();
    assert_eq!(variables, ["debug=false", "release=42", "variant=server"]);
}

#[test]
fn the_example_configuration_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arbor.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.streams.len(), 2);
    assert!(config.server.public_read);
    assert_eq!(
        config.git.credentials,
        GitCredentialSettings::Token {
            username: "arbor".into(),
            token: SecretSource::File("/etc/arbor/git-token".into())
        }
    );
    assert_eq!(config.git.webhook_secret, Some(SecretSource::Environment("ARBOR_WEBHOOK_SECRET".into())));
    assert_eq!(config.stream("testing-devel").unwrap().priority, 10);
}

#[test]
fn an_unreadable_file_is_named() {
    let errors = Config::load(Path::new("/nonexistent/arbor.toml")).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "/nonexistent/arbor.toml has 1 problem:\n  /nonexistent/arbor.toml: cannot read the configuration \
         file: No such file or directory (os error 2)"
    );
}

#[test]
fn token_credentials_are_loaded_from_their_source() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("token"), "t0ken\n").unwrap();
    let text = MINIMAL.replace("config.git\"", "config.git\"\ntoken-file = \"token\"");
    let config = Config::parse(&text, &directory.path().join("arbor.toml")).unwrap();
    match config.git.credentials().unwrap() {
        Credentials::Token { username, token } => {
            assert_eq!((username.as_str(), token.expose()), ("arbor", "t0ken"))
        }
        other => panic!("{other:?}"),
    }
}

/// Each case: a name, and the text after which MINIMAL is appended unless it says `# complete`.
const ERROR_CASES: &[(&str, &str)] = &[
    ("syntax", "[server\nlisten = 1\n"),
    ("duplicate key", "[server]\nworkers = 1\nworkers = 2\n"),
    (
        "unknown keys at every level",
        "[stream]\nname = \"x\"\n[server]\nlisten-address = \"127.0.0.1:1\"\nstatedir = \"/x\"\n[cache]\nmaxsize = \"1GiB\"\n",
    ),
    (
        "wrong types",
        "[server]\nworkers = \"two\"\npublic-read = \"yes\"\nlisten = 8080\n[registry]\ntls-verify = 1\n",
    ),
    ("a section that is not a table", "worker = \"fast\"\n"),
    (
        "invalid server values",
        "[server]\nlisten = \"localhost:8080\"\nworkers = 65\nlog-format = \"yaml\"\nshutdown-grace = \"soon\"\n\
         database = \"mysql://db/arbor\"\n",
    ),
    ("durations and sizes", "[worker]\nlease-duration = \"1s\"\n[cache]\nmax-size = \"lots\"\n"),
    (
        "heartbeat longer than half the lease",
        "[worker]\nlease-duration = \"20s\"\nheartbeat-interval = \"15s\"\n",
    ),
    ("nothing at all # complete", ""),
    (
        "streams with every kind of mistake # complete",
        r#"
[git]
url = "file:///srv/git/os.git"
poll-interval = "1s"

[[streams]]
name = "testing devel"
branch = "refs/heads/main"
treefile = "../manifest.yaml"
arches = ["x86_64", "amd64", "x86_64", 7]
image = "registry.example.com/os/exampleos:latest"
priority = 5000
variables = { basearch = "x", "not valid" = 1, ok = [1] }
arch = "x86_64"

[[streams]]
arches = []

[[streams]]
name = "stable"
arches = ["x86_64"]
image = "exampleos"

[[streams]]
name = "stable"
arches = ["aarch64"]
image = "registry.example.com/os/exampleos"
"#,
    ),
    (
        "inline secrets # complete",
        r#"
[server]
database = "postgres://arbor:hunter2@db.example.com/arbor"
password = "hunter2"

[git]
url = "https://arbor:ghp_secret@git.example.com/os/config.git"
token = "ghp_secret"
webhook_secret = "hush"

[[streams]]
name = "s"
arches = ["x86_64"]
image = "registry.example.com/os/exampleos"
"#,
    ),
    (
        "credentials that do not fit the remote # complete",
        r#"
[git]
url = "https://git.example.com/os/config.git"
token-file = "/etc/arbor/token"
token-env = "ARBOR_TOKEN"
ssh-key-file = "/etc/arbor/key"

[[streams]]
name = "s"
arches = ["x86_64"]
image = "registry.example.com/os/exampleos"
"#,
    ),
    (
        "a token over plain http # complete",
        "[git]\nurl = \"http://git.example.com/os.git\"\ntoken-env = \"ARBOR_TOKEN\"\n\
         [[streams]]\nname = \"s\"\narches = [\"x86_64\"]\nimage = \"registry.example.com/os/x\"\n",
    ),
    (
        "an ssh remote without key and host keys # complete",
        "[git]\nurl = \"git@git.example.com:os/config.git\"\ntoken-env = \"9TOKEN\"\n\
         [[streams]]\nname = \"s\"\narches = [\"x86_64\"]\nimage = \"registry.example.com/os/x\"\n",
    ),
    (
        "a file remote with credentials and a bad database password key # complete",
        "[server]\ndatabase-password-env = \"PGPASSWORD\"\n\
         [git]\nurl = \"file:///srv/git/os.git\"\nknown-hosts-file = \"/etc/ssh/known_hosts\"\n\
         [[streams]]\nname = \"s\"\narches = [\"x86_64\"]\nimage = \"registry.example.com/os/x\"\n",
    ),
    (
        "a git section without url and streams that are not an array # complete",
        "streams = { name = \"x\" }\n[git]\npoll-interval = \"5m\"\n",
    ),
];

#[test]
fn every_error_names_file_line_column_and_key() {
    let mut rendered = String::new();
    for (name, text) in ERROR_CASES {
        let text = if name.ends_with("# complete") { text.to_string() } else { format!("{text}{MINIMAL}") };
        let errors = match parse(&text) {
            Ok(_) => panic!("case \"{name}\" parsed without errors"),
            Err(errors) => errors,
        };
        for error in &errors.errors {
            assert_eq!(error.file, "/etc/arbor/arbor.toml", "{name}");
            assert!(
                !error.to_string().contains("hunter2") && !error.to_string().contains("ghp_secret"),
                "{error}"
            );
        }
        writeln!(rendered, "## {name}\n{errors}\n").unwrap();
    }
    insta::assert_snapshot!(rendered);
}

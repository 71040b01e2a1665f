//! The `[server]`, `[worker]`, `[cache]` and `[registry]` sections, and the value helpers every
//! section uses (defaults, durations, sizes, paths, secret sources).

use super::reader::{Document, Located, Table, section_scope};
use super::values::{check_database_url, parse_duration, parse_size};
use super::{
    CacheSettings, ConfigProblem, DatabaseSettings, LogFormat, RegistrySettings, ServerSettings,
    WorkerSettings, resolve,
};
use crate::secret::SecretSource;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::DeTable;

pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub(super) const DEFAULT_STATE_DIR: &str = "/var/lib/arbor";
/// One embedded worker: a single machine composes out of the box.
const DEFAULT_WORKERS: i64 = 1;
/// More embedded workers than this would only compete for the same disk and cores.
const MAXIMUM_WORKERS: i64 = 64;
/// Long enough for a running compose to reach a checkpoint and hand its job back.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(60);
/// A quarter of the lease: three heartbeats may be lost before the lease expires.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Shorter leases would expire on ordinary pauses (a slow database write, a GC pause of the registry).
const MINIMUM_LEASE_DURATION: Duration = Duration::from_secs(5);
/// A package cache of a few releases of a distribution's base set.
const DEFAULT_CACHE_SIZE: u64 = 20 << 30;

/// Runs `read` on the section `name` (an empty table when it is absent); `None` when it is not a table.
pub(super) fn with_section<T>(
    document: &mut Document,
    root: Table,
    name: &str,
    read: impl FnOnce(&mut Document, Table) -> Option<T>,
) -> Option<T> {
    let scope = section_scope(name);
    let empty = DeTable::new();
    let (entries, span) = match root.table(document, name) {
        Some((entries, span)) => (entries, span),
        None if root.contains(name) => return None,
        None => (&empty, 0..0),
    };
    read(document, Table::new(entries, &scope, &span))
}

/// A duration key: its default when absent, `None` (reported) when invalid or below `minimum`.
pub(super) fn duration(
    document: &mut Document,
    table: Table,
    key: &str,
    default: Duration,
    minimum: Duration,
) -> Option<Duration> {
    let Some(text) = table.string(document, key) else {
        return (!table.contains(key)).then_some(default);
    };
    match parse_duration(text.value) {
        Ok(value) if value >= minimum => Some(value),
        Ok(_) => {
            document.invalid(text.span, table.key(key), format!("must be at least {}", humane(minimum)));
            None
        }
        Err(message) => {
            document.invalid(text.span, table.key(key), message);
            None
        }
    }
}

/// `duration` as people write it, for messages.
pub(super) fn humane(duration: Duration) -> String {
    let milliseconds = duration.as_millis();
    match milliseconds {
        value if value % 3_600_000 == 0 && value > 0 => format!("{}h", value / 3_600_000),
        value if value % 60_000 == 0 && value > 0 => format!("{}m", value / 60_000),
        value if value % 1000 == 0 => format!("{}s", value / 1000),
        value => format!("{value}ms"),
    }
}

/// A path key, relative to the configuration file's directory.
pub(super) fn path(document: &mut Document, table: Table, base: &Path, key: &str) -> Option<PathBuf> {
    let text = table.string(document, key)?;
    if text.value.is_empty() {
        document.invalid(text.span, table.key(key), "must not be empty");
        return None;
    }
    Some(resolve(base, text.value))
}

/// The key that named `source`: `{prefix}-file` or `{prefix}-env`.
pub(super) fn secret_key(prefix: &str, source: &SecretSource) -> String {
    match source {
        SecretSource::File(_) => format!("{prefix}-file"),
        SecretSource::Environment(_) => format!("{prefix}-env"),
    }
}

/// The secret named by `{prefix}-file` or `{prefix}-env`: `Ok(None)` when neither is set, `Err` when
/// the keys are wrong (reported).
pub(super) fn secret_source(
    document: &mut Document,
    table: Table,
    base: &Path,
    prefix: &str,
) -> Result<Option<Located<SecretSource>>, ()> {
    let file_key = format!("{prefix}-file");
    let env_key = format!("{prefix}-env");
    let file = table.string(document, &file_key);
    let variable = table.string(document, &env_key);
    if (table.contains(&file_key) && file.is_none()) || (table.contains(&env_key) && variable.is_none()) {
        return Err(());
    }
    match (file, variable) {
        (Some(_), Some(variable)) => {
            document.report(
                Some(variable.span),
                table.key(&env_key),
                ConfigProblem::Conflict { other: file_key },
            );
            Err(())
        }
        (Some(file), None) if file.value.is_empty() => {
            document.invalid(file.span, table.key(&file_key), "must name a file");
            Err(())
        }
        (Some(file), None) => {
            Ok(Some(Located { value: SecretSource::File(resolve(base, file.value)), span: file.span }))
        }
        (None, Some(variable)) => {
            let valid = variable.value.chars().next().is_some_and(|first| !first.is_ascii_digit())
                && variable
                    .value
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || character == '_');
            if !valid {
                let message = format!("\"{}\" is not an environment variable name", variable.value);
                document.invalid(variable.span, table.key(&env_key), message);
                return Err(());
            }
            Ok(Some(Located {
                value: SecretSource::Environment(variable.value.to_string()),
                span: variable.span,
            }))
        }
        (None, None) => Ok(None),
    }
}

const SERVER_KEYS: &[&str] = &[
    "listen",
    "state-dir",
    "database",
    "database-password-file",
    "database-password-env",
    "workers",
    "public-read",
    "log-format",
    "shutdown-grace",
];

pub(super) fn read_server(document: &mut Document, root: Table, base: &Path) -> Option<ServerSettings> {
    with_section(document, root, "server", |document, table| {
        table.check_keys(document, SERVER_KEYS);
        let listen = match table.string(document, "listen") {
            None if table.contains("listen") => None,
            None => DEFAULT_LISTEN.parse().ok(),
            Some(text) => match text.value.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    let message = format!(
                        "\"{}\" is not an address and port; write e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
                        text.value
                    );
                    document.invalid(text.span, table.key("listen"), message);
                    None
                }
            },
        };
        let state_dir = match table.string(document, "state-dir") {
            None if table.contains("state-dir") => None,
            None => Some(PathBuf::from(DEFAULT_STATE_DIR)),
            Some(_) => path(document, table, base, "state-dir"),
        };
        let database = read_database(document, table, base, state_dir.as_deref());
        let workers = match table.integer(document, "workers") {
            None => (!table.contains("workers")).then_some(DEFAULT_WORKERS),
            Some(number) if (0..=MAXIMUM_WORKERS).contains(&number.value) => Some(number.value),
            Some(number) => {
                let message = format!("must be between 0 (remote workers only) and {MAXIMUM_WORKERS}");
                document.invalid(number.span, table.key("workers"), message);
                None
            }
        };
        let public_read = table.boolean(document, "public-read");
        let public_read = if table.contains("public-read") { public_read } else { Some(false) };
        let log_format = match table.string(document, "log-format") {
            None => (!table.contains("log-format")).then_some(LogFormat::Text),
            Some(text) => match text.value {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                other => {
                    let message = format!("\"{other}\" is not a log format; use \"text\" or \"json\"");
                    document.invalid(text.span, table.key("log-format"), message);
                    None
                }
            },
        };
        let shutdown_grace =
            duration(document, table, "shutdown-grace", DEFAULT_SHUTDOWN_GRACE, Duration::ZERO);
        Some(ServerSettings {
            listen: listen?,
            state_dir: state_dir?,
            database: database?,
            workers: u32::try_from(workers?).ok()?,
            public_read: public_read?,
            log_format: log_format?,
            shutdown_grace: shutdown_grace?,
        })
    })
}

fn read_database(
    document: &mut Document,
    table: Table,
    base: &Path,
    state_dir: Option<&Path>,
) -> Option<DatabaseSettings> {
    let password = secret_source(document, table, base, "database-password");
    let url = match table.string(document, "database") {
        None if table.contains("database") => None,
        None => state_dir.map(|state_dir| format!("sqlite://{}", state_dir.join("arbor.db").display())),
        Some(text) => match check_database_url(text.value) {
            Ok(()) => Some(text.value.to_string()),
            Err(None) => {
                let problem = ConfigProblem::InlineSecret {
                    file_key: "database-password-file".into(),
                    env_key: "database-password-env".into(),
                };
                document.report(Some(text.span), table.key("database"), problem);
                None
            }
            Err(Some(message)) => {
                document.invalid(text.span, table.key("database"), message);
                None
            }
        },
    };
    let password = password.ok()?;
    if let (Some(url), Some(password)) = (&url, &password)
        && url.starts_with("sqlite:")
    {
        let message = "applies to PostgreSQL only; SQLite databases have no password";
        let key = secret_key("database-password", &password.value);
        document.invalid(password.span.clone(), table.key(&key), message);
        return None;
    }
    Some(DatabaseSettings { url: url?, password: password.map(|password| password.value) })
}

const WORKER_KEYS: &[&str] = &["lease-duration", "heartbeat-interval"];

pub(super) fn read_worker(document: &mut Document, root: Table) -> Option<WorkerSettings> {
    with_section(document, root, "worker", |document, table| {
        table.check_keys(document, WORKER_KEYS);
        let lease_duration =
            duration(document, table, "lease-duration", DEFAULT_LEASE_DURATION, MINIMUM_LEASE_DURATION);
        let heartbeat_interval = duration(
            document,
            table,
            "heartbeat-interval",
            DEFAULT_HEARTBEAT_INTERVAL,
            Duration::from_secs(1),
        );
        let (lease_duration, heartbeat_interval) = (lease_duration?, heartbeat_interval?);
        if heartbeat_interval * 2 > lease_duration {
            let span =
                table.value("heartbeat-interval").or(table.value("lease-duration")).map(|value| value.span());
            let message = format!(
                "{} is more than half of \"lease-duration\" ({}): one late heartbeat would lose the lease",
                humane(heartbeat_interval),
                humane(lease_duration)
            );
            document.report(span, table.key("heartbeat-interval"), ConfigProblem::Invalid { message });
            return None;
        }
        Some(WorkerSettings { lease_duration, heartbeat_interval })
    })
}

const CACHE_KEYS: &[&str] = &["directory", "max-size"];

pub(super) fn read_cache(
    document: &mut Document,
    root: Table,
    base: &Path,
    state_dir: Option<&PathBuf>,
) -> Option<CacheSettings> {
    with_section(document, root, "cache", |document, table| {
        table.check_keys(document, CACHE_KEYS);
        let directory = match table.string(document, "directory") {
            None if table.contains("directory") => None,
            None => state_dir.map(|state_dir| state_dir.join("cache")),
            Some(_) => path(document, table, base, "directory"),
        };
        let max_size = match table.string(document, "max-size") {
            None => (!table.contains("max-size")).then_some(DEFAULT_CACHE_SIZE),
            Some(text) => match parse_size(text.value) {
                Ok(0) => {
                    document.invalid(text.span, table.key("max-size"), "must be more than 0");
                    None
                }
                Ok(size) => Some(size),
                Err(message) => {
                    document.invalid(text.span, table.key("max-size"), message);
                    None
                }
            },
        };
        Some(CacheSettings { directory: directory?, max_size: max_size? })
    })
}

const REGISTRY_KEYS: &[&str] = &["authfile", "tls-verify"];

pub(super) fn read_registry(document: &mut Document, root: Table, base: &Path) -> Option<RegistrySettings> {
    with_section(document, root, "registry", |document, table| {
        table.check_keys(document, REGISTRY_KEYS);
        let authfile = path(document, table, base, "authfile");
        let tls_verify = table.boolean(document, "tls-verify");
        if table.contains("authfile") && authfile.is_none() {
            return None;
        }
        let tls_verify = if table.contains("tls-verify") { tls_verify? } else { true };
        Some(RegistrySettings { authfile, tls_verify })
    })
}

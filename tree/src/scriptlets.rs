//! The scriptlets of the composed packages: read from RPM headers (stored as JSON in the package
//! cache) and run in the sandbox in transaction order, with rpm's arguments and conventions:
//! `%pre`, `%post`, `%posttrans` and `%transfiletriggerin`.
//!
//! Conventions followed, as measured with rpm 4.18 installing into an empty root:
//! - A script with a body runs as `INTERPRETER [ARGS...] SCRIPTFILE N`; a body-less `-p PROGRAM`
//!   scriptlet (`%post -p /sbin/ldconfig`) runs as `PROGRAM [ARGS...]`, without any argument.
//! - `N` is the number of instances of the package after the transaction: `1` for `%pre`, `%post`
//!   and also `%posttrans` (older guides document `0` for `%posttrans`; rpm 4.18 passes `1`), and
//!   `0` for `%transfiletriggerin`.
//! - A `%transfiletriggerin` runs once when any path installed in the transaction starts with one
//!   of its prefixes, reading the matching paths (files and directories, one per line) on stdin;
//!   higher priorities run first.
//! - Scripts for rpm's embedded Lua (`<lua>`) cannot run outside rpm: they are skipped with a
//!   warning and counted in the report.

use std::collections::BTreeSet;
use std::fmt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rpm::IndexTag;
use serde::{Deserialize, Serialize};

use crate::sandbox::{ProtectedRoot, SandboxCommand, SandboxError, show_output};
use common::blocking::Cancellation;

/// The interpreter of a scriptlet whose header names none, as in rpm.
pub const DEFAULT_INTERPRETER: &str = "/bin/sh";

/// The pseudo-interpreter of scriptlets that rpm runs in its embedded Lua.
pub const LUA_INTERPRETER: &str = "<lua>";

/// The priority of a file trigger declared without `-P`, as in rpm.
pub const DEFAULT_TRIGGER_PRIORITY: i32 = 1_000_000;

/// `$1` of `%pre`, `%post` and `%posttrans`: one instance of the package once installed.
const INSTANCES_AFTER_INSTALL: &str = "1";

/// `$1` of `%transfiletriggerin`, as rpm 4.18 passes it.
const TRANSACTION_FILE_TRIGGER_ARGUMENT: &str = "0";

/// Variables every scriptlet sees on top of the sandbox's fixed environment. `SYSTEMD_OFFLINE=1`
/// makes `systemctl enable`/`preset` in scriptlets edit the tree instead of trying to talk to a
/// running systemd, which the sandbox does not have.
const SCRIPTLET_ENVIRONMENT: [(&str, &str); 1] = [("SYSTEMD_OFFLINE", "1")];

/// One scriptlet: the program with its arguments, and the script text (empty for a body-less
/// `-p PROGRAM` scriptlet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Program and arguments, e.g. `["/bin/sh"]`; `["<lua>"]` for rpm's embedded Lua.
    pub interpreter: Vec<String>,
    pub body: String,
}

/// One `%transfiletriggerin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTrigger {
    pub interpreter: Vec<String>,
    pub body: String,
    /// Path prefixes whose installation fires the trigger, e.g. `/usr/lib64/gio/modules/`.
    pub prefixes: Vec<String>,
    /// Higher runs first; rpm's default is [`DEFAULT_TRIGGER_PRIORITY`].
    pub priority: i32,
}

/// The scriptlets of one package that a compose runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageScripts {
    #[serde(default)]
    pub pre: Option<Script>,
    #[serde(default)]
    pub post: Option<Script>,
    #[serde(default)]
    pub posttrans: Option<Script>,
    #[serde(default)]
    pub transfiletriggerin: Vec<FileTrigger>,
}

/// A scriptlet slot of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pre,
    Post,
    PostTrans,
    TransFileTriggerIn,
}

impl Phase {
    /// The name rpm gives the slot in its messages, e.g. `%post`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "%pre",
            Phase::Post => "%post",
            Phase::PostTrans => "%posttrans",
            Phase::TransFileTriggerIn => "%transfiletriggerin",
        }
    }

    /// `post` for `%post`: names the script in logs (`bash.post`).
    fn suffix(self) -> &'static str {
        self.as_str().trim_start_matches('%')
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptletError {
    #[error("cannot read the {what} of {package} from its header: {source}")]
    Header { package: String, what: &'static str, source: rpm::Error },
    #[error("the {phase} scriptlet of {package} failed ({status}); its output:\n{}", show_output(output))]
    Failed { package: String, phase: Phase, status: ExitStatus, output: String },
    #[error("cannot run the {phase} scriptlet of {package}: {source}")]
    Sandbox { package: String, phase: Phase, source: SandboxError },
    #[error("the {phase} scriptlets were cancelled")]
    Cancelled { phase: Phase },
}

/// A package of the transaction, as `run_phase` needs it.
#[derive(Debug, Clone, Copy)]
pub struct ScriptedPackage<'a> {
    pub nevra: &'a str,
    pub name: &'a str,
    pub scripts: &'a PackageScripts,
    /// Every path the package installs (files and directories), absolute.
    pub files: &'a [String],
}

/// What one phase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseReport {
    pub phase: Phase,
    /// Scriptlets (or triggers) that ran.
    pub scripts_run: usize,
    /// The NEVRAs whose Lua scriptlet of this phase was skipped.
    pub lua_skipped: Vec<String>,
    pub elapsed: Duration,
}

impl PackageScripts {
    /// Reads the scriptlets a compose runs from a package header. A missing scriptlet is `None`.
    pub fn from_header(metadata: &rpm::PackageMetadata) -> Result<PackageScripts, ScriptletError> {
        let package = metadata.get_name().unwrap_or("(a package without a name)");
        Ok(PackageScripts {
            pre: read_script(
                metadata,
                package,
                "%pre scriptlet",
                rpm::PackageMetadata::get_pre_install_script,
                IndexTag::RPMTAG_PREINPROG,
            )?,
            post: read_script(
                metadata,
                package,
                "%post scriptlet",
                rpm::PackageMetadata::get_post_install_script,
                IndexTag::RPMTAG_POSTINPROG,
            )?,
            posttrans: read_script(
                metadata,
                package,
                "%posttrans scriptlet",
                rpm::PackageMetadata::get_post_trans_script,
                IndexTag::RPMTAG_POSTTRANSPROG,
            )?,
            transfiletriggerin: read_transaction_file_triggers(metadata, package)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.pre.is_none()
            && self.post.is_none()
            && self.posttrans.is_none()
            && self.transfiletriggerin.is_empty()
    }

    /// Whether the package has anything to run in `phase`.
    pub fn has(&self, phase: Phase) -> bool {
        match phase {
            Phase::TransFileTriggerIn => !self.transfiletriggerin.is_empty(),
            _ => self.script(phase).is_some(),
        }
    }

    fn script(&self, phase: Phase) -> Option<&Script> {
        match phase {
            Phase::Pre => self.pre.as_ref(),
            Phase::Post => self.post.as_ref(),
            Phase::PostTrans => self.posttrans.as_ref(),
            Phase::TransFileTriggerIn => None,
        }
    }
}

fn read_script(
    metadata: &rpm::PackageMetadata,
    package: &str,
    what: &'static str,
    read: fn(&rpm::PackageMetadata) -> Result<rpm::Scriptlet, rpm::Error>,
    program_tag: IndexTag,
) -> Result<Option<Script>, ScriptletError> {
    let header_error = |source| ScriptletError::Header { package: package.to_string(), what, source };
    match read(metadata) {
        Ok(scriptlet) => {
            if let Some(flags) = scriptlet.flags
                && flags.intersects(rpm::ScriptletFlags::EXPAND | rpm::ScriptletFlags::QFORMAT)
            {
                tracing::warn!(
                    package.name = package,
                    scriptlet = what,
                    "the scriptlet asks rpm to expand macros or header queries in its text, \
                     which arbor does not do: it runs as written"
                );
            }
            let interpreter = scriptlet.program.filter(|program| !program.is_empty());
            Ok(Some(Script {
                interpreter: interpreter.unwrap_or_else(|| vec![DEFAULT_INTERPRETER.to_string()]),
                body: scriptlet.script,
            }))
        }
        // No script text; a body-less `-p PROGRAM` scriptlet has only the program tag.
        Err(rpm::Error::TagNotFound(_)) => {
            match metadata.header.get_entry_data_as_string_array(program_tag) {
                Ok(program) if !program.is_empty() => Ok(Some(Script {
                    interpreter: program.into_iter().map(str::to_string).collect(),
                    body: String::new(),
                })),
                Ok(_) | Err(rpm::Error::TagNotFound(_)) => Ok(None),
                Err(source) => Err(header_error(source)),
            }
        }
        Err(source) => Err(header_error(source)),
    }
}

fn read_transaction_file_triggers(
    metadata: &rpm::PackageMetadata,
    package: &str,
) -> Result<Vec<FileTrigger>, ScriptletError> {
    let header_error = |source| ScriptletError::Header {
        package: package.to_string(),
        what: "%transfiletrigger scriptlets",
        source,
    };
    let triggers = metadata.get_trans_file_triggers().map_err(header_error)?;
    if triggers.is_empty() {
        return Ok(Vec::new());
    }
    let priorities =
        match metadata.header.get_entry_data_as_u32_array(IndexTag::RPMTAG_TRANSFILETRIGGERPRIORITIES) {
            Ok(priorities) => priorities,
            Err(rpm::Error::TagNotFound(_)) => Vec::new(),
            Err(source) => return Err(header_error(source)),
        };
    let mut result = Vec::new();
    for (index, trigger) in triggers.into_iter().enumerate() {
        // The header keeps %transfiletriggerin, -un and -postun together; the kind is in the
        // flags of each trigger's conditions.
        let prefixes: Vec<String> = trigger
            .conditions
            .iter()
            .filter(|condition| condition.flags.contains(rpm::DependencyFlags::TRIGGERIN))
            .map(|condition| condition.name.clone())
            .collect();
        if prefixes.is_empty() {
            continue;
        }
        let interpreter: Vec<String> = trigger.program.into_iter().filter(|part| !part.is_empty()).collect();
        result.push(FileTrigger {
            interpreter: if interpreter.is_empty() {
                vec![DEFAULT_INTERPRETER.to_string()]
            } else {
                interpreter
            },
            body: trigger.script,
            prefixes,
            // Stored as rpm's int32 in an unsigned array: reinterpret the bits.
            priority: priorities
                .get(index)
                .map_or(DEFAULT_TRIGGER_PRIORITY, |priority| priority.cast_signed()),
        });
    }
    Ok(result)
}

/// Runs the scriptlets of `phase` of `packages` (in transaction order) in the sandbox, stopping
/// at the first failure; cancellation is checked before each scriptlet.
pub fn run_phase(
    root: &ProtectedRoot,
    phase: Phase,
    packages: &[ScriptedPackage<'_>],
    cancellation: &Cancellation,
) -> Result<PhaseReport, ScriptletError> {
    let started = Instant::now();
    let mut report = PhaseReport { phase, scripts_run: 0, lua_skipped: Vec::new(), elapsed: Duration::ZERO };
    match phase {
        Phase::TransFileTriggerIn => {
            run_transaction_file_triggers(root, packages, cancellation, &mut report)?
        }
        Phase::Pre | Phase::Post | Phase::PostTrans => {
            for package in packages {
                let Some(script) = package.scripts.script(phase) else { continue };
                if cancellation.is_cancelled() {
                    return Err(ScriptletError::Cancelled { phase });
                }
                run_one(
                    root,
                    phase,
                    package,
                    &script.interpreter,
                    &script.body,
                    INSTANCES_AFTER_INSTALL,
                    None,
                    &mut report,
                )?;
            }
        }
    }
    report.elapsed = started.elapsed();
    tracing::info!(
        %phase,
        scripts_run = report.scripts_run,
        lua_skipped = report.lua_skipped.len(),
        elapsed_ms = report.elapsed.as_millis(),
        "scriptlet phase done"
    );
    Ok(report)
}

fn run_transaction_file_triggers(
    root: &ProtectedRoot,
    packages: &[ScriptedPackage<'_>],
    cancellation: &Cancellation,
    report: &mut PhaseReport,
) -> Result<(), ScriptletError> {
    let installed: BTreeSet<&str> =
        packages.iter().flat_map(|package| package.files.iter().map(String::as_str)).collect();
    let mut triggers: Vec<(&ScriptedPackage<'_>, &FileTrigger)> = packages
        .iter()
        .flat_map(|package| package.scripts.transfiletriggerin.iter().map(move |trigger| (package, trigger)))
        .collect();
    // Stable: equal priorities keep the transaction order.
    triggers.sort_by_key(|(_, trigger)| std::cmp::Reverse(trigger.priority));
    for (package, trigger) in triggers {
        let matching = matching_paths(&installed, &trigger.prefixes);
        if matching.is_empty() {
            tracing::debug!(package.nevra = package.nevra, prefixes = ?trigger.prefixes, "file trigger not fired: no path matches");
            continue;
        }
        if cancellation.is_cancelled() {
            return Err(ScriptletError::Cancelled { phase: Phase::TransFileTriggerIn });
        }
        let mut stdin = Vec::new();
        for path in &matching {
            stdin.extend_from_slice(path.as_bytes());
            stdin.push(b'\n');
        }
        run_one(
            root,
            Phase::TransFileTriggerIn,
            package,
            &trigger.interpreter,
            &trigger.body,
            TRANSACTION_FILE_TRIGGER_ARGUMENT,
            Some(stdin),
            report,
        )?;
    }
    Ok(())
}

/// The installed paths that start with any of `prefixes`, sorted and without duplicates. Paths
/// sharing a prefix are adjacent in the sorted set, so each prefix is one range scan.
fn matching_paths<'a>(installed: &BTreeSet<&'a str>, prefixes: &[String]) -> BTreeSet<&'a str> {
    let mut matching = BTreeSet::new();
    for prefix in prefixes.iter().filter(|prefix| !prefix.is_empty()) {
        matching.extend(
            installed
                .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                .take_while(|path| path.starts_with(prefix.as_str())),
        );
    }
    matching
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    root: &ProtectedRoot,
    phase: Phase,
    package: &ScriptedPackage<'_>,
    interpreter: &[String],
    body: &str,
    argument: &str,
    stdin: Option<Vec<u8>>,
    report: &mut PhaseReport,
) -> Result<(), ScriptletError> {
    let interpreter: Vec<String> =
        if interpreter.is_empty() { vec![DEFAULT_INTERPRETER.to_string()] } else { interpreter.to_vec() };
    if interpreter[0] == LUA_INTERPRETER {
        tracing::warn!(
            package.nevra = package.nevra,
            %phase,
            "skipping a scriptlet written for rpm's embedded Lua, which only rpm can run"
        );
        report.lua_skipped.push(package.nevra.to_string());
        return Ok(());
    }
    let mut command = SandboxCommand::new(format!("{}.{}", package.name, phase.suffix()), interpreter);
    // rpm passes the argument only along with a script file; `-p PROGRAM` gets none.
    if !body.is_empty() {
        command = command.script(body).argument(argument);
    }
    for (name, value) in SCRIPTLET_ENVIRONMENT {
        command = command.environment(name, value);
    }
    if let Some(stdin) = stdin {
        command = command.stdin(stdin);
    }
    match root.run(&command) {
        Ok(output) => {
            report.scripts_run += 1;
            let text = output.output.trim_end();
            if text.is_empty() {
                tracing::info!(package.nevra = package.nevra, %phase, elapsed_ms = output.elapsed.as_millis(), "scriptlet ran");
            } else {
                tracing::info!(
                    package.nevra = package.nevra,
                    %phase,
                    elapsed_ms = output.elapsed.as_millis(),
                    output = text,
                    "scriptlet ran"
                );
            }
            Ok(())
        }
        Err(SandboxError::Failed { status, output, .. }) => {
            Err(ScriptletError::Failed { package: package.nevra.to_string(), phase, status, output })
        }
        Err(source) => Err(ScriptletError::Sandbox { package: package.nevra.to_string(), phase, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(configure: impl FnOnce(&mut rpm::PackageBuilder)) -> rpm::PackageMetadata {
        let mut builder = rpm::PackageBuilder::new("demo", "1.0", "MIT", "x86_64", "a demo");
        configure(&mut builder);
        builder.build().unwrap().metadata
    }

    #[test]
    fn a_package_without_scriptlets_has_none() {
        let scripts = PackageScripts::from_header(&build(|_| {})).unwrap();
        assert!(scripts.is_empty());
        assert_eq!(scripts, PackageScripts::default());
    }

    #[test]
    fn scriptlets_come_with_their_interpreters() {
        let metadata = build(|builder| {
            builder.pre_install_script("echo pre");
            builder.post_install_script(rpm::Scriptlet::new("print('hi')").prog(vec!["<lua>"]));
            builder.post_trans_script(rpm::Scriptlet::new("echo done").prog(vec!["/bin/bash", "-e"]));
        });
        let scripts = PackageScripts::from_header(&metadata).unwrap();
        assert_eq!(
            scripts.pre,
            Some(Script { interpreter: vec!["/bin/sh".into()], body: "echo pre".into() })
        );
        assert_eq!(
            scripts.post,
            Some(Script { interpreter: vec!["<lua>".into()], body: "print('hi')".into() })
        );
        assert_eq!(
            scripts.posttrans,
            Some(Script { interpreter: vec!["/bin/bash".into(), "-e".into()], body: "echo done".into() })
        );
        assert!(!scripts.is_empty());
    }

    #[test]
    fn only_transaction_file_triggers_on_install_are_kept() {
        let metadata = build(|builder| {
            builder.trans_file_trigger_in("/usr/lib64/gio/modules/", None, "gio-querymodules");
            builder.trans_file_trigger_un("/usr/share/glib-2.0/schemas/", None, "echo un");
            builder.trans_file_trigger_in(
                "/usr/share/fonts/",
                None,
                rpm::Scriptlet::new("fc-cache").prog(vec!["/usr/bin/bash"]),
            );
        });
        let scripts = PackageScripts::from_header(&metadata).unwrap();
        assert_eq!(
            scripts.transfiletriggerin,
            vec![
                FileTrigger {
                    interpreter: vec!["/bin/sh".into()],
                    body: "gio-querymodules".into(),
                    prefixes: vec!["/usr/lib64/gio/modules/".into()],
                    priority: DEFAULT_TRIGGER_PRIORITY,
                },
                FileTrigger {
                    interpreter: vec!["/usr/bin/bash".into()],
                    body: "fc-cache".into(),
                    prefixes: vec!["/usr/share/fonts/".into()],
                    priority: DEFAULT_TRIGGER_PRIORITY,
                },
            ]
        );
    }

    #[test]
    fn scripts_round_trip_through_json() {
        let scripts = PackageScripts {
            pre: None,
            post: Some(Script { interpreter: vec!["/bin/sh".into()], body: "echo \"$1\"".into() }),
            posttrans: None,
            transfiletriggerin: vec![FileTrigger {
                interpreter: vec!["/sbin/ldconfig".into()],
                body: String::new(),
                prefixes: vec!["/usr/lib64".into(), "/lib64".into()],
                priority: 2_000_000,
            }],
        };
        let json = serde_json::to_string(&scripts).unwrap();
        assert_eq!(serde_json::from_str::<PackageScripts>(&json).unwrap(), scripts);
        // Missing fields read as empty, so older or smaller records stay readable.
        assert_eq!(serde_json::from_str::<PackageScripts>("{}").unwrap(), PackageScripts::default());
    }

    #[test]
    fn prefixes_select_sorted_unique_paths() {
        let installed: BTreeSet<&str> =
            ["/usr/lib", "/usr/lib/a.so", "/usr/lib64/b.so", "/usr/libexec/c", "/usr/share/d", "/etc/e"]
                .into_iter()
                .collect();
        let matching = matching_paths(&installed, &["/usr/lib/".to_string(), "/etc".to_string()]);
        assert_eq!(matching.into_iter().collect::<Vec<_>>(), ["/etc/e", "/usr/lib/a.so"]);
        // rpm compares plain prefixes: `/usr/lib` also matches `/usr/lib64` and `/usr/libexec`.
        let matching = matching_paths(&installed, &["/usr/lib".to_string(), "/usr/lib".to_string()]);
        assert_eq!(
            matching.into_iter().collect::<Vec<_>>(),
            ["/usr/lib", "/usr/lib/a.so", "/usr/lib64/b.so", "/usr/libexec/c"]
        );
        assert!(matching_paths(&installed, &[String::new()]).is_empty());
    }

    #[test]
    fn phases_are_named_as_rpm_names_them() {
        assert_eq!(Phase::PostTrans.to_string(), "%posttrans");
        assert_eq!(Phase::TransFileTriggerIn.suffix(), "transfiletriggerin");
    }
}

//! What a compose reports while it runs: phases starting and finishing (with their durations), package
//! counts and bytes, download and import progress, warnings. The command line draws a progress bar from
//! them; the server writes them to the job's log and records the phase timings on the build.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rpmmd::download::DownloadProgress;
use tree::BuildPhase;
use tree::pkgcache::ImportProgress;

/// The phases of a compose, in the order they run (a phase with nothing to do is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Resolving,
    Downloading,
    Importing,
    Assembling,
    Scriptlets,
    Postprocessing,
    Initramfs,
    Committing,
    Publishing,
    Encapsulating,
    Writing,
}

impl Phase {
    /// A stable name for logs, metrics and the database (`importing`, `writing`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Resolving => "resolving",
            Phase::Downloading => "downloading",
            Phase::Importing => "importing",
            Phase::Assembling => "assembling",
            Phase::Scriptlets => "scriptlets",
            Phase::Postprocessing => "postprocessing",
            Phase::Initramfs => "initramfs",
            Phase::Committing => "committing",
            Phase::Publishing => "publishing",
            Phase::Encapsulating => "encapsulating",
            Phase::Writing => "writing",
        }
    }

    /// What the phase does, for people ("importing packages").
    pub fn description(self) -> &'static str {
        match self {
            Phase::Resolving => "resolving packages",
            Phase::Downloading => "downloading packages",
            Phase::Encapsulating => "encapsulating the commit",
            Phase::Writing => "writing the image",
            Phase::Importing => BuildPhase::Importing.description(),
            Phase::Assembling => BuildPhase::Assembling.description(),
            Phase::Scriptlets => BuildPhase::Scriptlets.description(),
            Phase::Postprocessing => BuildPhase::Postprocessing.description(),
            Phase::Initramfs => BuildPhase::Initramfs.description(),
            Phase::Committing => BuildPhase::Committing.description(),
            Phase::Publishing => BuildPhase::Publishing.description(),
        }
    }
}

impl From<BuildPhase> for Phase {
    fn from(phase: BuildPhase) -> Phase {
        match phase {
            BuildPhase::Importing => Phase::Importing,
            BuildPhase::Assembling => Phase::Assembling,
            BuildPhase::Scriptlets => Phase::Scriptlets,
            BuildPhase::Postprocessing => Phase::Postprocessing,
            BuildPhase::Initramfs => Phase::Initramfs,
            BuildPhase::Committing => Phase::Committing,
            BuildPhase::Publishing => Phase::Publishing,
        }
    }
}

/// One event of a running compose.
#[derive(Debug, Clone)]
pub enum ComposeEvent {
    PhaseStarted(Phase),
    PhaseFinished {
        phase: Phase,
        duration: Duration,
    },
    /// The package set is known.
    Resolved {
        packages: usize,
        download_bytes: u64,
        install_bytes: u64,
    },
    Downloaded(DownloadProgress),
    Imported(ImportProgress),
    /// The image is assembled: its layers and their compressed size.
    Encapsulated {
        layers: usize,
        bytes: u64,
    },
    /// The image reached its target.
    Written {
        target: String,
        uploaded_blobs: usize,
        uploaded_bytes: u64,
        present_blobs: usize,
    },
    /// Something the user should know that does not stop the compose.
    Warning(String),
}

/// A callback that receives a compose's events as they happen.
pub type EventSink<'a> = &'a (dyn Fn(ComposeEvent) + Sync);

/// How long one phase took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub duration_ms: u64,
}

/// Turns "phase X started" into the finish of the phase before it: one phase runs at a time, so the
/// previous phase ends where the next begins. [`PhaseClock::finish`] ends the last one.
pub(crate) struct PhaseClock<'a> {
    events: EventSink<'a>,
    current: Mutex<Option<(Phase, Instant)>>,
}

impl<'a> PhaseClock<'a> {
    pub(crate) fn new(events: EventSink<'a>) -> Self {
        PhaseClock { events, current: Mutex::new(None) }
    }

    pub(crate) fn emit(&self, event: ComposeEvent) {
        (self.events)(event);
    }

    pub(crate) fn start(&self, phase: Phase) {
        self.finish();
        tracing::info!(phase = phase.name(), "{}", phase.description());
        *self.lock() = Some((phase, Instant::now()));
        (self.events)(ComposeEvent::PhaseStarted(phase));
    }

    /// Ends the running phase, if any.
    pub(crate) fn finish(&self) {
        if let Some((phase, started)) = self.lock().take() {
            (self.events)(ComposeEvent::PhaseFinished { phase, duration: started.elapsed() });
        }
    }

    /// A warning goes to the caller as an event (which shows or records it), not to the log.
    pub(crate) fn warn(&self, message: String) {
        tracing::debug!(warning = %message, "compose warning");
        (self.events)(ComposeEvent::Warning(message));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Phase, Instant)>> {
        self.current.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Drop for PhaseClock<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Collects the phase timings of a compose from its events, for callers that record them.
#[derive(Debug, Default)]
pub struct PhaseTimings(Mutex<Vec<PhaseTiming>>);

impl PhaseTimings {
    /// Records `event` if it finishes a phase.
    pub fn observe(&self, event: &ComposeEvent) {
        if let ComposeEvent::PhaseFinished { phase, duration } = event {
            let timing = PhaseTiming { phase: *phase, duration_ms: duration.as_millis() as u64 };
            self.0.lock().unwrap_or_else(|poison| poison.into_inner()).push(timing);
        }
    }

    pub fn into_inner(self) -> Vec<PhaseTiming> {
        self.0.into_inner().unwrap_or_else(|poison| poison.into_inner())
    }
}

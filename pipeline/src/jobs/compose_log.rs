//! A compose's events as the job's log and phase: one line per phase start and finish (with its
//! duration), the resolved package count, download and import progress about every tenth, warnings and
//! pushed bytes; the phase timings for the build row; and the phase and pushed-bytes metrics.

use std::sync::Mutex;

use common::human::human_bytes;
use compose::{ComposeEvent, PhaseTimings};

use super::context::{LogSink, PhaseSink};
use crate::clock::{Clock, SystemClock};
use crate::store::Phase;

/// Progress is logged each time another tenth of the packages is done (and for the last one).
const PROGRESS_STEPS: usize = 10;

/// Turns one compose's events into log lines, phase updates and timings.
#[derive(Debug)]
pub struct ComposeLog {
    log: LogSink,
    phase: PhaseSink,
    timings: PhaseTimings,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When each phase started (milliseconds since the epoch), in order.
    started: Vec<i64>,
    /// The last progress step logged per kind (downloads, imports).
    download_step: usize,
    import_step: usize,
}

impl ComposeLog {
    pub fn new(log: LogSink, phase: PhaseSink) -> Self {
        ComposeLog { log, phase, timings: PhaseTimings::default(), state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Records one event of the compose.
    pub fn observe(&self, event: ComposeEvent) {
        self.timings.observe(&event);
        match event {
            ComposeEvent::PhaseStarted(phase) => {
                self.state().started.push(SystemClock.now());
                self.phase.set(phase.name());
                self.log.line(format!("{}...", capitalized(phase.description())));
            }
            ComposeEvent::PhaseFinished { phase, duration } => {
                metrics::histogram!("arbor_phase_duration_seconds", "phase" => phase.name())
                    .record(duration.as_secs_f64());
                self.log.line(format!(
                    "{} took {:.1} s",
                    capitalized(phase.description()),
                    duration.as_secs_f64()
                ));
            }
            ComposeEvent::Resolved { packages, download_bytes, install_bytes } => {
                self.log.line(format!(
                    "Resolved {packages} packages ({} to download at most, {} installed)",
                    human_bytes(download_bytes),
                    human_bytes(install_bytes)
                ));
            }
            ComposeEvent::Downloaded(progress) => {
                if let Some(percent) =
                    self.step(progress.done, progress.total, |state| &mut state.download_step)
                {
                    self.log.line(format!(
                        "Downloaded {} of {} packages ({percent}%)",
                        progress.done, progress.total
                    ));
                }
            }
            ComposeEvent::Imported(progress) => {
                if let Some(percent) =
                    self.step(progress.done, progress.total, |state| &mut state.import_step)
                {
                    self.log.line(format!(
                        "Imported {} of {} packages ({percent}%)",
                        progress.done, progress.total
                    ));
                }
            }
            ComposeEvent::Encapsulated { layers, bytes } => {
                self.log.line(format!("Encapsulated into {layers} layers ({})", human_bytes(bytes)));
            }
            ComposeEvent::Written { target, uploaded_blobs, uploaded_bytes, present_blobs } => {
                metrics::counter!("arbor_pushed_bytes_total").increment(uploaded_bytes);
                self.log.line(format!(
                    "Wrote {target}: uploaded {uploaded_blobs} blobs ({}), {present_blobs} already present",
                    human_bytes(uploaded_bytes)
                ));
            }
            ComposeEvent::Warning(message) => self.log.line(format!("warning: {message}")),
        }
    }

    /// The percentage to log when `done` of `total` crosses into another tenth, else `None`.
    fn step(&self, done: usize, total: usize, last: impl FnOnce(&mut State) -> &mut usize) -> Option<usize> {
        if total == 0 {
            return None;
        }
        let step = done * PROGRESS_STEPS / total;
        let mut state = self.state();
        let last = last(&mut state);
        if step > *last || (done == total && *last < PROGRESS_STEPS) {
            *last = step.max(*last);
            Some(done * 100 / total)
        } else {
            None
        }
    }

    /// The phases that finished, with their start times and durations.
    pub fn into_phases(self) -> Vec<Phase> {
        let started = self.state.into_inner().unwrap_or_else(|poison| poison.into_inner()).started;
        self.timings
            .into_inner()
            .into_iter()
            .zip(started)
            .map(|(timing, started_at)| Phase {
                name: timing.phase.name().to_string(),
                started_at,
                duration_ms: i64::try_from(timing.duration_ms).unwrap_or(i64::MAX),
            })
            .collect()
    }
}

fn capitalized(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::context::{LogFields, Report};
    use compose::Phase as ComposePhase;
    use std::time::Duration;

    #[test]
    fn events_become_readable_lines_phases_and_timings() {
        let (log, phase, mut receiver) = LogSink::channel(LogFields::default());
        let compose_log = ComposeLog::new(log, phase);
        compose_log.observe(ComposeEvent::PhaseStarted(ComposePhase::Resolving));
        compose_log.observe(ComposeEvent::Resolved {
            packages: 20,
            download_bytes: 3 << 20,
            install_bytes: 9 << 20,
        });
        compose_log.observe(ComposeEvent::PhaseFinished {
            phase: ComposePhase::Resolving,
            duration: Duration::from_millis(1250),
        });
        compose_log.observe(ComposeEvent::Warning("ignoring previous build".into()));
        let mut lines = Vec::new();
        while let Ok(report) = receiver.try_recv() {
            lines.push(match report {
                Report::Line(line) => line.line,
                Report::Phase(phase) => format!("[phase {phase}]"),
            });
        }
        insta::assert_snapshot!(lines.join("\n"), @r"
        [phase resolving]
        Resolving packages...
        Resolved 20 packages (3.0 MiB to download at most, 9.0 MiB installed)
        Resolving packages took 1.2 s
        warning: ignoring previous build
        ");
        let phases = compose_log.into_phases();
        assert_eq!(phases.len(), 1);
        assert_eq!((phases[0].name.as_str(), phases[0].duration_ms), ("resolving", 1250));
    }

    #[test]
    fn progress_is_logged_about_every_tenth() {
        let (log, phase, mut receiver) = LogSink::channel(LogFields::default());
        let compose_log = ComposeLog::new(log, phase);
        let logged: Vec<usize> = (1..=25)
            .filter_map(|done| compose_log.step(done, 25, |state| &mut state.download_step))
            .collect();
        assert_eq!(logged, [12, 20, 32, 40, 52, 60, 72, 80, 92, 100]);
        drop(compose_log);
        assert!(receiver.try_recv().is_err());
    }
}

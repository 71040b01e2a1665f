//! The terminal display of a running compose: a progress bar on a terminal, log lines otherwise, and
//! warnings on stderr either way.

use compose::ComposeEvent;
use indicatif::{ProgressBar, ProgressStyle};

/// Draws a compose's events; [`Progress::finish`] clears the bar.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new() -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:30} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress { bar }
    }

    pub fn show(&self, event: ComposeEvent) {
        if let ComposeEvent::Warning(warning) = &event {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("warning: {warning}")),
                None => eprintln!("warning: {warning}"),
            }
            return;
        }
        let Some(bar) = &self.bar else {
            if let ComposeEvent::PhaseFinished { phase, duration } = event {
                tracing::info!(phase = phase.name(), seconds = duration.as_secs_f64(), "phase finished");
            }
            return;
        };
        match event {
            ComposeEvent::PhaseStarted(phase) => {
                bar.set_message(phase.description());
                bar.tick();
            }
            ComposeEvent::Resolved { packages, .. } => {
                bar.set_length(packages as u64);
                bar.set_position(0);
            }
            ComposeEvent::Downloaded(download) => {
                bar.set_length(download.total as u64);
                bar.set_position(download.done as u64);
            }
            ComposeEvent::Imported(import) => {
                bar.set_length(import.total as u64);
                bar.set_position(import.done as u64);
            }
            ComposeEvent::PhaseFinished { .. }
            | ComposeEvent::Encapsulated { .. }
            | ComposeEvent::Written { .. }
            | ComposeEvent::Warning(_) => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

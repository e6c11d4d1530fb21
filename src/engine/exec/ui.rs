//! What the user sees while a run goes: one spinner or bar per running stage (indicatif) on a
//! terminal, plain `[stage] …` lines otherwise (CI, pipes). Colours come from `console`, which
//! leaves them out off a terminal and when `NO_COLOR` is set.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::kind::Progress;

pub struct Ui {
    /// `Some` when stderr is a terminal.
    bars: Option<MultiProgress>,
}

impl Ui {
    /// Bars on a terminal, plain lines elsewhere.
    pub fn detect() -> Ui {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui { bars }
    }

    /// Plain lines only.
    pub fn plain() -> Ui {
        Ui { bars: None }
    }

    /// A line that stays (printed above the bars on a terminal).
    pub fn say(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None => errln!("{line}"),
        }
    }

    /// The progress display of one running stage; dropped when the stage ends.
    pub fn stage(&self, name: &str) -> StageProgress {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(spinner_style());
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            errln!("[{name}] running");
        }
        StageProgress {
            stage: name.to_string(),
            bar,
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg}")
        .expect("valid template")
}

fn bar_style(unit: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{spinner:.cyan}} {{prefix:.bold}} {{elapsed:>4}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} {{wide_msg}}"
    ))
    .expect("valid template")
    .progress_chars("=> ")
}

/// One stage's spinner/bar; implements the [`Progress`] kinds report to.
pub struct StageProgress {
    stage: String,
    bar: Option<ProgressBar>,
}

impl Progress for StageProgress {
    fn start(&self, total: u64, unit: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(0);
            bar.set_style(bar_style(unit));
        }
    }

    fn set_position(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("[{}] {line}", self.stage)),
            None => errln!("[{}] {line}", self.stage),
        }
    }
}

impl Drop for StageProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! What the user sees while a run goes: one spinner or bar per running stage (indicatif) on a
//! terminal, plain `[stage] …` lines otherwise (CI, pipes): there, a stage whose kind reports
//! progress prints where it is (`[ingest] 41% (…/… bytes)`, with the kind's status message)
//! every [`DEFAULT_PLAIN_LINE_EVERY`] at most (`WAREZ_PROGRESS_SECONDS` sets another interval),
//! unless the kind printed a line of its own meanwhile. Colours come from `console`, which
//! leaves them out off a terminal and when `NO_COLOR` is set.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::kind::Progress;

/// The least time between two plain progress lines of a stage.
pub const DEFAULT_PLAIN_LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Ui {
    /// `Some` when stderr is a terminal.
    bars: Option<MultiProgress>,
    /// The least time between two plain progress lines of a stage.
    plain_line_every: Duration,
}

impl Ui {
    /// Bars on a terminal, plain lines elsewhere.
    pub fn detect() -> Ui {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui {
            bars,
            plain_line_every: plain_line_every(),
        }
    }

    /// Plain lines only.
    pub fn plain() -> Ui {
        Ui {
            bars: None,
            plain_line_every: plain_line_every(),
        }
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
        let plain = bar.is_none().then(|| {
            errln!("[{name}] running");
            Mutex::new(PlainLines {
                every: self.plain_line_every,
                last: Instant::now(),
                total: 0,
                unit: String::new(),
                message: String::new(),
            })
        });
        StageProgress {
            stage: name.to_string(),
            bar,
            plain,
        }
    }
}

/// `WAREZ_PROGRESS_SECONDS` (a number of seconds), else [`DEFAULT_PLAIN_LINE_EVERY`].
fn plain_line_every() -> Duration {
    let Some(text) = std::env::var_os("WAREZ_PROGRESS_SECONDS") else {
        return DEFAULT_PLAIN_LINE_EVERY;
    };
    let seconds = text
        .to_str()
        .and_then(|text| text.trim().parse::<f64>().ok());
    match seconds.and_then(|seconds| Duration::try_from_secs_f64(seconds).ok()) {
        Some(every) => every,
        None => {
            errln!(
                "warning: WAREZ_PROGRESS_SECONDS={text:?} is not a number of seconds; \
                 progress lines come every {} s",
                DEFAULT_PLAIN_LINE_EVERY.as_secs()
            );
            DEFAULT_PLAIN_LINE_EVERY
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
    /// Off a terminal (no bar): what the next plain progress line says, and when.
    plain: Option<Mutex<PlainLines>>,
}

struct PlainLines {
    every: Duration,
    /// When the stage last printed a line (a progress line or one of the kind's own).
    last: Instant,
    total: u64,
    unit: String,
    message: String,
}

impl StageProgress {
    fn plain_lines(&self) -> Option<std::sync::MutexGuard<'_, PlainLines>> {
        let plain = self.plain.as_ref()?;
        Some(
            plain
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl Progress for StageProgress {
    fn start(&self, total: u64, unit: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(0);
            bar.set_style(bar_style(unit));
        }
        if let Some(mut plain) = self.plain_lines() {
            plain.total = total;
            plain.unit = unit.to_string();
        }
    }

    fn set_position(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if let Some(mut plain) = self.plain_lines() {
            if plain.total == 0 || done >= plain.total || plain.last.elapsed() < plain.every {
                return;
            }
            plain.last = Instant::now();
            let percent = done as f64 / plain.total as f64 * 100.0;
            let status = match plain.message.as_str() {
                "" => String::new(),
                message => format!(": {message}"),
            };
            errln!(
                "[{}] {percent:.0}% ({done}/{} {}){status}",
                self.stage,
                plain.total,
                plain.unit
            );
        }
    }

    fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
        if let Some(mut plain) = self.plain_lines() {
            plain.message = message.to_string();
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("[{}] {line}", self.stage)),
            None => errln!("[{}] {line}", self.stage),
        }
        if let Some(mut plain) = self.plain_lines() {
            plain.last = Instant::now();
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

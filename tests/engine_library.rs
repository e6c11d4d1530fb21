//! The engine as a library: a pipeline of a kind the test defines itself, loaded, planned and
//! run through `warez_pipe::engine` alone — no recommender kind is registered or reachable.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use warez_pipe::engine::dag::Dag;
use warez_pipe::engine::exec::{self, Interrupts, Outcome, RunOptions, Ui};
use warez_pipe::engine::fingerprint::StatCache;
use warez_pipe::engine::kind::{OutputRole, ParamSpec, Params, Registry, StageContext, StageKind};
use warez_pipe::engine::spec::{self, SpecError};
use warez_pipe::engine::store::Store;

/// How often [`Shout`] ran, across the tests of this file.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Upper-cases its input, `times` times over.
struct Shout;

impl StageKind for Shout {
    fn name(&self) -> &'static str {
        "shout"
    }
    fn version(&self) -> u32 {
        1
    }
    fn inputs(&self) -> &'static [&'static str] {
        &["text"]
    }
    fn outputs(&self) -> &'static [OutputRole] {
        &[OutputRole {
            role: "loud",
            default_name: "loud.txt",
        }]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::new("times", 1, "how many copies")]
    }
    fn check_params(&self, params: &Params) -> Result<()> {
        params.u64("times").map(drop)
    }
    fn run(&self, ctx: &StageContext) -> Result<()> {
        RUNS.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8(ctx.read_input("text")?)?;
        let times = ctx.params.u64("times")? as usize;
        std::fs::write(ctx.output("loud")?, text.to_uppercase().repeat(times))?;
        Ok(())
    }
}

/// Writes `ok`, or with `crash: 1` writes half an output and panics (a bug in a kind).
struct Crash;

impl StageKind for Crash {
    fn name(&self) -> &'static str {
        "crash"
    }
    fn version(&self) -> u32 {
        1
    }
    fn inputs(&self) -> &'static [&'static str] {
        &[]
    }
    fn outputs(&self) -> &'static [OutputRole] {
        &[OutputRole {
            role: "result",
            default_name: "result.txt",
        }]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::new("crash", 0, "1: panic half-way")]
    }
    fn check_params(&self, params: &Params) -> Result<()> {
        params.u64("crash").map(drop)
    }
    fn run(&self, ctx: &StageContext) -> Result<()> {
        if ctx.params.u64("crash")? == 0 {
            std::fs::write(ctx.output("result")?, "ok")?;
            return Ok(());
        }
        std::fs::write(ctx.output("result")?, "half")?;
        panic!("a bug in the crash kind");
    }
}

fn registry() -> Registry {
    Registry::new(vec![&Shout, &Crash])
}

const PIPELINE: &str = "name: lib\nstages:\n  shout:\n    kind: shout\n    deps: { text: in.txt }\n    params: { times: 2 }\n  count:\n    cmd: wc -c < ${model_path}/loud.txt > count.txt\n    deps: [\"${model_path}/loud.txt\"]\n    outs: [count.txt]\n";

/// Loads and runs every stage; the outcome of each, in file order.
fn run_all(project: &Path) -> Vec<Outcome> {
    let report = run_report(project);
    assert!(report.ok, "{}", report.table());
    report.stages.iter().map(|stage| stage.outcome).collect()
}

/// Loads and runs every stage.
fn run_report(project: &Path) -> exec::RunReport {
    let pipeline = spec::load(&project.join("p.yaml"), &[], None, &registry()).expect("loads");
    let dag = Dag::build(&pipeline).expect("no cycle");
    let store = Store::open(&project.join("cache")).expect("a cache");
    let stats = StatCache::in_memory();
    let all: BTreeSet<usize> = (0..pipeline.stages.len()).collect();
    let options = RunOptions {
        force: false,
        jobs: 2,
        dry_run: false,
        remote: None,
    };
    exec::run(
        &pipeline,
        &dag,
        &all,
        &store,
        &stats,
        &options,
        &Ui::plain(),
        &Interrupts::default(),
    )
    .expect("runs")
}

#[test]
fn a_kind_of_the_callers_own_runs_caches_and_cuts_off() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::write(project.join("p.yaml"), PIPELINE).unwrap();
    std::fs::write(project.join("in.txt"), "hey ").unwrap();

    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(run_all(project), [Outcome::Ran, Outcome::Ran]);
    assert_eq!(
        std::fs::read_to_string(project.join("models/lib/loud.txt")).unwrap(),
        "HEY HEY "
    );
    assert_eq!(
        std::fs::read_to_string(project.join("count.txt"))
            .unwrap()
            .trim(),
        "8"
    );

    assert_eq!(run_all(project), [Outcome::UpToDate, Outcome::UpToDate]);

    // Same letters in another case: the kind reruns, its output keeps its bytes, `count` is cut off.
    std::fs::write(project.join("in.txt"), "HEY ").unwrap();
    assert_eq!(run_all(project), [Outcome::RanSameOutputs, Outcome::CutOff]);

    // Back to the first input: restored from the run cache, not run.
    std::fs::write(project.join("in.txt"), "hey ").unwrap();
    assert_eq!(run_all(project), [Outcome::Restored, Outcome::UpToDate]);
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2);
}

#[test]
fn only_the_registered_kinds_can_be_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: lib\nstages:\n  t:\n    kind: train\n    deps: { ratings: r.bin }\n",
    )
    .unwrap();
    let error = spec::load(&file, &[], None, &registry())
        .err()
        .expect("rejected");
    assert!(matches!(error, SpecError::UnknownKind { .. }), "{error}");
    assert!(error.to_string().contains("p.yaml:4:11"), "{error}");
}

#[test]
fn a_kind_that_panics_fails_its_stage_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    let pipeline = |crash: u32| {
        format!(
            "name: lib\nstages:\n  crash:\n    kind: crash\n    params: {{ crash: {crash} }}\n  other:\n    cmd: cat in.txt > other.txt\n    deps: [in.txt]\n    outs: [other.txt]\n"
        )
    };
    std::fs::write(project.join("in.txt"), "hey ").unwrap();
    std::fs::write(project.join("p.yaml"), pipeline(0)).unwrap();
    assert_eq!(run_all(project), [Outcome::Ran, Outcome::Ran]);

    // The panic used to end its worker thread without a report: the run waited forever.
    std::fs::write(project.join("p.yaml"), pipeline(1)).unwrap();
    std::fs::write(project.join("in.txt"), "ho ").unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let runner = {
        let project = project.to_path_buf();
        std::thread::spawn(move || done.send(run_report(&project)).unwrap())
    };
    let report = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run ends (no hang) when a kind panics");
    runner.join().unwrap();
    assert!(!report.ok);
    let outcomes: Vec<Outcome> = report.stages.iter().map(|stage| stage.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Failed, Outcome::Ran],
        "{}",
        report.table()
    );
    let error = report.stages[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("a bug in the crash kind"),
        "{error}"
    );
    // The half-written output never replaced the last good one.
    assert_eq!(
        std::fs::read_to_string(project.join("models/lib/result.txt")).unwrap(),
        "ok"
    );
}

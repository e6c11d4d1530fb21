//! The report's HTML: sections in the order a reader asks their questions — what ran, how the
//! models compare, how each one trained, which one was chosen and shipped.

use std::time::{Duration, UNIX_EPOCH};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::charts::{self, Bar, Node};
use super::{Contents, Packaged};
use crate::cli::sweep::{Sweep, Variant};
use crate::engine::exec::{Outcome, StageHistory};
use crate::ml::model::metrics::TrainingMetrics;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; color: #1d232a; margin: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta, .note { color: #57606a; }
code { font: 13px ui-monospace, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.selected td { background: #fff8c5; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
svg text { font: 12px system-ui, sans-serif; fill: #1d232a; }
svg text.name { font-weight: 600; }
svg text.time, svg text.tick { fill: #57606a; font-size: 11px; }
svg text.title { font-weight: 600; }
svg.graph, svg.bars { max-width: 100%; height: auto; }
.graph .edge { fill: none; stroke: #555; stroke-width: 1.5; }
.graph .node rect { stroke: #444; stroke-width: 1; }
.ran rect { fill: #c9f2d0; } .restored rect { fill: #cfe3ff; } .fresh rect { fill: #eceff1; }
.failed rect { fill: #ffc9c9; } .skipped rect { fill: #ffe3b3; } .none rect { fill: #fff; stroke-dasharray: 4 3; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #444; border-radius: 4px; }
.legend .ran { background: #c9f2d0; } .legend .restored { background: #cfe3ff; } .legend .fresh { background: #eceff1; }
.legend .failed { background: #ffc9c9; } .legend .skipped { background: #ffe3b3; } .legend .none { background: #fff; }
.chart { border: 1px solid #e5e7eb; border-radius: 4px; background: #fff; }
.chart .grid { stroke: #eef1f4; } .chart .axis { stroke: #8c959f; }
.curves polyline { fill: none; stroke-width: 2; }
.curves .train { stroke: #0969da; fill: #0969da; } .curves .val { stroke: #cf222e; fill: #cf222e; }
.curves polyline.train, .curves polyline.val { fill: none; }
.key .train { color: #0969da; font-weight: 600; } .key .val { color: #cf222e; font-weight: 600; }
.bars rect { fill: #8fb8e8; } .bars .selected rect { fill: #e3b341; }
.bars text.value { fill: #57606a; }
"#;

pub fn render(contents: &Contents) -> Markup {
    let pipeline = contents.pipeline;
    let models: Vec<&Sweep> = contents.sweeps.iter().collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "warez-pipe report: " (pipeline.name) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Pipeline " code { (pipeline.name) } }
                p class="meta" {
                    "From " code { (pipeline.file.display()) } " · generated " (date(contents.generated))
                    " · " (pipeline.stages.len()) " stages"
                }
                (stages(contents))
                @if models.is_empty() {
                    h2 { "Models" }
                    p class="note" { "No stage of this pipeline writes metrics (metrics.json)." }
                }
                @for sweep in &models {
                    (model_section(sweep))
                }
                (selected_and_packaged(contents))
            }
        }
    }
}

/// `2026-11-30 10:22:25 UTC`.
fn date(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix))
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// The CSS class of an outcome's colour.
fn class(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        None => "none",
        Some(Outcome::Ran | Outcome::RanSameOutputs) => "ran",
        Some(Outcome::Restored | Outcome::RestoredRemote) => "restored",
        Some(Outcome::UpToDate | Outcome::CutOff | Outcome::WouldRun | Outcome::WouldRestore) => {
            "fresh"
        }
        Some(Outcome::Failed | Outcome::InputsChanged) => "failed",
        Some(Outcome::Skipped) => "skipped",
    }
}

/// How much a node's class should stand out: a failure over everything, then work done.
fn urgency(class: &str) -> u8 {
    match class {
        "failed" => 5,
        "skipped" => 4,
        "ran" => 3,
        "restored" => 2,
        "fresh" => 1,
        _ => 0,
    }
}

/// A stage's last result.
fn result_of(history: Option<&StageHistory>) -> &'static str {
    history.map_or(NO_RUN, |history| history.outcome.label())
}

/// What a stage without a recorded result shows.
const NO_RUN: &str = "no run recorded";

/// `12.30 s at 2026-…`, with the last work for a stage found up to date (empty: no result).
fn time_of(history: Option<&StageHistory>) -> String {
    let Some(history) = history else {
        return String::new();
    };
    match history.last_work {
        Some(work) if !history.outcome.worked() => format!(
            "last {} {:.2} s, {}",
            work.outcome.label(),
            work.seconds,
            date(work.at)
        ),
        _ => format!("{:.2} s, {}", history.seconds, date(history.at)),
    }
}

/// The graph and a table of every stage.
fn stages(contents: &Contents) -> Markup {
    let pipeline = contents.pipeline;
    let history = |stage: usize| contents.history.get(&pipeline.stages[stage].name);
    let nodes: Vec<Node> = contents
        .grouped
        .groups
        .iter()
        .map(|group| {
            let lines: Vec<String> = group
                .members
                .iter()
                .map(|&stage| {
                    let last = history(stage);
                    format!(
                        "{}: {} ({})",
                        pipeline.stages[stage].name,
                        result_of(last),
                        time_of(last)
                    )
                })
                .collect();
            let class = group
                .members
                .iter()
                .map(|&stage| class(history(stage).map(|h| h.outcome)))
                .max_by_key(|class| urgency(class))
                .unwrap_or("none");
            let (result, time) = if group.matrix {
                let mut counts: Vec<(&str, usize)> = Vec::new();
                for &stage in &group.members {
                    let label = result_of(history(stage));
                    match counts.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, count)) => *count += 1,
                        None => counts.push((label, 1)),
                    }
                }
                let summary: Vec<String> = counts
                    .iter()
                    .map(|(label, n)| format!("{n} {label}"))
                    .collect();
                let seconds: f64 = group
                    .members
                    .iter()
                    .filter_map(|&stage| history(stage))
                    .map(|h| h.seconds)
                    .sum();
                let latest = group
                    .members
                    .iter()
                    .filter_map(|&s| history(s))
                    .map(|h| h.at)
                    .max();
                (
                    summary.join(", "),
                    latest.map_or(String::new(), |at| {
                        format!("{seconds:.2} s in all, {}", date(at))
                    }),
                )
            } else {
                let last = history(group.members[0]);
                (result_of(last).to_string(), time_of(last))
            };
            Node {
                label: group.label(),
                result,
                time,
                class,
                title: lines.join("\n"),
            }
        })
        .collect();
    html! {
        h2 { "Stages" }
        p class="legend" {
            span class="ran" { "ran" } span class="restored" { "restored" }
            span class="fresh" { "up to date / cut off" } span class="failed" { "failed" }
            span class="skipped" { "skipped" } span class="none" { (NO_RUN) }
        }
        (charts::stage_graph(&contents.grouped, &nodes))
        table class="stages" {
            thead { tr { th { "stage" } th { "kind" } th { "last result" } th { "time" } } }
            tbody {
                @for &stage in contents.grouped.groups.iter().flat_map(|g| &g.members) {
                    @let last = history(stage);
                    tr data-stage=(pipeline.stages[stage].name)
                        data-result=(result_of(last)) {
                        td { code { (pipeline.stages[stage].name) } }
                        td { (crate::cli::sweep::kind_name(&pipeline.stages[stage])) }
                        td class=(class(last.map(|h| h.outcome))) { (result_of(last)) }
                        td { (time_of(last)) }
                    }
                }
            }
        }
    }
}

/// A metric with six decimals, `n/a` when undefined.
fn decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |value| format!("{value:.6}"))
}

/// A sweep's table, bar chart and curves; a single model's scores and curves.
fn model_section(sweep: &Sweep) -> Markup {
    let trained: Vec<(&Variant, &TrainingMetrics)> = sweep
        .variants
        .iter()
        .filter_map(|variant| Some((variant, variant.metrics.as_ref()?)))
        .collect();
    let losses = trained.iter().flat_map(|(_, metrics)| {
        metrics
            .epochs
            .iter()
            .flat_map(|epoch| [epoch.train_msle, epoch.val_msle])
    });
    let y_range = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    let bars: Vec<Bar> = sweep
        .variants
        .iter()
        .filter_map(|variant| {
            Some(Bar {
                label: variant.stage.clone(),
                value: variant.metric?,
                selected: variant.selected,
            })
        })
        .collect();
    html! {
        section class="model" data-stage=(sweep.stage) {
            @if sweep.matrix {
                h2 { "Sweep " code { (sweep.stage) } ": " (sweep.variants.len()) " variants" }
                p class="note" {
                    (trained.len()) " trained, ranked by " code { (sweep.metric) } " (" (sweep.mode.describe()) ")"
                    @if let Some(selector) = &sweep.selector {
                        ", as the select stage " code { (selector.stage) } " ranks them"
                    }
                    "."
                }
            } @else {
                h2 { "Model " code { (sweep.stage) } }
            }
            table class="variants" {
                thead {
                    tr {
                        th { "rank" }
                        @for column in &sweep.columns { th { (column) } }
                        th { (sweep.metric) } th { "val MSE" } th { "val MAE" } th { "val R²" }
                        th { "baseline MSE" } th { "epochs" } th { "rows" } th { "stage" }
                    }
                }
                tbody {
                    @for (rank, variant) in sweep.variants.iter().enumerate() {
                        tr class=[variant.selected.then_some("selected")] data-variant=(variant.stage)
                            data-metric=[variant.metric] {
                            td class="num" {
                                @if variant.metrics.is_some() { (rank + 1) } @else { "-" }
                                @if variant.selected { " ★" }
                            }
                            @for column in &sweep.columns { td { (variant.column(column)) } }
                            @if let Some(metrics) = &variant.metrics {
                                td class="num" { (decimal(variant.metric)) }
                                td class="num" { (decimal(Some(metrics.validation.mse))) }
                                td class="num" { (decimal(Some(metrics.validation.mae))) }
                                td class="num" { (decimal(metrics.validation.r2)) }
                                td class="num" { (decimal(Some(metrics.baseline.mse))) }
                                td class="num" { (metrics.epochs.len()) }
                                td class="num" { (metrics.train_rows + metrics.validation_rows) }
                            } @else {
                                td colspan="7" class="note" {
                                    @if let Some(problem) = &variant.problem { "unreadable: " (problem) }
                                    @else { "not trained yet (" code { (variant.file) } " is missing)" }
                                }
                            }
                            td { code { (variant.stage) } }
                        }
                    }
                }
            }
            @if sweep.matrix && !bars.is_empty() {
                h3 { (sweep.metric) " per variant" }
                (charts::bar_chart(&sweep.metric, &bars))
            }
            @if !trained.is_empty() {
                h3 { "Loss per epoch" }
                p class="key" {
                    span class="train" { "● training MSLE" } " (with dropout) · "
                    span class="val" { "● validation MSLE" } "; every chart has the same scale"
                }
                div class="grid" {
                    @for (variant, metrics) in &trained {
                        (charts::loss_curves(&variant.stage, &metrics.epochs, y_range))
                    }
                }
            }
        }
    }
}

/// What the select stages chose, and what the Avro files hold.
fn selected_and_packaged(contents: &Contents) -> Markup {
    let selectors: Vec<&Sweep> = contents
        .sweeps
        .iter()
        .filter(|s| s.selector.is_some())
        .collect();
    // The packaged model's training rows: the winner's, or the only model's.
    let packaged_metrics = contents
        .sweeps
        .iter()
        .flat_map(|sweep| &sweep.variants)
        .find(|variant| variant.selected)
        .or_else(|| match contents.sweeps.as_slice() {
            [only] if only.variants.len() == 1 => only.variants.first(),
            _ => None,
        })
        .and_then(|variant| variant.metrics.as_ref());
    html! {
        h2 { "Selected and packaged" }
        @if selectors.is_empty() {
            p class="note" { "No select stage: the pipeline packages the model it trains." }
        }
        @for sweep in selectors {
            @let selector = sweep.selector.as_ref().expect("filtered on a selector");
            @match (&selector.selection, &selector.unreadable) {
                (Some(selection), _) => {
                    @let winner = sweep.variants.iter().find(|v| v.stage == selection.winner);
                    p class="selection" data-winner=(selection.winner) {
                        "The select stage " code { (selector.stage) } " chose "
                        code { (selection.winner) } " from " code { (selection.from) } " by "
                        code { (selection.metric) } " (" (selection.mode.describe()) ")"
                        @if let Some(value) = winner.and_then(|w| w.metric) { ": " (decimal(Some(value))) }
                        " (" code { (selector.file) } ")."
                    }
                }
                (None, Some(problem)) => {
                    p class="note" { code { (selector.file) } " is unreadable: " (problem) }
                }
                (None, None) => {
                    p class="note" { code { (selector.stage) } " has not run yet: no " code { (selector.file) } "." }
                }
            }
        }
        @if contents.packaged.is_empty() {
            p class="note" { "No stage writes an Avro model file." }
        } @else {
            table class="packaged" {
                thead { tr { th { "file" } th { "stage" } th { "model id" } th { "customers" } th { "products" } th { "rows" } th { "graph" } } }
                tbody { @for packaged in &contents.packaged { (packaged_row(packaged, packaged_metrics)) } }
            }
        }
    }
}

fn packaged_row(packaged: &Packaged, metrics: Option<&TrainingMetrics>) -> Markup {
    html! {
        tr data-file=(packaged.file) {
            td { code { (packaged.file) } }
            td { code { (packaged.stage) } }
            @match &packaged.model {
                None => { td colspan="5" class="note" { "not written yet" } }
                Some(Err(problem)) => { td colspan="5" class="note" { "not a RecommenderModel: " (problem) } }
                Some(Ok(model)) => {
                    td data-model-id=(model.model_id) { code { (model.model_id) } }
                    td class="num" data-customers=(model.customers) { (model.customers) }
                    td class="num" data-products=(model.products) { (model.products) }
                    td class="num" {
                        @match metrics {
                            Some(metrics) => { (metrics.train_rows + metrics.validation_rows) }
                            None => { "n/a" }
                        }
                    }
                    td class="num" { (model.graph_bytes) " bytes" }
                }
            }
        }
    }
}

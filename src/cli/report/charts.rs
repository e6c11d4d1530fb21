//! The report's pictures as inline SVG: the stage graph, per-epoch loss curves, a bar chart.
//!
//! Written by hand (with maud, which escapes every text and attribute) rather than with a
//! charting crate: `plotters` needs a font backend to lay out text (`ttf` pulls in font-kit and
//! the system's fonts, `ab_glyph` a font file to ship) and draws points without the values, while
//! here every drawn value is also written as a `data-*` attribute (what the tests compare with
//! the metrics files) and the charts are a few lines and rectangles on a linear scale. The graph
//! layout (layers) is the engine's ([`Grouped`]).

use maud::{html, Markup};

use crate::engine::dag::Grouped;
use crate::ml::model::metrics::EpochLoss;

/// A stage-graph node as drawn.
pub struct Node {
    /// `train ×6 variants`.
    pub label: String,
    /// The last result (`ran`, `up to date`, `6 variants: 4 ran, 2 restored`).
    pub result: String,
    /// The time line (`12.3 s, 2026-11-30 10:22:25 UTC`).
    pub time: String,
    /// CSS class giving the colour of the result.
    pub class: &'static str,
    /// Tooltip: one line per stage of the node.
    pub title: String,
}

const NODE_WIDTH: f64 = 260.0;
const NODE_HEIGHT: f64 = 62.0;
const COLUMN_GAP: f64 = 44.0;
const ROW_GAP: f64 = 18.0;

/// The graph, one column per layer, `nodes[i]` drawn for `grouped.groups[i]`.
pub fn stage_graph(grouped: &Grouped, nodes: &[Node]) -> Markup {
    let layers = grouped
        .groups
        .iter()
        .map(|g| g.layer)
        .max()
        .map_or(0, |l| l + 1);
    let mut rows_in_layer = vec![0usize; layers];
    let mut places = Vec::with_capacity(grouped.groups.len());
    for group in &grouped.groups {
        let row = rows_in_layer[group.layer];
        rows_in_layer[group.layer] += 1;
        places.push((
            10.0 + group.layer as f64 * (NODE_WIDTH + COLUMN_GAP),
            10.0 + row as f64 * (NODE_HEIGHT + ROW_GAP),
        ));
    }
    let rows = rows_in_layer.iter().copied().max().unwrap_or(0);
    let width = 20.0 + layers as f64 * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
    let height = 20.0 + rows as f64 * (NODE_HEIGHT + ROW_GAP) - ROW_GAP;
    html! {
        svg class="graph" width=(width) height=(height) viewBox={"0 0 " (width) " " (height)}
            role="img" aria-label="stage graph" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
                    markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#555" {}
                }
            }
            @for (from, to) in &grouped.edges {
                @let (x1, y1) = (places[*from].0 + NODE_WIDTH, places[*from].1 + NODE_HEIGHT / 2.0);
                @let (x2, y2) = (places[*to].0, places[*to].1 + NODE_HEIGHT / 2.0);
                @let middle = (x1 + x2) / 2.0;
                path class="edge" marker-end="url(#arrow)"
                    d={"M " (x1) " " (y1) " C " (middle) " " (y1) ", " (middle) " " (y2) ", " (x2) " " (y2)} {}
            }
            @for (node, (x, y)) in nodes.iter().zip(&places) {
                g class={"node " (node.class)} data-stage=(node.label) data-result=(node.result) {
                    title { (node.title) }
                    rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                    text x=(x + 10.0) y=(y + 19.0) class="name" { (node.label) }
                    text x=(x + 10.0) y=(y + 37.0) { (node.result) }
                    text x=(x + 10.0) y=(y + 53.0) class="time" { (node.time) }
                }
            }
        }
    }
}

/// A linear map from values to pixels.
#[derive(Clone, Copy)]
struct Scale {
    low: f64,
    high: f64,
    from: f64,
    to: f64,
}

impl Scale {
    /// `low..high` (widened when empty) onto `from..to`.
    fn new(low: f64, high: f64, from: f64, to: f64) -> Scale {
        let (low, high) = if high > low {
            (low, high)
        } else {
            (low - 0.5, high + 0.5)
        };
        Scale {
            low,
            high,
            from,
            to,
        }
    }

    fn at(self, value: f64) -> f64 {
        self.from + (value - self.low) / (self.high - self.low) * (self.to - self.from)
    }

    /// Five evenly spaced values with labels of enough decimals to tell them apart.
    fn ticks(self) -> Vec<(f64, String)> {
        let step = (self.high - self.low) / 4.0;
        let decimals = (2.0 - step.log10().floor()).clamp(0.0, 9.0) as usize;
        (0..5)
            .map(|i| {
                let value = self.low + step * f64::from(i);
                (value, format!("{value:.decimals$}"))
            })
            .collect()
    }
}

const CURVE_WIDTH: f64 = 340.0;
const CURVE_HEIGHT: f64 = 210.0;
/// Left, right, top, bottom margins of a chart's plot area.
const MARGIN: (f64, f64, f64, f64) = (62.0, 12.0, 28.0, 34.0);

/// One variant's training and validation MSLE per epoch, on the y range shared by all
/// variants (so the charts compare at a glance).
pub fn loss_curves(title: &str, epochs: &[EpochLoss], y_range: (f64, f64)) -> Markup {
    let last = epochs.last().map_or(1, |epoch| epoch.epoch).max(2);
    let x = Scale::new(1.0, f64::from(last), MARGIN.0, CURVE_WIDTH - MARGIN.1);
    let y = Scale::new(y_range.0, y_range.1, CURVE_HEIGHT - MARGIN.3, MARGIN.2);
    let line = |value: fn(&EpochLoss) -> f64| {
        epochs
            .iter()
            .map(|epoch| format!("{},{}", x.at(f64::from(epoch.epoch)), y.at(value(epoch))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        svg class="chart curves" width=(CURVE_WIDTH) height=(CURVE_HEIGHT)
            viewBox={"0 0 " (CURVE_WIDTH) " " (CURVE_HEIGHT)} role="img"
            aria-label={"loss per epoch of " (title)} data-variant=(title) {
            text x=(MARGIN.0) y="16" class="title" { (title) }
            (axes(x, y, CURVE_WIDTH, CURVE_HEIGHT))
            @for epoch in 1..=last {
                text x=(x.at(f64::from(epoch))) y=(CURVE_HEIGHT - MARGIN.3 + 16.0)
                    class="tick" text-anchor="middle" { (epoch) }
            }
            text x=((MARGIN.0 + CURVE_WIDTH - MARGIN.1) / 2.0) y=(CURVE_HEIGHT - 4.0)
                class="tick" text-anchor="middle" { "epoch" }
            polyline class="train" points=(line(|e| e.train_msle)) {}
            polyline class="val" points=(line(|e| e.val_msle)) {}
            @for epoch in epochs {
                circle class="train" r="3" cx=(x.at(f64::from(epoch.epoch))) cy=(y.at(epoch.train_msle))
                    data-epoch=(epoch.epoch) data-train-msle=(epoch.train_msle) {
                    title { "epoch " (epoch.epoch) ": training MSLE " (epoch.train_msle) }
                }
                circle class="val" r="3" cx=(x.at(f64::from(epoch.epoch))) cy=(y.at(epoch.val_msle))
                    data-epoch=(epoch.epoch) data-val-msle=(epoch.val_msle) {
                    title { "epoch " (epoch.epoch) ": validation MSLE " (epoch.val_msle) }
                }
            }
        }
    }
}

/// The plot area's axes with the y ticks and grid lines.
fn axes(x: Scale, y: Scale, width: f64, height: f64) -> Markup {
    html! {
        @for (value, label) in y.ticks() {
            line class="grid" x1=(x.from) x2=(width - MARGIN.1) y1=(y.at(value)) y2=(y.at(value)) {}
            text x=(x.from - 6.0) y=(y.at(value) + 4.0) class="tick" text-anchor="end" { (label) }
        }
        line class="axis" x1=(x.from) x2=(x.from) y1=(MARGIN.2) y2=(height - MARGIN.3) {}
        line class="axis" x1=(x.from) x2=(width - MARGIN.1) y1=(height - MARGIN.3) y2=(height - MARGIN.3) {}
    }
}

/// One bar.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub selected: bool,
}

const BAR_SLOT: f64 = 30.0;
const BAR_LABEL_WIDTH: f64 = 330.0;
const BAR_LENGTH: f64 = 520.0;

/// Horizontal bars, one per variant. The axis starts at zero, unless the values all have one
/// sign and lie close together (as a sweep's losses do): then it starts one spread of the values
/// short of the smallest, so the differences show, and the chart says where it starts.
pub fn bar_chart(metric: &str, bars: &[Bar]) -> Markup {
    let low = bars
        .iter()
        .map(|bar| bar.value)
        .fold(f64::INFINITY, f64::min);
    let high = bars
        .iter()
        .map(|bar| bar.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let (start, end) = if low >= 0.0 {
        ((low - (high - low)).max(0.0), high)
    } else if high <= 0.0 {
        (low, (high + (high - low)).min(0.0))
    } else {
        (low, high)
    };
    let x = Scale::new(start, end, BAR_LABEL_WIDTH, BAR_LABEL_WIDTH + BAR_LENGTH);
    // Bars grow from the axis end nearest zero.
    let origin = if start > 0.0 {
        start
    } else if end < 0.0 {
        end
    } else {
        0.0
    };
    let width = BAR_LABEL_WIDTH + BAR_LENGTH + 110.0;
    let height = 48.0 + bars.len() as f64 * BAR_SLOT;
    html! {
        svg class="chart bars" width=(width) height=(height) viewBox={"0 0 " (width) " " (height)}
            role="img" aria-label={(metric) " per variant"} data-metric=(metric) {
            text x=(BAR_LABEL_WIDTH) y="16" class="title" { (metric) }
            @for (index, bar) in bars.iter().enumerate() {
                @let top = 26.0 + index as f64 * BAR_SLOT;
                @let (from, to) = (x.at(bar.value.min(origin)), x.at(bar.value.max(origin)));
                g class={"bar" @if bar.selected { " selected" }} data-variant=(bar.label) data-value=(bar.value) {
                    title { (bar.label) ": " (metric) " " (bar.value) }
                    text x=(BAR_LABEL_WIDTH - 8.0) y=(top + 16.0) text-anchor="end" {
                        @if bar.selected { "★ " } (bar.label)
                    }
                    rect x=(from) y=(top) width=((to - from).max(1.0)) height=(BAR_SLOT - 8.0) {}
                    text x=(to + 6.0) y=(top + 16.0) class="value" { (format!("{:.6}", bar.value)) }
                }
            }
            text x=(x.at(origin)) y=(height - 6.0) class="tick" text-anchor="middle" {
                @if origin == 0.0 { "0" } @else { "axis from " (format!("{origin:.6}")) }
            }
        }
    }
}

//! Chart geometry (pure): the numbers the SVG templates draw. Colours are
//! the Okabe–Ito palette, safe for the common colour-vision deficiencies.

use super::data::{Breakdown, TrendPoint};
use super::federation::{Impact, Initiator, Outcome, Receiver};
use serde::Serialize;

/// Okabe–Ito: blue, orange, bluish green, vermillion, sky blue, reddish
/// purple, yellow, black.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000",
];

/// Colour of a federation outcome.
pub fn outcome_colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Certificate => "#009E73",
        Outcome::DialbackOnly => "#E69F00",
        Outcome::Fails => "#D55E00",
        Outcome::Unknown => "#BBBBBB",
    }
}

/// Human name of a federation outcome.
pub fn outcome_title(o: Outcome) -> &'static str {
    match o {
        Outcome::Certificate => "certificate",
        Outcome::DialbackOnly => "dialback only",
        Outcome::Fails => "fails",
        Outcome::Unknown => "unknown",
    }
}

/// Width of the plot area of every chart (px, the SVG scales).
const PLOT: f64 = 260.0;
/// Left margin for the category labels (about 38 characters at 12 px).
const LEFT: f64 = 250.0;
/// Width of every chart's view box: labels, plot, value text.
pub const WIDTH: f64 = 640.0;

/// Approximate advance of one character of 11.5 px legend text.
const LEGEND_CHAR: f64 = 6.6;

/// Places legend entries left to right, wrapping before `WIDTH`, from
/// `(10, y0)`, one 18 px row per line; returns each entry's (x, y) and the
/// number of rows used. Widths come from the labels, so no two overlap.
fn flow_legend(labels: &[&str], y0: f64) -> (Vec<(f64, f64)>, usize) {
    let (mut x, mut row) = (10.0, 0usize);
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        let w = 16.0 + LEGEND_CHAR * l.chars().count() as f64 + 18.0;
        if x > 10.0 && x + w > WIDTH - 10.0 {
            x = 10.0;
            row += 1;
        }
        out.push((x, y0 + 18.0 * row as f64));
        x += w;
    }
    (out, row + 1)
}

fn px(x: f64) -> String {
    format!("{x:.1}")
}

/// One bar.
#[derive(Debug, Serialize)]
pub struct Bar {
    label: String,
    y: String,
    width: String,
    lo: Option<String>,
    hi: Option<String>,
    colour: &'static str,
    text: String,
    text_x: String,
}

/// A horizontal bar chart of one breakdown, with 95% intervals.
#[derive(Debug, Serialize)]
pub struct BarChart {
    id: String,
    title: String,
    desc: String,
    axis: String,
    height: String,
    axis_y: String,
    left: String,
    plot: String,
    ticks: Vec<(String, String)>,
    bars: Vec<Bar>,
}

/// Row height of bar charts.
const ROW: f64 = 24.0;

fn ticks() -> Vec<(String, String)> {
    (0..=4)
        .map(|k| (px(LEFT + PLOT * f64::from(k) / 4.0), format!("{}", k * 25)))
        .collect()
}

/// The bar chart of a breakdown.
pub fn bar_chart(b: &Breakdown) -> BarChart {
    let bars: Vec<Bar> = b
        .shares
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let w = PLOT * s.figure.percent.unwrap_or(0.0) / 100.0;
            Bar {
                label: s.value.clone(),
                y: px(10.0 + ROW * k as f64),
                width: px(w),
                lo: s.figure.ci95_low.map(|v| px(LEFT + PLOT * v / 100.0)),
                hi: s.figure.ci95_high.map(|v| px(LEFT + PLOT * v / 100.0)),
                colour: PALETTE[k % 6],
                text: format!("{} ({})", s.figure.percent_text(), s.figure.count),
                text_x: px(LEFT + PLOT + 8.0),
            }
        })
        .collect();
    let h = 10.0 + ROW * bars.len().max(1) as f64;
    BarChart {
        id: b.key.replace('.', "-"),
        title: b.title.clone(),
        desc: format!(
            "Horizontal bars: share of {} ({} domains) per value, in percent, with 95% Wilson intervals as whiskers.",
            b.population, b.denominator
        ),
        axis: format!("% of {} (n = {})", b.population, b.denominator),
        height: px(h + 42.0),
        axis_y: px(h + 4.0),
        left: px(LEFT),
        plot: px(PLOT),
        ticks: ticks(),
        bars,
    }
}

/// One segment of a stacked bar.
#[derive(Debug, Serialize)]
pub struct Segment {
    x: String,
    width: String,
    colour: &'static str,
    title: String,
}

/// One stacked bar.
#[derive(Debug, Serialize)]
pub struct Stack {
    label: String,
    y: String,
    segments: Vec<Segment>,
}

/// A stacked 100% bar chart: one bar per breakdown, segments per value.
#[derive(Debug, Serialize)]
pub struct StackedChart {
    id: String,
    title: String,
    desc: String,
    axis: String,
    height: String,
    axis_y: String,
    left: String,
    plot: String,
    ticks: Vec<(String, String)>,
    stacks: Vec<Stack>,
    legend: Vec<(String, String, &'static str, String)>,
}

/// A stacked chart of breakdowns sharing their values (`order`).
pub fn stacked_chart(
    id: &str,
    title: &str,
    axis: &str,
    rows: &[(String, &Breakdown)],
    order: &[&str],
) -> StackedChart {
    let colour = |v: &str| PALETTE[order.iter().position(|o| *o == v).unwrap_or(7) % 8];
    let stacks = rows
        .iter()
        .enumerate()
        .map(|(k, (label, b))| {
            let mut x = LEFT;
            let segments = b
                .shares
                .iter()
                .map(|s| {
                    let w = PLOT * s.figure.percent.unwrap_or(0.0) / 100.0;
                    let seg = Segment {
                        x: px(x),
                        width: px(w),
                        colour: colour(&s.value),
                        title: format!(
                            "{label}: {} {} of {}",
                            s.value,
                            s.figure.percent_text(),
                            b.denominator
                        ),
                    };
                    x += w;
                    seg
                })
                .collect();
            Stack {
                label: format!("{label} (n = {})", b.denominator),
                y: px(10.0 + 34.0 * k as f64),
                segments,
            }
        })
        .collect::<Vec<_>>();
    let h = 10.0 + 34.0 * stacks.len().max(1) as f64;
    let names: Vec<String> = order.iter().map(|v| v.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (places, rows) = flow_legend(&refs, h + 52.0);
    let legend = order
        .iter()
        .zip(places)
        .map(|(v, (x, y))| (px(x), px(y), colour(v), v.to_string()))
        .collect();
    StackedChart {
        id: id.into(),
        title: title.into(),
        desc: format!("Stacked bars, each 100 %: {title}, the share of each value in percent."),
        axis: axis.into(),
        height: px(h + 50.0 + 18.0 * rows as f64),
        axis_y: px(h),
        left: px(LEFT),
        plot: px(PLOT),
        ticks: ticks(),
        stacks,
        legend,
    }
}

/// One matrix cell.
#[derive(Debug, Serialize)]
pub struct MatrixCell {
    x: String,
    y: String,
    colour: &'static str,
    text: String,
    title: String,
}

/// The federation matrix: initiator classes (rows) × receiver classes
/// (columns), each cell coloured by its outcome, labelled with its pairs.
#[derive(Debug, Serialize)]
pub struct Matrix {
    id: String,
    title: String,
    desc: String,
    width: String,
    height: String,
    cell_w: String,
    cells: Vec<MatrixCell>,
    rows: Vec<(String, String)>,
    columns: Vec<(String, String, String)>,
    legend: Vec<(String, &'static str, &'static str)>,
}

/// The matrix of an impact.
pub fn matrix(id: &str, title: &str, impact: &Impact) -> Matrix {
    let recv: Vec<Receiver> = Receiver::ALL
        .iter()
        .copied()
        .filter(|r| impact.cells.iter().any(|c| c.receiver == *r))
        .collect();
    let (cw, ch, left, top) = (128.0, 40.0, 180.0, 70.0);
    let cells = impact
        .cells
        .iter()
        .filter_map(|c| {
            let col = recv.iter().position(|r| *r == c.receiver)?;
            let row = Initiator::ALL.iter().position(|i| *i == c.initiator)?;
            Some(MatrixCell {
                x: px(left + cw * col as f64),
                y: px(top + ch * row as f64),
                colour: outcome_colour(c.outcome),
                text: c.pairs.to_string(),
                title: format!(
                    "{} → {}: {} pairs, {}",
                    c.initiator.title(),
                    c.receiver.title(),
                    c.pairs,
                    outcome_title(c.outcome)
                ),
            })
        })
        .collect();
    Matrix {
        id: id.into(),
        title: title.into(),
        desc: format!(
            "Matrix: rows are the initiating domain's outbound chain class, columns the receiving domain's acceptance class; each cell is coloured by how s2s authenticates and labelled with its number of ordered pairs ({} in all).",
            impact.pairs
        ),
        width: px(left + cw * recv.len().max(1) as f64 + 10.0),
        height: px(top + ch * 3.0 + 40.0),
        cell_w: px(cw),
        cells,
        rows: Initiator::ALL
            .iter()
            .enumerate()
            .map(|(k, i)| {
                (
                    px(top + ch * k as f64 + ch / 2.0 + 4.0),
                    i.title().to_string(),
                )
            })
            .collect(),
        columns: recv
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let t = r.title();
                let (a, b) = t.split_once(", ").unwrap_or((&t, ""));
                (
                    px(left + cw * k as f64 + cw / 2.0),
                    a.to_string(),
                    b.to_string(),
                )
            })
            .collect(),
        legend: {
            let titles: Vec<&'static str> =
                Outcome::ALL.iter().map(|o| outcome_title(*o)).collect();
            let (places, _) = flow_legend(&titles, 0.0);
            Outcome::ALL
                .iter()
                .zip(places)
                .map(|(o, (x, _))| (px(x), outcome_colour(*o), outcome_title(*o)))
                .collect()
        },
    }
}

/// One line of a line chart.
#[derive(Debug, Serialize)]
pub struct Line {
    name: String,
    colour: &'static str,
    points: String,
    dots: Vec<(String, String, String)>,
}

/// The trend chart: one line per headline figure across crawls, with
/// methodology changes marked.
#[derive(Debug, Serialize)]
pub struct LineChart {
    id: String,
    title: String,
    desc: String,
    lines: Vec<Line>,
    /// Legend entries: (x, y) of each line's key, and the chart's height.
    legend: Vec<(String, String)>,
    height: String,
    xs: Vec<(String, String)>,
    marks: Vec<(String, String)>,
    yticks: Vec<(String, String)>,
}

/// The trend chart of the crawls.
pub fn trend_chart(points: &[TrendPoint]) -> LineChart {
    let (left, w, top, h) = (60.0, 480.0, 20.0, 200.0);
    let n = points.len();
    let x = |k: usize| {
        if n <= 1 {
            left + w / 2.0
        } else {
            left + w * k as f64 / (n - 1) as f64
        }
    };
    let y = |p: f64| top + h - h * p / 100.0;
    type Pick = fn(&TrendPoint) -> Option<f64>;
    let series: [(&str, Pick); 5] = [
        ("c2s STARTTLS required", |t| t.c2s_starttls_required.percent),
        ("s2s STARTTLS required", |t| t.s2s_starttls_required.percent),
        ("s2s leaf server-only", |t| t.s2s_server_only.percent),
        ("s2s chain passes client purpose", |t| {
            t.s2s_client_purpose_ok.percent
        }),
        ("accepts server-only", |t| t.accepts_server_only.percent),
    ];
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, (name, pick))| {
            let dots: Vec<(String, String, String)> = points
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    pick(t).map(|p| (px(x(i)), px(y(p)), format!("{} {name}: {p:.1} %", t.label)))
                })
                .collect();
            Line {
                name: name.to_string(),
                colour: PALETTE[k],
                points: dots
                    .iter()
                    .map(|(a, b, _)| format!("{a},{b}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots,
            }
        })
        .collect();
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    let (places, rows) = flow_legend(&names, 276.0);
    let legend = places.iter().map(|(x, y)| (px(*x), px(*y))).collect();
    LineChart {
        legend,
        height: px(276.0 + 18.0 * rows as f64),
        id: "trends".into(),
        title: "Headline figures across crawls".into(),
        desc: "Lines: each headline share in percent (y) per crawl in start order (x); dashed verticals mark a change of methodology.".into(),
        lines,
        xs: points.iter().enumerate().map(|(i, t)| (px(x(i)), t.label.clone())).collect(),
        marks: points
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.methodology_change.as_ref().map(|c| (px(x(i)), c.clone())))
            .collect(),
        yticks: (0..=4).map(|k| (px(y(25.0 * f64::from(k))), format!("{}", 25 * k))).collect(),
    }
}

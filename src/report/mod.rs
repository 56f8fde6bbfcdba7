//! `xmpp-survey report`: turns one crawl (and the history of all crawls)
//! into files researchers can publish as they are (MEASUREMENTS §4):
//! `index.html` (self-contained, inline SVG charts), `report.md`,
//! `summary.json` (docs/report-json-schema.md) and CSV files streamed from
//! the database.
//!
//! - [`stats`]: figures and 95% Wilson intervals (pure).
//! - [`federation`]: federation impact from class counts (pure).
//! - [`seeds`]: the CA cut-over data file.
//! - [`data`]: the SQL aggregates into [`data::ReportData`].
//! - [`charts`]: chart geometry (pure); the templates in `templates/` draw it.
//! - [`csv_out`]: the streamed CSV files.
//!
//! Two runs on the same crawl write byte-identical files apart from the
//! generation timestamp: every query is ordered, every map sorted.

pub mod charts;
pub mod csv_out;
pub mod data;
mod error;
pub mod federation;
pub mod seeds;
pub mod stats;

pub use error::ReportError;

use data::{Breakdown, ReportData};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to report on and where.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Crawl label; `None` or `latest` for the latest started.
    pub crawl: Option<String>,
    /// Another crawl's label: list the domains whose verdict changed.
    pub compare: Option<String>,
    /// Output folder; default `<reports_dir>/<label>/`.
    pub out: Option<PathBuf>,
    /// The parent of the default output folder; default `reports`.
    pub reports_dir: Option<PathBuf>,
    /// CA cut-over file; default the repository's `seeds/ca-cutover.toml`
    /// as built in.
    pub seeds: Option<PathBuf>,
    /// The generation timestamp written in the files (RFC 3339).
    pub generated_at: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The folder.
    pub dir: PathBuf,
    /// The crawl's label.
    pub label: String,
    /// Rows of each CSV file.
    pub csv_rows: Vec<(String, u64)>,
}

/// `reports/<label>` with the label made safe as one path component.
pub fn default_dir(label: &str) -> PathBuf {
    Path::new("reports").join(label_dir(label))
}

/// The label made safe as one path component (the report's folder name).
pub fn label_dir(label: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Collects the data and writes every file.
pub async fn write_report(pool: &PgPool, opts: &ReportOptions) -> Result<Written, ReportError> {
    let crawl = data::find_crawl(pool, opts.crawl.as_deref()).await?;
    let compare = match &opts.compare {
        Some(l) => Some(data::find_crawl(pool, Some(l)).await?),
        None => None,
    };
    let seeds_text = match &opts.seeds {
        Some(p) => std::fs::read_to_string(p).map_err(io(p))?,
        None => seeds::BUILT_IN.to_string(),
    };
    let seeds = seeds::Seeds::parse(&seeds_text)?;
    let dir = match (&opts.out, &opts.reports_dir) {
        (Some(out), _) => out.clone(),
        (None, Some(parent)) => parent.join(label_dir(&crawl.label)),
        (None, None) => default_dir(&crawl.label),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;

    // The CSV files stream from their own connections while the figures
    // are computed (docs/benchmarks.md, "report").
    let csvs = async {
        let (domains, endpoints, certificates, domain_changes, changes) = tokio::try_join!(
            csv_out::write(pool, &csv_out::DOMAINS, crawl.id, &dir),
            csv_out::write(pool, &csv_out::ENDPOINTS, crawl.id, &dir),
            csv_out::write(pool, &csv_out::CERTIFICATES, crawl.id, &dir),
            csv_out::write(pool, &csv_out::DOMAIN_CHANGES, crawl.id, &dir),
            async {
                match &compare {
                    Some(other) => csv_out::stream(
                        pool,
                        &data::changes_sql(),
                        &[crawl.id, other.id],
                        &dir.join("changes.csv"),
                        ["domain", "field", "old", "new"],
                    )
                    .await
                    .map(Some),
                    None => Ok(None),
                }
            },
        )?;
        let mut rows = vec![
            (csv_out::DOMAINS.file.to_string(), domains),
            (csv_out::ENDPOINTS.file.to_string(), endpoints),
            (csv_out::CERTIFICATES.file.to_string(), certificates),
            (csv_out::DOMAIN_CHANGES.file.to_string(), domain_changes),
        ];
        rows.extend(changes.map(|n| ("changes.csv".to_string(), n)));
        Ok::<_, ReportError>(rows)
    };
    let (d, csv_rows) = tokio::try_join!(
        data::collect(
            pool,
            &crawl,
            seeds,
            compare.as_ref(),
            opts.generated_at.clone(),
        ),
        csvs,
    )?;

    let json = serde_json::to_string_pretty(&d)? + "\n";
    write(&dir.join("summary.json"), &json)?;
    let (html, md) = render(&d)?;
    write(&dir.join("index.html"), &html)?;
    write(&dir.join("report.md"), &md)?;
    Ok(Written {
        dir,
        label: crawl.label,
        csv_rows,
    })
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(io(path))
}

#[derive(Serialize)]
struct FederationView {
    title: &'static str,
    impact: federation::Impact,
    rows: Vec<(&'static str, stats::Figure)>,
    matrix: charts::Matrix,
}

fn field(v: &minijinja::Value, name: &str) -> Option<f64> {
    v.get_attr(name).ok().and_then(|x| f64::try_from(x).ok())
}

/// Renders `index.html` and `report.md` from the data (pure).
pub fn render(d: &ReportData) -> Result<(String, String), ReportError> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", include_str!("../../templates/report.html"))?;
    env.add_template("report.md", include_str!("../../templates/report.md"))?;
    env.add_function("pct", |v: minijinja::Value| match field(&v, "percent") {
        Some(p) => format!("{p:.1} %"),
        None => "–".to_string(),
    });
    env.add_function("ci", |v: minijinja::Value| {
        match (field(&v, "ci95_low"), field(&v, "ci95_high")) {
            (Some(lo), Some(hi)) => format!("{lo:.1}–{hi:.1} %"),
            _ => "–".to_string(),
        }
    });

    let mut b: BTreeMap<String, &Breakdown> =
        d.breakdowns.iter().map(|x| (x.key.clone(), x)).collect();
    b.insert(d.issuers.key.clone(), &d.issuers);
    let mut chart_map: BTreeMap<String, charts::BarChart> = b
        .iter()
        .map(|(k, x)| (k.clone(), charts::bar_chart(x)))
        .collect();
    chart_map.insert(
        "acceptance".into(),
        charts::bar_chart(&d.acceptance.verdicts),
    );
    let starttls_chart = charts::stacked_chart(
        "starttls",
        "STARTTLS offer, c2s and s2s",
        "% of domains whose service answered",
        &[
            ("c2s".to_string(), b["c2s.starttls"]),
            ("s2s".to_string(), b["s2s.starttls"]),
        ],
        &["required", "optional", "absent", "not_seen"],
    );
    // Acceptance by software as 100% stacks of verdicts.
    let software: Vec<(String, Breakdown)> = d
        .acceptance
        .by_software
        .iter()
        .map(|r| {
            let label = format!("{} {}", r.software, r.version).trim().to_string();
            let total = r.domains;
            let shares = data::ACCEPTANCE
                .iter()
                .filter_map(|v| r.verdicts.get(*v).map(|n| (v.to_string(), *n)))
                .chain(
                    r.verdicts
                        .iter()
                        .filter(|(k, _)| !data::ACCEPTANCE.contains(&k.as_str()))
                        .map(|(k, n)| (k.clone(), *n))
                        .collect::<Vec<_>>(),
                )
                .map(|(v, n)| data::Share {
                    value: v,
                    figure: stats::Figure::new(n, total),
                })
                .collect();
            (
                label.clone(),
                Breakdown {
                    key: label,
                    title: String::new(),
                    population: String::new(),
                    denominator: total,
                    shares,
                },
            )
        })
        .collect();
    let software_rows: Vec<(String, &Breakdown)> =
        software.iter().map(|(l, x)| (l.clone(), x)).collect();
    let software_chart = charts::stacked_chart(
        "software",
        "Acceptance verdict by server software and version",
        "% of the software's domains",
        &software_rows,
        data::ACCEPTANCE,
    );
    let fed = |title: &'static str, id: &str, f: &data::ImpactFigures| FederationView {
        title,
        impact: f.impact.clone(),
        rows: federation::Outcome::ALL
            .iter()
            .map(|o| (charts::outcome_title(*o), f.shares[o]))
            .collect(),
        matrix: charts::matrix(id, title, &f.impact),
    };
    let federation = [
        fed("Now", "fed-now", &d.federation.now),
        fed(
            "Once every certificate has renewed as server-only",
            "fed-renewed",
            &d.federation.renewed,
        ),
    ];
    let s2s = |k: &str, v: &str| {
        b[k].shares
            .iter()
            .find(|s| s.value == v)
            .map_or(stats::Figure::new(0, b[k].denominator), |s| s.figure)
    };
    let accepts = d
        .acceptance
        .verdicts
        .shares
        .iter()
        .find(|s| s.value == "accepts_server_only")
        .map_or(
            stats::Figure::new(0, d.acceptance.verdicts.denominator),
            |s| s.figure,
        );
    let headline = vec![
        ("s2s STARTTLS required", s2s("s2s.starttls", "required")),
        (
            "s2s chain passes client purpose",
            s2s("s2s.client_purpose", "ok"),
        ),
        ("accept server-only peers", accepts),
        (
            "s2s pairs failing once renewed",
            d.federation.renewed.shares[&federation::Outcome::Fails],
        ),
    ];
    let settings = serde_json::to_string_pretty(&serde_json::json!({
        "config": d.methodology.settings,
        "sources": d.methodology.sources,
    }))?;
    let keys: Vec<&String> = b.keys().filter(|k| *k != "acceptance").collect();
    let ctx = minijinja::context! {
        d => d,
        b => b,
        charts => chart_map,
        starttls_chart => starttls_chart,
        software_chart => software_chart,
        federation => federation,
        trend => charts::trend_chart(&d.trends),
        headline => headline,
        settings => settings,
        keys => keys,
    };
    let html = env.get_template("report.html")?.render(&ctx)?;
    let md = env.get_template("report.md")?.render(&ctx)?;
    Ok((html, md))
}

//! Everything a report shows, computed by SQL aggregates over one crawl
//! (GROUP BY, never a scan of rows into memory) into [`ReportData`].

use super::ReportError;
use super::federation::{self, Impact, Initiator, Joint, Receiver};
use super::seeds::Seeds;
use super::stats::Figure;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeMap;
use time::Date;

/// Version of `summary.json` (docs/report-json-schema.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Service statuses of a service that answered (an XMPP peer talked).
pub const ANSWERED: &str = "('tls_ok','no_tls','tls_failed','stream_failed')";

/// One report: methodology and every figure.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the report was generated (RFC 3339): the only value that
    /// differs between two runs on the same crawl.
    pub generated_at: String,
    /// How the crawl was measured.
    pub methodology: Methodology,
    /// Domains in, tested, not tested, unreachable.
    pub domains: DomainCounts,
    /// Every breakdown, by key (`c2s.starttls`, `s2s.eku_class`, ...).
    pub breakdowns: Vec<Breakdown>,
    /// Acceptance of server-only certificates.
    pub acceptance: Acceptance,
    /// Issuer organisation of the primary s2s certificate.
    pub issuers: Breakdown,
    /// Certificates that will renew as server-only, per CA and month.
    pub renewals: Vec<Renewal>,
    /// Federation impact, now and once renewed.
    pub federation: Federation,
    /// Headline figures of every crawl in the database.
    pub trends: Vec<TrendPoint>,
    /// Domains whose verdict changed since `--compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// Per-domain changes since the previous finished crawl of the same
    /// vantage (`domain_changes`, filled when this crawl finished); absent
    /// when there is no previous crawl or this one is not finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<CrawlChanges>,
}

/// Most change rows listed in the report's table (all of them are in
/// `domain_changes.csv`).
pub const CHANGES_LISTED: usize = 200;

/// The per-domain changes of a crawl (issue 12).
#[derive(Debug, Clone, Serialize)]
pub struct CrawlChanges {
    /// The previous crawl's label.
    pub previous: String,
    /// Change rows.
    pub total: u64,
    /// Domains with at least one change.
    pub domains: u64,
    /// Rows by kind, in the order of `ChangeKind` (kinds without rows omitted).
    pub by_kind: Vec<KindCount>,
    /// The first [`CHANGES_LISTED`] rows, by domain, kind and scope.
    pub rows: Vec<crate::store::changes::ChangeRow>,
}

/// How many changes of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindCount {
    /// The kind (`verdict`, `eku_class`, ...).
    pub kind: &'static str,
    /// Rows.
    pub count: u64,
}

/// Reads a crawl's `domain_changes` (`None`: no rows and no previous crawl).
async fn crawl_changes(
    pool: &PgPool,
    crawl: &CrawlRef,
) -> Result<Option<CrawlChanges>, ReportError> {
    use crate::model::change::ChangeKind;
    use crate::model::names::Named;
    let rows = crate::store::changes::crawl_changes(pool, crawl.id).await?;
    let previous: Option<String> = match rows.first() {
        Some(r) => Some(r.previous_crawl.clone()),
        None => {
            sqlx::query_scalar(
                "SELECT p.label FROM crawls p JOIN crawls c ON c.id = $1
              WHERE c.status = 'finished' AND p.vantage = c.vantage
                AND p.status = 'finished' AND p.id < c.id
              ORDER BY p.id DESC LIMIT 1",
            )
            .bind(crawl.id)
            .fetch_optional(pool)
            .await?
        }
    };
    let Some(previous) = previous else {
        return Ok(None);
    };
    let by_kind = <ChangeKind as strum::VariantArray>::VARIANTS
        .iter()
        .map(|k| KindCount {
            kind: k.as_str(),
            count: rows.iter().filter(|r| r.kind == *k).count() as u64,
        })
        .filter(|k| k.count > 0)
        .collect();
    let domains = rows
        .iter()
        .map(|r| r.domain.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    Ok(Some(CrawlChanges {
        previous,
        total: rows.len() as u64,
        domains,
        by_kind,
        rows: rows.into_iter().take(CHANGES_LISTED).collect(),
    }))
}

/// The conditions of the crawl.
#[derive(Debug, Clone, Serialize)]
pub struct Methodology {
    /// Crawl label.
    pub label: String,
    /// running, finished, interrupted, failed.
    pub status: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339), if ended.
    pub finished_at: Option<String>,
    /// Where the crawler ran from.
    pub vantage: String,
    /// Probe identity (`from=` of the acceptance probe); none without it.
    pub probe_domain: Option<String>,
    /// EKU class of each probe certificate, by role.
    pub probe_certificates: Vec<(String, String)>,
    /// webpki-roots version.
    pub roots_version: String,
    /// xmpp-survey version and revision that measured.
    pub software_version: String,
    /// xmpp-survey version and revision that wrote the report.
    pub report_software_version: String,
    /// Domain sources as given.
    pub sources: Value,
    /// The crawl's settings (`crawls.config`).
    pub settings: Value,
    /// The CA cut-over data used (with sources).
    pub cutover_seeds: Seeds,
}

/// Where the crawl's domains ended.
#[derive(Debug, Clone, Serialize)]
pub struct DomainCounts {
    /// Domains in the crawl's queue.
    pub queued: u64,
    /// Domains with a stored result.
    pub tested: u64,
    /// Domains not tested (given up, excluded or opted out), not failures.
    pub not_tested: u64,
    /// Of those, opted out.
    pub opted_out: u64,
    /// Still queued or leased (a crawl not finished).
    pub pending: u64,
    /// Tested, but neither c2s nor s2s answered (no address, unreachable,
    /// blocked, not offered): counted apart, never as failures.
    pub unreachable: u64,
    /// Tested and s2s answered: the population of the s2s figures.
    pub s2s_answered: u64,
    /// Tested and c2s answered.
    pub c2s_answered: u64,
}

/// One value of a breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    /// The value (`required`, `TLSv1.3`, ...).
    pub value: String,
    /// Its figure.
    #[serde(flatten)]
    pub figure: Figure,
}

/// A distribution of one column over a stated population.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Stable key (`s2s.starttls`).
    pub key: String,
    /// Title.
    pub title: String,
    /// The population (the denominator of every share).
    pub population: String,
    /// Its size.
    pub denominator: u64,
    /// Values, in a fixed order.
    pub shares: Vec<Share>,
}

/// Acceptance figures (MEASUREMENTS §3, §4).
#[derive(Debug, Clone, Serialize)]
pub struct Acceptance {
    /// Verdicts of domains the probe reached (not run and unreachable
    /// apart).
    pub verdicts: Breakdown,
    /// Domains whose probe did not run.
    pub not_run: u64,
    /// Domains whose s2s was unreachable to the probe.
    pub unreachable: u64,
    /// Evidence over the same population.
    pub evidence: Evidence,
    /// By server software and version (XEP-0092).
    pub by_software: Vec<SoftwareRow>,
}

/// Evidence counts behind the verdicts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Evidence {
    /// EXTERNAL refused the server-only certificate with the text
    /// "unsupported certificate purpose".
    pub external_unsupported_purpose: Figure,
    /// Both probe certificates refused: about trust, not the EKU.
    pub refused_for_trust: Figure,
    /// EXTERNAL not offered.
    pub external_not_offered: Figure,
    /// The dialback attempt with the server-only certificate succeeded.
    pub dialback_works: Figure,
}

/// Acceptance of one software version.
#[derive(Debug, Clone, Serialize)]
pub struct SoftwareRow {
    /// Software name (`unknown` when not answered).
    pub software: String,
    /// Version (empty when not answered).
    pub version: String,
    /// Domains.
    pub domains: u64,
    /// Verdict counts.
    pub verdicts: BTreeMap<String, u64>,
    /// Evidence counts (same keys as [`Evidence`]).
    pub evidence: BTreeMap<String, u64>,
}

/// Domains whose s2s certificate will renew as server-only in a month.
#[derive(Debug, Clone, Serialize)]
pub struct Renewal {
    /// CA (seeds file).
    pub ca: String,
    /// The CA's renewal cut-over date used.
    pub cutover: String,
    /// First day of the month.
    pub month: String,
    /// Domains.
    pub domains: u64,
}

/// Federation impact.
#[derive(Debug, Clone, Serialize)]
pub struct Federation {
    /// Domains by class pair (the input).
    pub classes: Vec<ClassCount>,
    /// Now.
    pub now: ImpactFigures,
    /// Once every certificate has renewed as server-only.
    pub renewed: ImpactFigures,
    /// What the estimate assumes.
    pub assumptions: Vec<String>,
}

/// Domains in one (initiator, receiver) class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassCount {
    /// Initiator class.
    pub initiator: Initiator,
    /// Receiver class.
    pub receiver: Receiver,
    /// Domains.
    pub domains: u64,
}

/// An [`Impact`] with its shares.
#[derive(Debug, Clone, Serialize)]
pub struct ImpactFigures {
    /// Pair counts.
    #[serde(flatten)]
    pub impact: Impact,
    /// Share of pairs by outcome (denominator: all pairs).
    pub shares: BTreeMap<federation::Outcome, Figure>,
}

impl ImpactFigures {
    fn new(impact: Impact) -> Self {
        let shares = impact
            .by_outcome
            .iter()
            .map(|(&o, &n)| (o, Figure::new(n, impact.pairs)))
            .collect();
        Self { impact, shares }
    }
}

/// The headline figures of one crawl.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    /// Crawl label.
    pub label: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Domains tested.
    pub tested: u64,
    /// c2s STARTTLS required, of c2s answered.
    pub c2s_starttls_required: Figure,
    /// s2s STARTTLS required, of s2s answered.
    pub s2s_starttls_required: Figure,
    /// s2s leaf server-only, of s2s TLS ok.
    pub s2s_server_only: Figure,
    /// s2s chain passes the client purpose check, of s2s TLS ok.
    pub s2s_client_purpose_ok: Figure,
    /// Accepts server-only, of verdicts.
    pub accepts_server_only: Figure,
    /// What changed in the methodology since the previous crawl.
    pub methodology_change: Option<String>,
}

/// Verdict changes against another crawl.
#[derive(Debug, Clone, Serialize)]
pub struct Compare {
    /// The other crawl.
    pub label: String,
    /// Domains tested in both.
    pub common: u64,
    /// Changed (domain, field) rows.
    pub changed: u64,
    /// The first changes, by domain (all of them in `changes.csv`).
    pub first: Vec<Change>,
}

/// One changed verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Domain.
    pub domain: String,
    /// Column.
    pub field: String,
    /// Value in the compared crawl.
    pub old: Option<String>,
    /// Value in this crawl.
    pub new: Option<String>,
}

/// The crawl a report is about.
#[derive(Debug, Clone)]
pub struct CrawlRef {
    /// Id.
    pub id: i64,
    /// Label.
    pub label: String,
}

/// Finds a crawl by label, or the latest started (`None` or `latest`).
pub async fn find_crawl(pool: &PgPool, label: Option<&str>) -> Result<CrawlRef, ReportError> {
    let row: Option<(i64, String)> = match label {
        None | Some("latest") => {
            sqlx::query_as("SELECT id, label FROM crawls ORDER BY started_at DESC, id DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
        }
        Some(l) => {
            sqlx::query_as("SELECT id, label FROM crawls WHERE label = $1")
                .bind(l)
                .fetch_optional(pool)
                .await?
        }
    };
    let (id, label2) = row.ok_or_else(|| ReportError::NoCrawl(label.unwrap_or("latest").into()))?;
    Ok(CrawlRef { id, label: label2 })
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One dimension of [`DIMENSIONS`]: key, title, population text, the SQL
/// value expression, the SQL population filter, the display order.
struct Dim {
    key: &'static str,
    title: &'static str,
    population: &'static str,
    value: String,
    filter: String,
    order: &'static [&'static str],
}

const STATUS: &[&str] = &[
    "tls_ok",
    "no_tls",
    "tls_failed",
    "stream_failed",
    "unreachable",
    "blocked",
    "not_offered",
    "no_address",
];
const STARTTLS: &[&str] = &["required", "optional", "absent", "not_seen"];
const VERDICTS: &[&str] = &[
    "trusted",
    "expired",
    "not_yet_valid",
    "self_signed",
    "unknown_issuer",
    "name_mismatch",
    "bad_signature",
    "invalid",
    "no_certificate",
    "none",
];
const EKU: &[&str] = &[
    "server_only",
    "client_and_server",
    "client_only",
    "any",
    "other",
    "none",
];
const PURPOSE: &[&str] = &[
    "ok",
    "leaf_lacks_client_auth",
    "intermediate_lacks_client_auth",
    "none",
];
const YESNO: &[&str] = &["true", "false"];
const DANE: &[&str] = &["match", "mismatch", "no_tlsa"];
const DNSSEC: &[&str] = &["validated", "not_validated", "unknown"];
/// Acceptance verdicts in display order (MEASUREMENTS §3).
pub const ACCEPTANCE: &[&str] = &[
    "accepts_server_only",
    "rejects_server_only_dialback",
    "rejects_server_only_no_fallback",
    "no_cert_auth",
    "inconclusive",
    "tls_failed",
];

fn dimensions() -> Vec<Dim> {
    let mut dims = Vec::new();
    for s in ["c2s", "s2s"] {
        let answered = format!("{s}_status IN {ANSWERED}");
        let tls_ok = format!("{s}_status = 'tls_ok'");
        let (answered_text, tls_text) = if s == "c2s" {
            (
                "tested domains whose c2s service answered",
                "tested domains with a c2s TLS session",
            )
        } else {
            (
                "tested domains whose s2s service answered",
                "tested domains with an s2s TLS session",
            )
        };
        let d = |key: &'static str,
                 title: &'static str,
                 population: &'static str,
                 value: String,
                 filter: &str,
                 order: &'static [&'static str]| Dim {
            key,
            title,
            population,
            value,
            filter: filter.to_string(),
            order,
        };
        let c = s == "c2s";
        let pick = |a: &'static str, b: &'static str| if c { a } else { b };
        dims.push(d(
            pick("c2s.status", "s2s.status"),
            pick("c2s reachability", "s2s reachability"),
            "tested domains",
            format!("{s}_status"),
            "TRUE",
            STATUS,
        ));
        dims.push(d(
            pick("c2s.starttls", "s2s.starttls"),
            pick("c2s STARTTLS offer", "s2s STARTTLS offer"),
            answered_text,
            format!("coalesce({s}_starttls, 'not_seen')"),
            &answered,
            STARTTLS,
        ));
        dims.push(d(
            pick("c2s.plain_before_tls", "s2s.plain_before_tls"),
            pick(
                "c2s SASL PLAIN offered before TLS",
                "s2s SASL PLAIN offered before TLS",
            ),
            "domains whose pre-TLS features were seen",
            format!("('PLAIN' = ANY({s}_sasl_before_tls))::text"),
            &format!("{s}_sasl_before_tls IS NOT NULL"),
            YESNO,
        ));
        dims.push(d(
            pick("c2s.direct_tls", "s2s.direct_tls"),
            pick("c2s direct TLS (XEP-0368)", "s2s direct TLS (XEP-0368)"),
            answered_text,
            format!("{s}_direct_tls::text"),
            &answered,
            YESNO,
        ));
        dims.push(d(
            pick("c2s.tls_version", "s2s.tls_version"),
            pick("c2s TLS version", "s2s TLS version"),
            tls_text,
            format!("coalesce({s}_tls_version, 'none')"),
            &tls_ok,
            &["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "none"],
        ));
        dims.push(d(
            pick("c2s.chain_verdict", "s2s.chain_verdict"),
            pick("c2s chain verdict", "s2s chain verdict"),
            tls_text,
            format!("coalesce({s}_chain_verdict, 'none')"),
            &tls_ok,
            VERDICTS,
        ));
        dims.push(d(
            pick("c2s.eku_class", "s2s.eku_class"),
            pick("c2s leaf EKU class", "s2s leaf EKU class"),
            tls_text,
            format!("coalesce({s}_eku_class, 'none')"),
            &tls_ok,
            EKU,
        ));
        dims.push(d(
            pick("c2s.client_purpose", "s2s.client_purpose"),
            pick(
                "c2s chain TLS-client purpose (leaf and intermediates)",
                "s2s chain TLS-client purpose (leaf and intermediates)",
            ),
            tls_text,
            format!("coalesce({s}_client_purpose, 'none')"),
            &tls_ok,
            PURPOSE,
        ));
        dims.push(d(
            pick("c2s.lets_encrypt", "s2s.lets_encrypt"),
            pick("c2s issued by Let's Encrypt", "s2s issued by Let's Encrypt"),
            tls_text,
            format!("coalesce({s}_lets_encrypt::text, 'false')"),
            &tls_ok,
            YESNO,
        ));
        dims.push(d(
            pick("c2s.dane", "s2s.dane"),
            pick("c2s DANE/TLSA", "s2s DANE/TLSA"),
            tls_text,
            format!(
                "CASE WHEN {s}_dane_match IS NULL THEN 'no_tlsa' WHEN {s}_dane_match THEN 'match' ELSE 'mismatch' END"
            ),
            &tls_ok,
            DANE,
        ));
    }
    dims.push(Dim {
        key: "s2s.dialback_offered",
        title: "s2s dialback offered after TLS",
        population: "tested domains with an s2s TLS session",
        value: "coalesce(s2s_dialback_offered::text, 'false')".into(),
        filter: "s2s_status = 'tls_ok'".into(),
        order: YESNO,
    });
    dims.push(Dim {
        key: "dnssec",
        title: "DNSSEC-validated answers",
        population: "tested domains",
        value: "dnssec".into(),
        filter: "TRUE".into(),
        order: DNSSEC,
    });
    dims.push(Dim {
        key: "acceptance",
        title: "Acceptance of a server-only certificate",
        population: "domains the acceptance probe reached (not run and unreachable apart)",
        value: "acceptance".into(),
        filter: "acceptance NOT IN ('not_run', 'unreachable')".into(),
        order: ACCEPTANCE,
    });
    dims
}

/// Builds a breakdown from value counts in a fixed order (then others by
/// name).
fn breakdown(
    key: &str,
    title: &str,
    population: &str,
    order: &[&str],
    counts: &BTreeMap<String, u64>,
) -> Breakdown {
    let denominator: u64 = counts.values().sum();
    let mut values: Vec<String> = order
        .iter()
        .filter(|v| counts.contains_key(**v))
        .map(|v| v.to_string())
        .collect();
    values.extend(
        counts
            .keys()
            .filter(|k| !order.contains(&k.as_str()))
            .cloned(),
    );
    Breakdown {
        key: key.into(),
        title: title.into(),
        population: population.into(),
        denominator,
        shares: values
            .into_iter()
            .map(|v| Share {
                figure: Figure::new(counts[&v], denominator),
                value: v,
            })
            .collect(),
    }
}

/// Every dimension in one statement and one scan of the crawl's results
/// (`$1`): (dim, value, count) rows. Each dimension k is a grouping set
/// over its population filter fk and its value vk (NULL outside the
/// population); `WHERE f` keeps the groups inside it, so the counts are
/// those of `SELECT vk, count(*) ... WHERE fk GROUP BY vk`. (One UNION ALL
/// arm per dimension read the crawl's rows 23 times: 2.3 s of a 7.5 s
/// report over 1,000,000 results, docs/benchmarks.md.)
fn dimensions_sql(dims: &[Dim]) -> String {
    let cols = dims
        .iter()
        .enumerate()
        .map(|(k, d)| {
            format!(
                "({f}) AS f{k}, CASE WHEN ({f}) THEN ({v})::text END AS v{k}",
                f = d.filter,
                v = d.value
            )
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let pick = |what: &str| {
        (0..dims.len())
            .map(|k| {
                let then = if what == "dim" {
                    k.to_string()
                } else {
                    format!("{what}{k}")
                };
                format!("WHEN GROUPING(f{k}) = 0 THEN {then}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sets = (0..dims.len())
        .map(|k| format!("(f{k}, v{k})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT dim, value, n FROM (
            SELECT CASE {dim} END::int AS dim, CASE {f} END AS f, CASE {v} END AS value, count(*) AS n
              FROM (SELECT {cols} FROM results WHERE crawl_id = $1) x
             GROUP BY GROUPING SETS ({sets})) g
          WHERE f",
        dim = pick("dim"),
        f = pick("f"),
        v = pick("v"),
    )
}

/// Every breakdown of [`dimensions`], in order (acceptance verdicts last).
async fn breakdowns(pool: &PgPool, crawl_id: i64) -> Result<Vec<Breakdown>, ReportError> {
    let dims = dimensions();
    let rows: Vec<(i32, Option<String>, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(dimensions_sql(&dims)))
            .bind(crawl_id)
            .fetch_all(pool)
            .await?;
    let mut counts: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); dims.len()];
    for (dim, value, n) in rows {
        if let Some(c) = usize::try_from(dim).ok().and_then(|d| counts.get_mut(d)) {
            *c.entry(value.unwrap_or_else(|| "none".into())).or_default() += u(n);
        }
    }
    Ok(dims
        .iter()
        .zip(&counts)
        .map(|(d, c)| breakdown(d.key, d.title, d.population, d.order, c))
        .collect())
}

/// Computes everything for `crawl`.
pub async fn collect(
    pool: &PgPool,
    crawl: &CrawlRef,
    seeds: Seeds,
    compare: Option<&CrawlRef>,
    generated_at: String,
) -> Result<ReportData, ReportError> {
    // Independent statements, run at once on the pool's connections: the
    // report's wall time is then about the longest one, not their sum.
    let compare = async {
        match compare {
            Some(other) => Ok(Some(compare_with(pool, crawl, other).await?)),
            None => Ok(None),
        }
    };
    let (
        methodology,
        domains,
        mut breakdowns,
        acceptance,
        issuers,
        renewals,
        federation,
        trends,
        compare,
        changes,
    ) = tokio::try_join!(
        methodology(pool, crawl, seeds.clone()),
        domain_counts(pool, crawl.id),
        breakdowns(pool, crawl.id),
        acceptance(pool, crawl.id),
        issuers(pool, crawl.id),
        renewals(pool, crawl.id, &seeds),
        federation(pool, crawl.id),
        trends(pool),
        compare,
        crawl_changes(pool, crawl),
    )?;
    let verdicts = breakdowns.pop().expect("acceptance is the last dimension");
    let acceptance = acceptance.finish(verdicts);
    Ok(ReportData {
        schema_version: SCHEMA_VERSION,
        generated_at,
        methodology,
        domains,
        breakdowns,
        acceptance,
        issuers,
        renewals,
        federation,
        trends,
        compare,
        changes,
    })
}

async fn methodology(
    pool: &PgPool,
    crawl: &CrawlRef,
    seeds: Seeds,
) -> Result<Methodology, ReportError> {
    type Row = (
        String,
        time::OffsetDateTime,
        Option<time::OffsetDateTime>,
        String,
        Option<String>,
        String,
        String,
        Value,
        Value,
    );
    let (
        status,
        started,
        finished,
        vantage,
        probe_domain,
        software_version,
        roots_version,
        sources,
        config,
    ): Row = sqlx::query_as(
        "SELECT status, started_at, finished_at, vantage, probe_domain, software_version,
                    roots_version, sources, config FROM crawls WHERE id = $1",
    )
    .bind(crawl.id)
    .fetch_one(pool)
    .await?;
    let probe_certificates = config["identity"]["certificates"]
        .as_array()
        .map(|certs| {
            certs
                .iter()
                .map(|c| {
                    (
                        c["role"].as_str().unwrap_or("?").to_string(),
                        c["eku_class"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Methodology {
        label: crawl.label.clone(),
        status,
        started_at: rfc3339(started),
        finished_at: finished.map(rfc3339),
        vantage,
        probe_domain,
        probe_certificates,
        roots_version,
        software_version,
        report_software_version: format!(
            "{} ({})",
            env!("CARGO_PKG_VERSION"),
            env!("XMPP_SURVEY_REVISION")
        ),
        sources,
        settings: config,
        cutover_seeds: seeds,
    })
}

async fn domain_counts(pool: &PgPool, crawl_id: i64) -> Result<DomainCounts, ReportError> {
    let (queued, not_tested, opted_out, pending): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE state = 'not_tested'),
                count(*) FILTER (WHERE state = 'not_tested' AND last_error LIKE 'opted out%'),
                count(*) FILTER (WHERE state IN ('queued', 'leased'))
           FROM crawl_queue WHERE crawl_id = $1",
    )
    .bind(crawl_id)
    .fetch_one(pool)
    .await?;
    let (tested, unreachable, s2s, c2s): (i64, i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*),
                count(*) FILTER (WHERE c2s_status NOT IN {ANSWERED} AND s2s_status NOT IN {ANSWERED}),
                count(*) FILTER (WHERE s2s_status IN {ANSWERED}),
                count(*) FILTER (WHERE c2s_status IN {ANSWERED})
           FROM results WHERE crawl_id = $1"
    )))
    .bind(crawl_id)
    .fetch_one(pool)
    .await?;
    Ok(DomainCounts {
        queued: u(queued),
        tested: u(tested),
        not_tested: u(not_tested),
        opted_out: u(opted_out),
        pending: u(pending),
        unreachable: u(unreachable),
        s2s_answered: u(s2s),
        c2s_answered: u(c2s),
    })
}

/// Evidence keys, in display order.
pub const EVIDENCE: [&str; 4] = [
    "external_unsupported_purpose",
    "refused_for_trust",
    "external_not_offered",
    "dialback_works",
];

/// The acceptance figures before the verdict breakdown (computed with the
/// other dimensions) is known.
struct AcceptanceParts {
    by_software: Vec<SoftwareRow>,
    total: [u64; 4],
    not_run: u64,
    unreachable: u64,
}

impl AcceptanceParts {
    fn finish(self, verdicts: Breakdown) -> Acceptance {
        let den = verdicts.denominator;
        let total = self.total;
        Acceptance {
            verdicts,
            not_run: self.not_run,
            unreachable: self.unreachable,
            evidence: Evidence {
                external_unsupported_purpose: Figure::new(total[0], den),
                refused_for_trust: Figure::new(total[1], den),
                external_not_offered: Figure::new(total[2], den),
                dialback_works: Figure::new(total[3], den),
            },
            by_software: self.by_software,
        }
    }
}

async fn acceptance(pool: &PgPool, crawl_id: i64) -> Result<AcceptanceParts, ReportError> {
    type Row = (String, String, String, i64, i64, i64, i64, i64);
    // `domain_id IN (the crawl's matching rows)`: one hashed subplan each,
    // not an index probe per result (0.75 s -> 0.2 s on 100,000 results).
    let rows: Vec<Row> = sqlx::query_as(
        "WITH ev AS (
            SELECT coalesce(r.software_name, 'unknown') AS sw,
                   coalesce(r.software_version, '') AS ver,
                   r.acceptance,
                   r.domain_id IN (SELECT a.domain_id FROM acceptance_attempts a
                            WHERE a.crawl_id = $1
                              AND a.cert_kind = 'server_only' AND a.external_outcome = 'failure'
                              AND a.external_text ILIKE '%unsupported certificate purpose%') AS purpose,
                   r.acceptance_reason IS NOT DISTINCT FROM 'both_certificates_refused' AS trust,
                   r.acceptance_reason IS NOT DISTINCT FROM 'external_not_offered' AS not_offered,
                   r.domain_id IN (SELECT d.domain_id FROM acceptance_dialback d
                            WHERE d.crawl_id = $1
                              AND d.outcome = 'valid') AS dialback
              FROM results r
             WHERE r.crawl_id = $1 AND r.acceptance NOT IN ('not_run', 'unreachable'))
         SELECT sw, ver, acceptance, count(*),
                count(*) FILTER (WHERE purpose), count(*) FILTER (WHERE trust),
                count(*) FILTER (WHERE not_offered), count(*) FILTER (WHERE dialback)
           FROM ev GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(crawl_id)
    .fetch_all(pool)
    .await?;
    let mut by: BTreeMap<(String, String), SoftwareRow> = BTreeMap::new();
    let mut total = [0u64; 4];
    for (sw, ver, verdict, n, a, b, c, d) in rows {
        let row = by
            .entry((sw.clone(), ver.clone()))
            .or_insert_with(|| SoftwareRow {
                software: sw,
                version: ver,
                domains: 0,
                verdicts: BTreeMap::new(),
                evidence: EVIDENCE.iter().map(|k| (k.to_string(), 0)).collect(),
            });
        row.domains += u(n);
        *row.verdicts.entry(verdict).or_default() += u(n);
        for (k, v) in EVIDENCE.iter().zip([a, b, c, d]) {
            *row.evidence.entry(k.to_string()).or_default() += u(v);
        }
        for (t, v) in total.iter_mut().zip([a, b, c, d]) {
            *t += u(v);
        }
    }
    let (not_run, unreachable): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE acceptance = 'not_run'),
                count(*) FILTER (WHERE acceptance = 'unreachable')
           FROM results WHERE crawl_id = $1",
    )
    .bind(crawl_id)
    .fetch_one(pool)
    .await?;
    let mut by_software: Vec<SoftwareRow> = by.into_values().collect();
    by_software.sort_by(|a, b| {
        b.domains
            .cmp(&a.domains)
            .then_with(|| (&a.software, &a.version).cmp(&(&b.software, &b.version)))
    });
    Ok(AcceptanceParts {
        by_software,
        total,
        not_run: u(not_run),
        unreachable: u(unreachable),
    })
}

/// The primary s2s certificate of each domain: its first s2s endpoint that
/// completed TLS with a certificate.
const PRIMARY_S2S: &str = "prim AS (
    SELECT DISTINCT ON (e.domain_id) e.domain_id, e.leaf_sha256
      FROM endpoints e
     WHERE e.crawl_id = $1 AND e.service = 's2s' AND e.leaf_sha256 IS NOT NULL
       AND e.tls_version IS NOT NULL
     ORDER BY e.domain_id, e.ordinal)";

async fn issuers(pool: &PgPool, crawl_id: i64) -> Result<Breakdown, ReportError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH {PRIMARY_S2S}
         SELECT coalesce(substring(c.issuer from '(?:^|,)\\s*O=([^,]+)'), c.issuer), count(*)
           FROM prim p JOIN certificates c ON c.sha256 = p.leaf_sha256
          GROUP BY 1 ORDER BY 2 DESC, 1"
    )))
    .bind(crawl_id)
    .fetch_all(pool)
    .await?;
    let order: Vec<String> = rows.iter().map(|(o, _)| o.clone()).collect();
    let counts: BTreeMap<String, u64> = rows.into_iter().map(|(o, n)| (o, u(n))).collect();
    let order_ref: Vec<&str> = order.iter().map(String::as_str).collect();
    Ok(breakdown(
        "s2s.issuer",
        "Issuer (organisation) of the s2s certificate",
        "tested domains with an s2s certificate",
        &order_ref,
        &counts,
    ))
}

async fn renewals(
    pool: &PgPool,
    crawl_id: i64,
    seeds: &Seeds,
) -> Result<Vec<Renewal>, ReportError> {
    let dates = seeds.renewal_dates()?;
    let (mut cas, mut patterns, mut days): (Vec<String>, Vec<String>, Vec<Date>) =
        Default::default();
    for (ca, (day, pats)) in &dates {
        for p in pats {
            cas.push(ca.clone());
            patterns.push(p.to_lowercase());
            days.push(*day);
        }
    }
    let rows: Vec<(String, Date, Date, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH {PRIMARY_S2S},
         seeds AS (SELECT * FROM unnest($2::text[], $3::text[], $4::date[]) AS s(ca, pattern, cutover))
         SELECT s.ca, s.cutover,
                date_trunc('month', greatest((c.not_after AT TIME ZONE 'UTC')::date, s.cutover))::date,
                count(DISTINCT p.domain_id)
           FROM prim p
           JOIN certificates c ON c.sha256 = p.leaf_sha256
           JOIN seeds s ON strpos(lower(c.issuer), s.pattern) > 0
          WHERE c.eku_class = 'client_and_server'
          GROUP BY 1, 2, 3 ORDER BY 1, 3"
    )))
    .bind(crawl_id)
    .bind(&cas)
    .bind(&patterns)
    .bind(&days)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(ca, cutover, month, n)| Renewal {
            ca,
            cutover: cutover.to_string(),
            month: month.to_string(),
            domains: u(n),
        })
        .collect())
}

/// The per-domain columns the federation classes come from, grouped.
pub const FEDERATION_SQL: &str = "
    SELECT r.s2s_chain_verdict, r.s2s_client_purpose, r.acceptance,
           (coalesce(r.s2s_dialback_offered, false) OR coalesce(d.offered, false)
            OR d.outcome IS NOT DISTINCT FROM 'valid') AS dialback,
           count(*)
      FROM results r
      LEFT JOIN acceptance_dialback d ON d.crawl_id = r.crawl_id AND d.domain_id = r.domain_id
     WHERE r.crawl_id = $1 AND r.s2s_status IN ('tls_ok','no_tls','tls_failed','stream_failed')
     GROUP BY 1, 2, 3, 4";

async fn federation(pool: &PgPool, crawl_id: i64) -> Result<Federation, ReportError> {
    type Row = (Option<String>, Option<String>, String, bool, i64);
    let rows: Vec<Row> = sqlx::query_as(FEDERATION_SQL)
        .bind(crawl_id)
        .fetch_all(pool)
        .await?;
    let mut joint = Joint::new();
    for (verdict, purpose, acceptance, dialback, n) in rows {
        let i = Initiator::classify(verdict.as_deref(), purpose.as_deref());
        let r = Receiver::classify(&acceptance, dialback);
        *joint.entry((i, r)).or_default() += u(n);
    }
    Ok(Federation {
        classes: joint
            .iter()
            .map(|(&(initiator, receiver), &domains)| ClassCount {
                initiator,
                receiver,
                domains,
            })
            .collect(),
        now: ImpactFigures::new(federation::impact(&joint, false)),
        renewed: ImpactFigures::new(federation::impact(&joint, true)),
        assumptions: federation::ASSUMPTIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    })
}

async fn trends(pool: &PgPool) -> Result<Vec<TrendPoint>, ReportError> {
    type Row = (
        String,
        time::OffsetDateTime,
        String,
        String,
        String,
        bool,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let rows: Vec<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT c.label, c.started_at, c.software_version, c.roots_version, c.vantage,
                    c.probe_domain IS NOT NULL,
                    count(r.domain_id),
                    count(*) FILTER (WHERE r.c2s_status IN {ANSWERED}),
                    count(*) FILTER (WHERE r.c2s_status IN {ANSWERED} AND r.c2s_starttls = 'required'),
                    count(*) FILTER (WHERE r.s2s_status IN {ANSWERED}),
                    count(*) FILTER (WHERE r.s2s_status IN {ANSWERED} AND r.s2s_starttls = 'required'),
                    count(*) FILTER (WHERE r.s2s_status = 'tls_ok'),
                    count(*) FILTER (WHERE r.s2s_status = 'tls_ok' AND r.s2s_eku_class = 'server_only'),
                    count(*) FILTER (WHERE r.s2s_status = 'tls_ok' AND r.s2s_client_purpose = 'ok'),
                    count(*) FILTER (WHERE r.acceptance NOT IN ('not_run', 'unreachable')),
                    count(*) FILTER (WHERE r.acceptance = 'accepts_server_only')
               FROM crawls c LEFT JOIN results r ON r.crawl_id = c.id
              GROUP BY c.id ORDER BY c.started_at, c.id"
        )))
        .fetch_all(pool)
        .await?;
    let mut out = Vec::new();
    let mut prev: Option<(String, String, String, bool)> = None;
    for (
        label,
        started,
        sw,
        roots,
        vantage,
        probe,
        tested,
        c2s,
        c2s_req,
        s2s,
        s2s_req,
        tls,
        so,
        ok,
        acc,
        acc_yes,
    ) in rows
    {
        let now = (sw, roots, vantage, probe);
        let change = prev.as_ref().and_then(|p| {
            let mut what = Vec::new();
            if p.0 != now.0 {
                what.push(format!("software {} → {}", p.0, now.0));
            }
            if p.1 != now.1 {
                what.push(format!("roots {} → {}", p.1, now.1));
            }
            if p.2 != now.2 {
                what.push(format!("vantage {} → {}", p.2, now.2));
            }
            if p.3 != now.3 {
                what.push(if now.3 {
                    "acceptance probe on".into()
                } else {
                    "acceptance probe off".into()
                });
            }
            (!what.is_empty()).then(|| what.join("; "))
        });
        prev = Some(now);
        out.push(TrendPoint {
            label,
            started_at: rfc3339(started),
            tested: u(tested),
            c2s_starttls_required: Figure::new(u(c2s_req), u(c2s)),
            s2s_starttls_required: Figure::new(u(s2s_req), u(s2s)),
            s2s_server_only: Figure::new(u(so), u(tls)),
            s2s_client_purpose_ok: Figure::new(u(ok), u(tls)),
            accepts_server_only: Figure::new(u(acc_yes), u(acc)),
            methodology_change: change,
        });
    }
    Ok(out)
}

/// The verdict columns compared between crawls.
pub const COMPARED: [&str; 6] = [
    "acceptance",
    "s2s_starttls",
    "c2s_starttls",
    "s2s_eku_class",
    "s2s_client_purpose",
    "s2s_chain_verdict",
];

/// The changed (domain, field, old, new) rows between two crawls, sorted:
/// `$1` this crawl, `$2` the other.
pub fn changes_sql() -> String {
    let arms = COMPARED
        .iter()
        .map(|c| {
            format!(
                "SELECT d.name AS domain, '{c}' AS field, o.{c}::text AS old, n.{c}::text AS new
                   FROM results n JOIN results o ON o.domain_id = n.domain_id AND o.crawl_id = $2
                   JOIN domains d ON d.id = n.domain_id
                  WHERE n.crawl_id = $1 AND o.{c} IS DISTINCT FROM n.{c}"
            )
        })
        .collect::<Vec<_>>()
        .join("\nUNION ALL ");
    format!("SELECT domain, field, old, new FROM ({arms}) x ORDER BY domain, field")
}

async fn compare_with(
    pool: &PgPool,
    crawl: &CrawlRef,
    other: &CrawlRef,
) -> Result<Compare, ReportError> {
    let common: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM results n JOIN results o ON o.domain_id = n.domain_id AND o.crawl_id = $2
          WHERE n.crawl_id = $1",
    )
    .bind(crawl.id)
    .bind(other.id)
    .fetch_one(pool)
    .await?;
    let changed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ({}) c",
        changes_sql()
    )))
    .bind(crawl.id)
    .bind(other.id)
    .fetch_one(pool)
    .await?;
    let first: Vec<(String, String, Option<String>, Option<String>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{} LIMIT 100", changes_sql())))
            .bind(crawl.id)
            .bind(other.id)
            .fetch_all(pool)
            .await?;
    Ok(Compare {
        label: other.label.clone(),
        common: u(common),
        changed: u(changed),
        first: first
            .into_iter()
            .map(|(domain, field, old, new)| Change {
                domain,
                field,
                old,
                new,
            })
            .collect(),
    })
}

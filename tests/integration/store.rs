//! The PostgreSQL store against a real server: each test creates its own
//! database on `DATABASE_URL` (see `support::pg`). Probe reports come from
//! the project's testnet (nets 70..=79).

use crate::support::{TestDb, pg, prober, testnet};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use xmpp_survey::facts::label;
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::report::DomainReport;
use xmpp_survey::store::migrate::BINARY_VERSION;
use xmpp_survey::store::rows::from_report;
use xmpp_survey::store::{Counts, CrawlMeta, CrawlStatus, Store, StoreError};

async fn migrated(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn meta(label: &str) -> CrawlMeta {
    CrawlMeta {
        label: label.into(),
        sources: serde_json::json!(["test"]),
        vantage: "loopback".into(),
        probe_domain: None,
        software_version: env!("CARGO_PKG_VERSION").into(),
        roots_version: "test".into(),
        config: serde_json::json!({}),
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}.test")).collect()
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Probes every domain of the testnet once.
async fn probe_all(net: &xmpp_survey::testnet::Testnet) -> Vec<DomainReport> {
    let prober = prober(net, AddressPolicy::ALLOW_PRIVATE);
    let mut reports: Vec<DomainReport> = futures::stream::iter(net.domains())
        .map(|d| {
            let prober = prober.clone();
            async move { prober.probe(&d).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    reports.sort_by(|a, b| a.domain.cmp(&b.domain));
    reports
}

/// Creates a crawl, enqueues the reports' domains, leases them all and
/// returns the batch `record` takes.
async fn crawl_of(
    store: &Store,
    label: &str,
    reports: &[DomainReport],
) -> (i64, Vec<(i64, DomainReport)>) {
    let crawl = store.create_or_resume_crawl(&meta(label)).await.unwrap();
    let domains: Vec<String> = reports.iter().map(|r| r.domain.clone()).collect();
    store.enqueue(crawl.id, &domains).await.unwrap();
    let leases = store
        .lease(crawl.id, "w", domains.len(), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(leases.len(), domains.len());
    let ids: HashMap<String, i64> = leases
        .into_iter()
        .map(|l| (l.domain, l.domain_id))
        .collect();
    let batch = reports
        .iter()
        .map(|r| (ids[&r.domain], r.clone()))
        .collect();
    (crawl.id, batch)
}

#[tokio::test]
async fn migrate_twice_is_a_noop_the_second_time() {
    let db = pg().await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), None);
    let t = Instant::now();
    assert_eq!(store.migrate().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
    let first = t.elapsed();
    let t = Instant::now();
    assert_eq!(store.migrate().await.unwrap(), Vec::<i32>::new());
    let second = t.elapsed();
    assert_eq!(store.schema_version().await.unwrap(), Some(BINARY_VERSION));
    assert_eq!(
        count(&store, "SELECT count(*) FROM schema_version").await,
        7
    );
    eprintln!("migrate: first {first:?}, second (no-op) {second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let db = pg().await;
    let (a, b) = (
        Store::connect(&db.url).await.unwrap(),
        Store::connect(&db.url).await.unwrap(),
    );
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let mut all = ra.unwrap();
    all.extend(rb.unwrap());
    all.sort();
    assert_eq!(
        all,
        vec![1, 2, 3, 4, 5, 6, 7],
        "each version applied exactly once"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = pg().await;
    let store = migrated(&db).await;
    sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
        .bind(BINARY_VERSION + 1)
        .execute(store.pool())
        .await
        .unwrap();
    match store.migrate().await {
        Err(StoreError::SchemaTooNew { db, binary }) => {
            assert_eq!((db, binary), (BINARY_VERSION + 1, BINARY_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let msg = store.migrate().await.unwrap_err().to_string();
    assert!(msg.contains("upgrade xmpp-survey"), "{msg}");
}

#[tokio::test]
async fn every_column_has_a_comment() {
    let db = pg().await;
    let store = migrated(&db).await;
    let tables = count(
        &store,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    .await;
    assert_eq!(
        tables, 18,
        "schema_version, crawls, domains, crawl_queue, certificates, results, endpoints, chain_members, dns_records, opt_outs; acceptance_attempts, acceptance_dialback, inbound_streams; live_probes, optout_requests; domain_changes; workers, relay_events"
    );
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
           AND col_description(c.oid, a.attnum) IS NULL
         UNION ALL
         SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND obj_description(c.oid, 'pg_class') IS NULL",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(missing.is_empty(), "without COMMENT ON: {missing:?}");
}

/// Column names of `table` the row structs must provide (the database
/// fills `crawl_id`, `domain_id`, `recorded_at`).
async fn columns(store: &Store, table: &str) -> Vec<String> {
    let mut cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = $1
           AND column_name NOT IN ('crawl_id', 'domain_id', 'recorded_at')",
    )
    .bind(table)
    .fetch_all(store.pool())
    .await
    .unwrap();
    cols.sort();
    cols
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn row_keys_are_the_table_columns() {
    // jsonb_populate_record silently leaves unknown columns NULL: a renamed
    // field or column must fail here instead.
    let net = testnet(72, 2, &["srv_ok"]).await;
    let reports = probe_all(&net).await;
    net.shutdown().await;
    let db = pg().await;
    let store = migrated(&db).await;
    let rows = from_report(&reports[0]);
    let first = |v: serde_json::Value| v.as_array().expect("rows")[0].clone();
    for (table, row) in [
        ("results", serde_json::to_value(&rows.result).unwrap()),
        (
            "certificates",
            first(serde_json::to_value(&rows.certificates).unwrap()),
        ),
        (
            "endpoints",
            first(serde_json::to_value(&rows.endpoints).unwrap()),
        ),
        (
            "chain_members",
            first(serde_json::to_value(&rows.chain_members).unwrap()),
        ),
        (
            "dns_records",
            first(serde_json::to_value(&rows.dns_records).unwrap()),
        ),
    ] {
        assert_eq!(keys(&row), columns(&store, table).await, "{table}");
    }
}

/// Each enum-like column's CHECK must list every value the serde enum can
/// produce, or a rare verdict would make `record` fail mid-crawl.
#[tokio::test]
async fn check_constraints_list_every_serde_value() {
    use xmpp_survey::acceptance::AcceptanceVerdict as A;
    use xmpp_survey::dns::DnsOutcome as D;
    use xmpp_survey::probe::report::{ConnectOutcome as C, EndpointOutcome as O, Phase as P};
    use xmpp_survey::tls::{ChainVerdict as V, EkuClass as E, NameMatch as N, TlsFailure as F};
    use xmpp_survey::verdict::ServiceStatus as S;
    // Every variant of each enum, from the code (strum::VariantArray).
    use strum::VariantArray;
    let statuses = S::VARIANTS.to_vec();
    let verdicts = V::VARIANTS.to_vec();
    let ekus = E::VARIANTS.to_vec();
    let names = N::VARIANTS.to_vec();
    let acceptance = A::VARIANTS.to_vec();
    let outcomes = O::VARIANTS.to_vec();
    let connects = C::VARIANTS.to_vec();
    let phases = P::VARIANTS.to_vec();
    let failures = F::VARIANTS.to_vec();
    let dns = D::VARIANTS.to_vec();
    // Schema 2: the acceptance evidence's enums (serde values, taken from
    // serde itself for the tagged ones).
    use xmpp_survey::acceptance::ExchangeFault as Xf;
    use xmpp_survey::acceptance::{
        AcceptanceReason as R, DialbackOutcome as Db, InboundAuth as In, IqOutcome as Iq,
        ProbeCertKind as K,
    };
    use xmpp_survey::probe::report::Transport as T;
    use xmpp_survey::tls::ClientPurpose as Cp;
    use xmpp_survey::xmpp::sasl::SaslOutcome as Sa;
    let faults = Xf::VARIANTS.to_vec();
    let reasons = R::VARIANTS.to_vec();
    let purposes = Cp::VARIANTS.to_vec();
    let kinds = K::VARIANTS.to_vec();
    let transports = T::VARIANTS.to_vec();
    fn tags<V: serde::Serialize>(key: &str, v: Vec<V>) -> Vec<String> {
        v.iter()
            .map(|x| {
                serde_json::to_value(x).unwrap()[key]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
    let c = || "c".to_string();
    let iq = tags(
        "result",
        vec![
            Iq::NotAttempted,
            Iq::Result,
            Iq::Error { condition: c() },
            Iq::Timeout,
        ],
    );
    let _: fn(Iq) = |x| match x {
        Iq::NotAttempted | Iq::Result | Iq::Error { .. } | Iq::Timeout => {}
    };
    let sasl_values = vec![
        Sa::Success,
        Sa::Failure {
            condition: c(),
            text: None,
        },
        Sa::Challenge,
    ];
    let _: fn(Sa) = |x| match x {
        Sa::Success | Sa::Failure { .. } | Sa::Challenge => {}
    };
    let sasl = tags("result", sasl_values);
    let dialback = tags(
        "result",
        vec![
            Db::Valid,
            Db::Invalid,
            Db::Error { condition: c() },
            Db::NotOffered,
            Db::ConnectionFailed,
            Db::Timeout,
        ],
    );
    let _: fn(Db) = |x| match x {
        Db::Valid
        | Db::Invalid
        | Db::Error { .. }
        | Db::NotOffered
        | Db::ConnectionFailed
        | Db::Timeout => {}
    };
    let methods = tags(
        "method",
        vec![
            In::External {
                outcome: Sa::Success,
            },
            In::Dialback { valid: true },
            In::VerifyOnly,
            In::None,
        ],
    );
    let _: fn(In) = |x| match x {
        In::External { .. } | In::Dialback { .. } | In::VerifyOnly | In::None => {}
    };
    // Inbound auth outcome: EXTERNAL's answer, or dialback valid/invalid.
    let mut inbound_outcomes = sasl.clone();
    inbound_outcomes.extend(["valid".to_string(), "invalid".to_string()]);
    let crawl_statuses: Vec<String> = [
        CrawlStatus::Running,
        CrawlStatus::Finished,
        CrawlStatus::Interrupted,
    ]
    .iter()
    .map(|s| s.as_str().to_string())
    .chain(["failed".to_string()])
    .collect();
    let v2_checks: Vec<(&str, &str, Vec<String>)> = vec![
        ("crawls", "status", crawl_statuses),
        (
            "results",
            "acceptance_reason",
            reasons.iter().map(label).collect(),
        ),
        (
            "results",
            "c2s_client_purpose",
            purposes.iter().map(label).collect(),
        ),
        (
            "results",
            "s2s_client_purpose",
            purposes.iter().map(label).collect(),
        ),
        ("results", "acceptance_ping", iq.clone()),
        ("results", "acceptance_version_query", iq.clone()),
        (
            "endpoints",
            "client_purpose",
            purposes.iter().map(label).collect(),
        ),
        (
            "acceptance_attempts",
            "cert_kind",
            kinds.iter().map(label).collect(),
        ),
        (
            "acceptance_attempts",
            "transport",
            transports.iter().map(label).collect(),
        ),
        (
            "acceptance_attempts",
            "tls_failure",
            failures.iter().map(label).collect(),
        ),
        (
            "acceptance_attempts",
            "outcome",
            outcomes.iter().map(label).collect(),
        ),
        (
            "acceptance_attempts",
            "phase",
            phases.iter().map(label).collect(),
        ),
        ("acceptance_attempts", "external_outcome", sasl.clone()),
        (
            "acceptance_attempts",
            "external_fault",
            faults.iter().map(label).collect(),
        ),
        ("acceptance_attempts", "ping", iq.clone()),
        ("acceptance_attempts", "version_query", iq.clone()),
        ("acceptance_dialback", "outcome", dialback),
        ("acceptance_dialback", "ping", iq.clone()),
        ("acceptance_dialback", "version_query", iq),
        (
            "inbound_streams",
            "client_eku_class",
            ekus.iter().map(label).collect(),
        ),
        (
            "inbound_streams",
            "client_purpose",
            purposes.iter().map(label).collect(),
        ),
        ("inbound_streams", "auth_method", methods),
        // Schema 4: per-domain changes between crawls.
        (
            "domain_changes",
            "kind",
            xmpp_survey::model::change::ChangeKind::VARIANTS
                .iter()
                .map(label)
                .collect(),
        ),
        (
            "domain_changes",
            "scope",
            xmpp_survey::model::change::ChangeScope::VARIANTS
                .iter()
                .map(label)
                .collect(),
        ),
        ("inbound_streams", "auth_outcome", inbound_outcomes),
    ];
    let checks: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "results",
            "c2s_status",
            statuses.iter().map(label).collect(),
        ),
        (
            "results",
            "s2s_status",
            statuses.iter().map(label).collect(),
        ),
        (
            "results",
            "s2s_chain_verdict",
            verdicts.iter().map(label).collect(),
        ),
        (
            "results",
            "c2s_chain_verdict",
            verdicts.iter().map(label).collect(),
        ),
        (
            "endpoints",
            "chain_verdict",
            verdicts.iter().map(label).collect(),
        ),
        ("results", "s2s_eku_class", ekus.iter().map(label).collect()),
        ("results", "c2s_eku_class", ekus.iter().map(label).collect()),
        (
            "certificates",
            "eku_class",
            ekus.iter().map(label).collect(),
        ),
        (
            "results",
            "s2s_name_match",
            names.iter().map(label).collect(),
        ),
        ("endpoints", "name_match", names.iter().map(label).collect()),
        (
            "results",
            "acceptance",
            acceptance.iter().map(label).collect(),
        ),
        ("endpoints", "outcome", outcomes.iter().map(label).collect()),
        ("endpoints", "connect", connects.iter().map(label).collect()),
        ("endpoints", "phase", phases.iter().map(label).collect()),
        (
            "endpoints",
            "tls_failure",
            failures.iter().map(label).collect(),
        ),
        ("dns_records", "outcome", dns.iter().map(label).collect()),
    ]
    .into_iter()
    .chain(v2_checks)
    .collect();
    let db = pg().await;
    let store = migrated(&db).await;
    for (table, column, values) in checks {
        let def: String = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = $1::regclass AND conname = $2",
        )
        .bind(table)
        .bind(format!("{table}_{column}_check"))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{table}.{column} has no CHECK: {e}"));
        for v in values {
            assert!(
                def.contains(&format!("'{v}'::text")),
                "{table}.{column} CHECK lacks '{v}': {def}"
            );
        }
    }
}

#[tokio::test]
async fn a_crawl_is_created_then_resumed_by_label() {
    let db = pg().await;
    let store = migrated(&db).await;
    let a = store
        .create_or_resume_crawl(&meta("2026-W47"))
        .await
        .unwrap();
    assert!(!a.resumed);
    store.enqueue(a.id, &names("r", 3)).await.unwrap();
    store
        .finish_crawl(a.id, CrawlStatus::Interrupted)
        .await
        .unwrap();
    let (status, finished): (String, bool) =
        sqlx::query_as("SELECT status, finished_at IS NOT NULL FROM crawls WHERE id = $1")
            .bind(a.id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), finished), ("interrupted", true));

    let again = store
        .create_or_resume_crawl(&meta("2026-W47"))
        .await
        .unwrap();
    assert_eq!((again.id, again.resumed), (a.id, true));
    let (status, finished): (String, bool) =
        sqlx::query_as("SELECT status, finished_at IS NOT NULL FROM crawls WHERE id = $1")
            .bind(a.id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), finished), ("running", false));
    assert_eq!(store.progress(a.id).await.unwrap().queued, 3, "queue kept");

    let other = store
        .create_or_resume_crawl(&meta("2026-W48"))
        .await
        .unwrap();
    assert!(!other.resumed);
    assert_ne!(other.id, a.id);
    assert!(matches!(
        store.finish_crawl(-1, CrawlStatus::Finished).await,
        Err(StoreError::NoSuchCrawl(-1))
    ));
}

#[tokio::test]
async fn enqueue_dedupes_and_skips_opt_outs() {
    let db = pg().await;
    let store = migrated(&db).await;
    store
        .add_opt_out("optout.test", "asked by email")
        .await
        .unwrap();
    let crawl = store.create_or_resume_crawl(&meta("c")).await.unwrap().id;
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .enqueue(crawl, &list(&["a.test", "b.test", "a.test", "optout.test"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .enqueue(crawl, &list(&["a.test", "b.test", "c.test"]))
            .await
            .unwrap(),
        1,
        "only c.test is new to this crawl"
    );
    // Done domains are not re-queued either.
    let leases = store
        .lease(crawl, "w", 10, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .not_tested(crawl, leases[0].domain_id, "x")
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue(crawl, &list(&["a.test", "b.test"]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.progress(crawl).await.unwrap().total(), 3);
    assert_eq!(
        store.known_domains().await.unwrap(),
        list(&["a.test", "b.test", "c.test"])
    );
    assert!(store.opt_outs().await.unwrap().contains("optout.test"));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM domains WHERE name = 'optout.test'"
        )
        .await,
        0
    );

    // Another crawl queues the same domains again.
    let next = store.create_or_resume_crawl(&meta("d")).await.unwrap().id;
    assert_eq!(
        store
            .enqueue(next, &list(&["a.test", "d.test"]))
            .await
            .unwrap(),
        2
    );
    // Opting out a queued domain removes it from the running queue.
    store.add_opt_out("d.test", "operator").await.unwrap();
    let p = store.progress(next).await.unwrap();
    assert_eq!((p.queued, p.not_tested), (1, 1));
    assert!(
        !store
            .known_domains()
            .await
            .unwrap()
            .contains(&"d.test".to_string())
    );

    assert!(matches!(
        store.enqueue(crawl, &list(&["Upper.test"])).await,
        Err(StoreError::InvalidDomain(_))
    ));
    assert!(matches!(
        store.enqueue(-5, &list(&["a.test"])).await,
        Err(StoreError::NoSuchCrawl(-5))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_leases_never_share_a_domain() {
    let db = pg().await;
    let store = migrated(&db).await;
    let crawl = store.create_or_resume_crawl(&meta("c")).await.unwrap().id;
    let all = names("l", 600);
    store.enqueue(crawl, &all).await.unwrap();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let workers = (0..4).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .lease(crawl, &format!("w{w}"), 3, Duration::from_secs(600))
                    .await
                    .unwrap()
            })
        });
        let got: Vec<_> = futures::future::join_all(workers)
            .await
            .into_iter()
            .flat_map(|r| r.unwrap())
            .collect();
        if got.is_empty() {
            break;
        }
        for l in got {
            assert_eq!(l.attempts, 1, "{} leased twice", l.domain);
            assert!(
                seen.insert(l.domain_id),
                "{} given to two workers",
                l.domain
            );
        }
    }
    assert_eq!(seen.len(), all.len());
    assert!(rounds > 40, "{rounds} rounds");
    let p = store.progress(crawl).await.unwrap();
    assert_eq!((p.queued, p.leased), (0, 600));
}

#[tokio::test]
async fn expired_leases_are_taken_again_and_backoff_is_respected() {
    let db = pg().await;
    let store = migrated(&db).await;
    let crawl = store.create_or_resume_crawl(&meta("c")).await.unwrap().id;
    store.enqueue(crawl, &names("e", 3)).await.unwrap();
    // A lease of zero length has expired by the next statement.
    let dead = store.lease(crawl, "dead", 1, Duration::ZERO).await.unwrap();
    assert_eq!(dead.len(), 1);
    let live = store
        .lease(crawl, "live", 10, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(live.len(), 3, "the expired lease is among them");
    let retaken = live
        .iter()
        .find(|l| l.domain_id == dead[0].domain_id)
        .unwrap();
    assert_eq!(retaken.attempts, 2);
    assert!(
        store
            .lease(crawl, "x", 10, Duration::from_secs(600))
            .await
            .unwrap()
            .is_empty()
    );

    // retry_later: leasable again after the backoff, not before.
    store
        .retry_later(crawl, live[0].domain_id, Duration::ZERO, "timeout")
        .await
        .unwrap();
    store
        .retry_later(
            crawl,
            live[1].domain_id,
            Duration::from_secs(3600),
            "timeout",
        )
        .await
        .unwrap();
    let again = store
        .lease(crawl, "w", 10, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|l| l.domain_id).collect::<Vec<_>>(),
        vec![live[0].domain_id]
    );
    store
        .not_tested(crawl, live[2].domain_id, "gave up")
        .await
        .unwrap();
    let p = store.progress(crawl).await.unwrap();
    assert_eq!((p.queued, p.leased, p.not_tested), (1, 1, 1));
    let err: Option<String> = sqlx::query_scalar(
        "SELECT last_error FROM crawl_queue WHERE crawl_id = $1 AND domain_id = $2",
    )
    .bind(crawl)
    .bind(live[1].domain_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(err.as_deref(), Some("timeout"));
    assert!(matches!(
        store.retry_later(crawl, -1, Duration::ZERO, "x").await,
        Err(StoreError::NotQueued { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_once_and_certificates_are_shared_across_crawls() {
    let net = testnet(
        70,
        4,
        &["srv_ok", "cert_server_only", "direct_tls", "nxdomain"],
    )
    .await;
    let first = probe_all(&net).await;
    let db = pg().await;
    let store = migrated(&db).await;
    let (crawl, batch) = crawl_of(&store, "one", &first).await;

    let t = Instant::now();
    assert_eq!(store.record(crawl, &batch).await.unwrap(), first.len());
    let took = t.elapsed();
    // Migration 7: new reports are compressed with LZ4 (this PostgreSQL
    // has it; pg_column_compression is NULL for a value stored inline,
    // i.e. too small to compress).
    let methods: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT pg_column_compression(report) FROM results")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        methods.contains(&Some("lz4".into())) && !methods.contains(&Some("pglz".into())),
        "{methods:?}"
    );

    let expect_endpoints: usize = first.iter().map(|r| r.endpoints.len()).sum();
    let expect_chain: usize = first
        .iter()
        .flat_map(|r| &r.endpoints)
        .filter_map(|e| e.tls.as_ref())
        .map(|t| t.chain.len())
        .sum();
    let expect_dns: usize = first.iter().map(|r| from_report(r).dns_records.len()).sum();
    let certs: HashSet<&str> = first
        .iter()
        .flat_map(|r| &r.endpoints)
        .filter_map(|e| e.tls.as_ref())
        .flat_map(|t| &t.chain)
        .map(|c| c.sha256.as_str())
        .collect();
    assert!(expect_endpoints > 0 && expect_chain > 0 && !certs.is_empty());
    let counts = async || {
        (
            count(&store, "SELECT count(*) FROM results").await,
            count(&store, "SELECT count(*) FROM endpoints").await,
            count(&store, "SELECT count(*) FROM chain_members").await,
            count(&store, "SELECT count(*) FROM dns_records").await,
            count(&store, "SELECT count(*) FROM certificates").await,
        )
    };
    let written = counts().await;
    assert_eq!(
        written,
        (
            first.len() as i64,
            expect_endpoints as i64,
            expect_chain as i64,
            expect_dns as i64,
            certs.len() as i64
        )
    );
    eprintln!(
        "record: {} domains ({} rows) in {took:?}",
        first.len(),
        written.0 + written.1 + written.2 + written.3 + written.4
    );

    // The typed columns are the report's summary; the JSONB is the report.
    for (domain_id, r) in &batch {
        let (c2s, s2s, eku, acceptance, report): (
            String,
            String,
            Option<String>,
            String,
            serde_json::Value,
        ) = sqlx::query_as(
            "SELECT c2s_status, s2s_status, s2s_eku_class, acceptance, report FROM results
                 WHERE crawl_id = $1 AND domain_id = $2",
        )
        .bind(crawl)
        .bind(domain_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(c2s, label(r.summary.c2s.status), "{}", r.domain);
        assert_eq!(s2s, label(r.summary.s2s.status), "{}", r.domain);
        assert_eq!(eku, r.summary.s2s.eku_class.map(label), "{}", r.domain);
        assert_eq!(acceptance, label(r.summary.acceptance));
        let back: DomainReport = serde_json::from_value(report).unwrap();
        assert_eq!(&back, r, "the stored report is the report");
    }
    assert_eq!(
        store.progress(crawl).await.unwrap().done,
        first.len() as u64
    );

    // Recording again (an expired lease probed twice) writes nothing.
    assert_eq!(store.record(crawl, &batch).await.unwrap(), 0);
    assert_eq!(counts().await, written);

    // Caller bugs are refused, not filed under the wrong name.
    let (id0, r0) = &batch[0];
    let mut wrong = batch[1].1.clone();
    wrong.domain = r0.domain.clone();
    assert!(matches!(
        store.record(crawl, &[(batch[1].0, wrong)]).await,
        Err(StoreError::DomainMismatch { .. })
    ));
    assert!(matches!(
        store.record(crawl + 1000, &[(*id0, r0.clone())]).await,
        Err(StoreError::NotQueued { .. })
    ));

    // A second crawl sees the same certificates: one row each, seen twice.
    // (as next week's crawl: last_seen is kept to 10 minutes)
    let second: Vec<DomainReport> = probe_all(&net)
        .await
        .into_iter()
        .map(|mut r| {
            r.started_at += time::Duration::days(7);
            r
        })
        .collect();
    net.shutdown().await;
    let (crawl2, batch2) = crawl_of(&store, "two", &second).await;
    assert_eq!(store.record(crawl2, &batch2).await.unwrap(), second.len());
    assert_eq!(
        count(&store, "SELECT count(*) FROM certificates").await,
        certs.len() as i64
    );
    let spans: Vec<(String, bool)> =
        sqlx::query_as("SELECT sha256, first_seen < last_seen FROM certificates")
            .fetch_all(store.pool())
            .await
            .unwrap();
    for (sha, widened) in spans {
        assert!(
            widened,
            "certificate {sha}: first_seen must precede last_seen"
        );
    }
    let first_seen: time::OffsetDateTime =
        sqlx::query_scalar("SELECT min(first_seen) FROM certificates")
            .fetch_one(store.pool())
            .await
            .unwrap();
    // PostgreSQL keeps microseconds.
    let earliest = first.iter().map(|r| r.started_at).min().unwrap();
    assert!(
        (first_seen - earliest).abs() <= time::Duration::microseconds(1),
        "first_seen {first_seen} is the probe time of the first sighting {earliest}"
    );
}

fn tally<T>(items: impl Iterator<Item = T>, key: impl Fn(T) -> Option<String>) -> Counts {
    let mut c = Counts::new();
    for i in items {
        *c.entry(key(i)).or_default() += 1;
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_counts_match_the_reports() {
    let profiles = [
        "srv_ok",
        "cert_server_only",
        "cert_client_and_server",
        "starttls_optional",
        "starttls_absent",
        "tls12_only",
        "cert_expired",
        "nxdomain",
        "refused",
        "direct_tls",
    ];
    let net = testnet(71, 20, &profiles).await;
    let reports = probe_all(&net).await;
    net.shutdown().await;
    let db = pg().await;
    let store = migrated(&db).await;
    let (crawl, batch) = crawl_of(&store, "s", &reports).await;
    store.record(crawl, &batch).await.unwrap();
    let s = store.summary(crawl).await.unwrap();

    let rs = || reports.iter();
    assert_eq!(s.results, reports.len() as u64);
    for (got, svc) in [(&s.c2s, 0), (&s.s2s, 1)] {
        let sum = |r: &DomainReport| {
            if svc == 0 {
                r.summary.c2s.clone()
            } else {
                r.summary.s2s.clone()
            }
        };
        assert_eq!(got.status, tally(rs(), |r| Some(label(sum(r).status))));
        assert_eq!(got.starttls, tally(rs(), |r| sum(r).starttls.map(label)));
        assert_eq!(got.tls_version, tally(rs(), |r| sum(r).tls_version));
        assert_eq!(
            got.chain_verdict,
            tally(rs(), |r| sum(r).chain_verdict.map(label))
        );
        assert_eq!(got.eku_class, tally(rs(), |r| sum(r).eku_class.map(label)));
    }
    assert_eq!(
        s.acceptance,
        tally(rs(), |r| Some(label(r.summary.acceptance)))
    );
    let mut software = BTreeMap::new();
    for r in rs() {
        let sw = r.summary.software.clone().unwrap_or_default();
        *software.entry((sw.name, sw.version)).or_insert(0u64) += 1;
    }
    assert_eq!(s.software, software);
    // The mix must actually exercise several values per dimension.
    assert!(s.s2s.status.len() >= 3, "{:?}", s.s2s.status);
    assert!(s.s2s.eku_class.len() >= 3, "{:?}", s.s2s.eku_class);
    assert!(s.c2s.starttls.len() >= 3, "{:?}", s.c2s.starttls);
    assert!(s.s2s.chain_verdict.len() >= 2, "{:?}", s.s2s.chain_verdict);
}

/// A quick throughput figure: one real report copied under many names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_throughput() {
    let net = testnet(73, 1, &["cert_server_only"]).await;
    let report = probe_all(&net).await.remove(0);
    net.shutdown().await;
    let db = pg().await;
    let store = migrated(&db).await;
    let n = 300;
    let reports: Vec<DomainReport> = names("bench", n)
        .into_iter()
        .map(|d| DomainReport {
            domain: d,
            ..report.clone()
        })
        .collect();
    let (crawl, batch) = crawl_of(&store, "bench", &reports).await;
    let rows_per = {
        let r = from_report(&report);
        1 + r.endpoints.len() + r.chain_members.len() + r.dns_records.len() + r.certificates.len()
    };
    let t = Instant::now();
    // Four workers recording batches of 25, as a crawler would.
    let chunks: Vec<Vec<(i64, DomainReport)>> = batch.chunks(25).map(<[_]>::to_vec).collect();
    let written: usize = futures::stream::iter(chunks)
        .map(|c| {
            let store = store.clone();
            async move { store.record(crawl, &c).await.unwrap() }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    let took = t.elapsed();
    assert_eq!(written, n);
    eprintln!(
        "record throughput: {n} domains in {took:?}: {:.0} domains/s, ~{:.0} rows/s ({rows_per} rows per domain)",
        n as f64 / took.as_secs_f64(),
        (n * rows_per) as f64 / took.as_secs_f64()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_is_hidden() {
    let t = Instant::now();
    let err = Store::connect("postgres://postgres:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    match &err {
        StoreError::Unavailable { url, .. } => {
            assert_eq!(url, "postgres://postgres:***@127.0.0.1:1/x")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1:1") && !msg.contains("hunter2"),
        "{msg}"
    );
    // A refused connection is reported at once, not after the pool's retries.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(
        Store::connect("not a url").await,
        Err(StoreError::Config { .. })
    ));
}

// ---------------------------------------------------------------------
// Schema 2: acceptance evidence as typed rows, and the migration from 1.

/// Reports built by hand from the structs (no testnet): every kind of
/// acceptance evidence the schema has a column for.
mod hand {
    use time::macros::datetime;
    use xmpp_survey::acceptance::{
        AcceptanceReason, AcceptanceReport, AcceptanceVerdict, AttemptReport, DialbackOutcome,
        DialbackReport, InboundAuth, InboundReport, IqOutcome, ProbeCertKind,
    };
    use xmpp_survey::dns::{DnsOutcome, DnsReport, Dnssec, SrvLookup, SrvRecord, SrvService};
    use xmpp_survey::probe::report::{
        ConnectOutcome, DomainReport, EndpointKey, EndpointOutcome, EndpointReport, EndpointSource,
        Phase, Transport,
    };
    use xmpp_survey::tls::{
        CertInfo, ChainVerdict, Eku, EkuClass, KeyInfo, NameMatch, Sans, TlsFailure, TlsInfo,
    };
    use xmpp_survey::verdict::summarize;
    use xmpp_survey::xmpp::Service;
    use xmpp_survey::xmpp::iq::SoftwareVersion;
    use xmpp_survey::xmpp::sasl::SaslOutcome;

    pub fn cert(sha: char, client_auth: bool, self_signed: bool) -> CertInfo {
        CertInfo {
            sha256: sha.to_string().repeat(64),
            subject: format!("CN={sha}"),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-04-01 0:00 UTC),
            key: KeyInfo {
                algorithm: "ec".into(),
                bits: Some(256),
                curve: Some("P-256".into()),
            },
            signature_algorithm: "ecdsa-with-SHA256".into(),
            sans: Sans::default(),
            eku: Eku {
                present: true,
                server_auth: true,
                client_auth,
                any: false,
                oids: vec!["1.3.6.1.5.5.7.3.1".into()],
                class: if client_auth {
                    EkuClass::ClientAndServer
                } else {
                    EkuClass::ServerOnly
                },
            },
            is_ca: false,
            self_signed,
            lets_encrypt: false,
            anomalies: Vec::new(),
            renews_server_only: None,
        }
    }

    pub fn endpoint(service: Service, chain: Vec<CertInfo>) -> EndpointReport {
        EndpointReport {
            key: EndpointKey {
                service,
                transport: Transport::Starttls,
                host: "xmpp.hand.test".into(),
                ip: "192.0.2.9".parse().unwrap(),
                port: if service == Service::C2s { 5222 } else { 5269 },
            },
            source: EndpointSource::Srv,
            connect: ConnectOutcome::Connected,
            connect_ms: Some(1),
            outcome: EndpointOutcome::Complete,
            phase: None,
            detail: None,
            header: None,
            pre_tls: None,
            tls: Some(TlsInfo {
                failure: None,
                failure_detail: None,
                version: Some("TLSv1.3".into()),
                cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
                alpn: None,
                client_cert_requested: service == Service::S2s,
                client_cert_sent: false,
                chain,
                verdict: Some(ChainVerdict::Trusted),
                verdict_detail: None,
                name_match: Some(NameMatch::DnsId),
                dane_match: None,
            }),
            header_after_tls: None,
            post_tls: None,
            stream_error: None,
            starttls_injected_bytes: None,
        }
    }

    fn alerted(mut c: EndpointReport) -> EndpointReport {
        let t = c.tls.as_mut().unwrap();
        t.failure = Some(TlsFailure::Alert);
        t.failure_detail = Some("unsupported_certificate".into());
        c.outcome = EndpointOutcome::TlsFailed;
        c.phase = Some(Phase::StreamHeaderAfterTls);
        c
    }

    /// A domain without acceptance evidence (no probe identity).
    pub fn plain(domain: &str) -> DomainReport {
        let dns = DnsReport {
            srv: vec![SrvLookup {
                service: SrvService::XmppServer,
                outcome: DnsOutcome::Records,
                detail: None,
                records: vec![SrvRecord {
                    priority: 0,
                    weight: 0,
                    port: 5269,
                    target: "xmpp.hand.test".into(),
                }],
                decidedly_unavailable: false,
            }],
            hosts: vec![],
            tlsa: vec![],
            dnssec: Dnssec::NotValidated,
        };
        // Leaf client_and_server, intermediate server-only, self-signed root.
        let chain = vec![cert('a', true, false), cert('b', false, false)];
        let mut endpoints = vec![
            endpoint(Service::C2s, vec![cert('a', true, false)]),
            endpoint(Service::S2s, chain),
        ];
        endpoints[0].starttls_injected_bytes = Some(23);
        DomainReport {
            schema_version: 2,
            domain: domain.into(),
            started_at: datetime!(2026-03-02 10:00 UTC),
            duration_ms: 9,
            summary: summarize(&dns, &endpoints),
            dns,
            endpoints,
            acceptance: None,
        }
    }

    /// `alert = false`: EXTERNAL refused the server-only certificate, the
    /// control accepted (ping answered, version refused), dialback valid.
    /// `alert = true`: TLS alert on the server-only certificate, ping
    /// refused on the control, dialback error.
    pub fn accepting(domain: &str, alert: bool) -> DomainReport {
        let mut r = plain(domain);
        let conn = || endpoint(Service::S2s, vec![cert('c', false, false)]);
        let so = AttemptReport {
            cert: ProbeCertKind::ServerOnly,
            connection: if alert { alerted(conn()) } else { conn() },
            client_cert_sent: true,
            external_offered: (!alert).then_some(true),
            external: (!alert).then(|| SaslOutcome::Failure {
                condition: "not-authorized".into(),
                text: Some("unsupported certificate purpose".into()),
            }),
            external_fault: None,
            dialback_offered: Some(true),
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
            detail: alert.then(|| "TLS alert after our certificate".into()),
        };
        let cs = AttemptReport {
            cert: ProbeCertKind::ClientAndServer,
            connection: conn(),
            external_offered: Some(true),
            external: Some(SaslOutcome::Success),
            external_fault: None,
            ping: if alert {
                IqOutcome::Error {
                    condition: "feature-not-implemented".into(),
                }
            } else {
                IqOutcome::Result
            },
            version_query: IqOutcome::Error {
                condition: "service-unavailable".into(),
            },
            version: Some(SoftwareVersion {
                name: Some("ejabberd".into()),
                version: Some("24.12".into()),
                os: None,
            }),
            detail: None,
            ..so.clone()
        };
        let inbound = |auth, chain: Vec<CertInfo>| InboundReport {
            peer: domain.into(),
            at: datetime!(2026-03-02 10:00:01 UTC),
            tls: true,
            client_eku: chain.first().map(|c| c.eku.class),
            client_purpose: None,
            client_chain: chain,
            auth,
            replies: 1,
        };
        let verdict = AcceptanceVerdict::RejectsServerOnlyDialback;
        r.acceptance = Some(AcceptanceReport {
            probe_domain: "probe.test".into(),
            attempts: vec![so, cs],
            dialback: Some(DialbackReport {
                connection: conn(),
                outcome: if alert {
                    DialbackOutcome::Error {
                        condition: "remote-connection-failed".into(),
                    }
                } else {
                    DialbackOutcome::Valid
                },
                verify_received: !alert,
                ping: if alert {
                    IqOutcome::Error {
                        condition: "not-authorized".into(),
                    }
                } else {
                    IqOutcome::Timeout
                },
                version_query: IqOutcome::Error {
                    condition: "service-unavailable".into(),
                },
                version: None,
            }),
            inbound: vec![
                inbound(
                    InboundAuth::External {
                        outcome: SaslOutcome::Failure {
                            condition: "not-authorized".into(),
                            text: None,
                        },
                    },
                    vec![cert('d', false, false), cert('e', true, true)],
                ),
                inbound(InboundAuth::Dialback { valid: true }, vec![]),
                inbound(InboundAuth::VerifyOnly, vec![cert('f', true, false)]),
            ],
            software: None,
            verdict,
            reason_code: if alert {
                AcceptanceReason::TlsAlertOnServerOnly
            } else {
                AcceptanceReason::ExternalRefused
            },
            endpoint: Some("192.0.2.9:5269 starttls".into()),
            reason: Some("the server-only certificate was refused".into()),
        });
        r.summary.acceptance = verdict;
        r.summary.software = Some(SoftwareVersion {
            name: Some("ejabberd".into()),
            version: Some("24.12".into()),
            os: None,
        });
        r
    }
}

/// Columns added by migration 2 (`table.column`), new tables included.
async fn v2_columns(store: &Store) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name NOT IN ('crawl_id', 'domain_id')
           AND (table_name IN ('acceptance_attempts', 'acceptance_dialback', 'inbound_streams')
                OR (table_name, column_name) IN (
                    ('results', 'acceptance_reason'), ('results', 'acceptance_reason_text'),
                    ('results', 'acceptance_endpoint'), ('results', 'c2s_client_purpose'),
                    ('results', 's2s_client_purpose'), ('results', 'acceptance_ping'),
                    ('results', 'acceptance_version_query'),
                    ('endpoints', 'starttls_injected_bytes'), ('endpoints', 'client_purpose')))
         ORDER BY 1, 2",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
#[allow(clippy::type_complexity)] // rows read back as tuples
async fn record_fills_every_acceptance_table_and_column() {
    let db = pg().await;
    let store = migrated(&db).await;
    let mut broken = hand::accepting("d.hand.test", false);
    if let Some(a) = broken.acceptance.as_mut() {
        // A hostile server that never answers EXTERNAL.
        a.attempts[0].external = None;
        a.attempts[0].external_fault = Some(xmpp_survey::acceptance::ExchangeFault::Timeout);
    }
    let reports = vec![
        hand::accepting("a.hand.test", false),
        hand::accepting("b.hand.test", true),
        hand::plain("c.hand.test"),
        broken,
    ];
    // The row structs' keys are the new tables' columns.
    let rows = from_report(&reports[0]);
    let first = |v: serde_json::Value| v.as_array().expect("rows")[0].clone();
    for (table, row) in [
        (
            "acceptance_attempts",
            first(serde_json::to_value(&rows.acceptance_attempts).unwrap()),
        ),
        (
            "acceptance_dialback",
            serde_json::to_value(&rows.acceptance_dialback).unwrap(),
        ),
        (
            "inbound_streams",
            first(serde_json::to_value(&rows.inbound_streams).unwrap()),
        ),
    ] {
        assert_eq!(keys(&row), columns(&store, table).await, "{table}");
    }

    let (crawl, batch) = crawl_of(&store, "hand", &reports).await;
    assert_eq!(store.record(crawl, &batch).await.unwrap(), 4);
    assert_eq!(
        count(&store, "SELECT count(*) FROM acceptance_attempts").await,
        6
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM acceptance_dialback").await,
        3
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM inbound_streams").await,
        9
    );
    // Every new column holds a value somewhere.
    for (table, column) in v2_columns(&store).await {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert!(n > 0, "{table}.{column} is never filled");
    }
    // The values are the report's.
    let id = |d: &str| batch.iter().find(|(_, r)| r.domain == d).unwrap().0;
    let got: (
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT acceptance, acceptance_reason, acceptance_reason_text, acceptance_endpoint,
                s2s_client_purpose, acceptance_ping, acceptance_version_query
         FROM results WHERE crawl_id = $1 AND domain_id = $2",
    )
    .bind(crawl)
    .bind(id("a.hand.test"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        got,
        (
            "rejects_server_only_dialback".into(),
            "external_refused".into(),
            Some("the server-only certificate was refused".into()),
            "192.0.2.9:5269 starttls".into(),
            "intermediate_lacks_client_auth".into(),
            "result".into(),
            "error".into(),
        )
    );
    let attempts: Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    )> = sqlx::query_as(
        "SELECT cert_kind, external_outcome, external_condition, tls_failure, ping
             FROM acceptance_attempts WHERE crawl_id = $1 AND domain_id = $2 ORDER BY ordinal",
    )
    .bind(crawl)
    .bind(id("b.hand.test"))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [
            (
                "server_only".into(),
                None,
                None,
                Some("alert".into()),
                "not_attempted".into()
            ),
            (
                "client_and_server".into(),
                Some("success".into()),
                None,
                None,
                "error".into()
            ),
        ]
    );
    let plain: (String, Option<String>, i64) = sqlx::query_as(
        "SELECT acceptance_reason, acceptance_ping,
                (SELECT count(*) FROM acceptance_dialback d WHERE d.domain_id = r.domain_id)
         FROM results r WHERE crawl_id = $1 AND domain_id = $2",
    )
    .bind(crawl)
    .bind(id("c.hand.test"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(plain, ("no_probe_identity".into(), None, 0));
    let injected: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT starttls_injected_bytes FROM endpoints WHERE domain_id = $1 ORDER BY ordinal",
    )
    .bind(id("c.hand.test"))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(injected, [Some(23), None]);

    // A crawl that stopped on an error says why; resuming clears it.
    store.fail_crawl(crawl, "database full").await.unwrap();
    let state = async || -> (String, Option<String>, bool) {
        sqlx::query_as("SELECT status, error, finished_at IS NOT NULL FROM crawls WHERE id = $1")
            .bind(crawl)
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(
        state().await,
        ("failed".into(), Some("database full".into()), true)
    );
    store.create_or_resume_crawl(&meta("hand")).await.unwrap();
    assert_eq!(state().await, ("running".into(), None, false));
    assert!(matches!(
        store.fail_crawl(-1, "x").await,
        Err(StoreError::NoSuchCrawl(-1))
    ));
}

/// Every row of a table as JSON objects, sorted (a comparable dump).
async fn dump(store: &Store, table: &str) -> Vec<serde_json::Value> {
    let mut rows: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT to_jsonb(t) FROM {table} t"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.sort_by_key(|v| v.to_string());
    rows
}

async fn tables(store: &Store) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// A report as a schema-1 binary wrote it: no reason code, endpoint,
/// version-query outcome or client purpose; a ping not sent was absent.
fn as_json_schema_1(r: &DomainReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    v["schema_version"] = 1.into();
    for s in ["c2s", "s2s"] {
        v["summary"][s]
            .as_object_mut()
            .unwrap()
            .remove("client_purpose");
    }
    for e in v["endpoints"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("starttls_injected_bytes");
    }
    if let Some(a) = v.get_mut("acceptance").and_then(|a| a.as_object_mut()) {
        a.remove("reason_code");
        a.remove("endpoint");
        let v1_stream = |s: &mut serde_json::Value| {
            let s = s.as_object_mut().unwrap();
            s.remove("version_query");
            if s["ping"]["result"] == "not_attempted" {
                s.remove("ping");
            }
        };
        a["attempts"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(v1_stream);
        if let Some(d) = a.get_mut("dialback") {
            v1_stream(d);
        }
        for i in a["inbound"].as_array_mut().unwrap() {
            i.as_object_mut().unwrap().remove("client_purpose");
        }
    }
    v
}

#[tokio::test]
#[allow(clippy::type_complexity)] // rows read back as tuples
async fn migration_from_v1_keeps_every_row_and_backfills_the_evidence() {
    let db = pg().await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.migrate_to(1).await.unwrap(), vec![1]);
    assert_eq!(store.schema_version().await.unwrap(), Some(1));
    assert!(matches!(
        store.migrate_to(BINARY_VERSION + 1).await,
        Err(StoreError::UnknownSchemaVersion { .. })
    ));

    // A crawl written the version 1 way: raw SQL, v1 columns only, with
    // schema-1 reports (a) and a schema-2 report a newer probe wrote into
    // a version 1 database (b), and one without acceptance evidence (c).
    let v1 = hand::accepting("a.hand.test", false);
    let v2 = hand::accepting("b.hand.test", true);
    let plain = hand::plain("c.hand.test");
    let crawl: i64 = sqlx::query_scalar(
        "INSERT INTO crawls (label, vantage, software_version, roots_version, status, finished_at)
         VALUES ('v1', 'loopback', '0.0.1', 'test', 'finished', now()) RETURNING id",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    for (report, json) in [
        (&v1, as_json_schema_1(&v1)),
        (&v2, serde_json::to_value(&v2).unwrap()),
        (&plain, as_json_schema_1(&plain)),
    ] {
        let domain: i64 = sqlx::query_scalar("INSERT INTO domains (name) VALUES ($1) RETURNING id")
            .bind(&report.domain)
            .fetch_one(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO crawl_queue (crawl_id, domain_id, state, done_at) VALUES ($1, $2, 'done', now())",
        )
        .bind(crawl)
        .bind(domain)
        .execute(store.pool())
        .await
        .unwrap();
        let rows = from_report(report);
        let mut result = serde_json::to_value(&rows.result).unwrap();
        // Version 1: acceptance_reason held the text; no other new column.
        result["acceptance_reason"] = result["acceptance_reason_text"].clone();
        result["report"] = json;
        result["recorded_at"] = "2026-03-02T10:00:05Z".into();
        let ids = |n: usize| vec![domain; n];
        for (table, data, n) in [
            ("results", serde_json::json!([result]), 1),
            (
                "certificates",
                serde_json::to_value(&rows.certificates).unwrap(),
                rows.certificates.len(),
            ),
            (
                "endpoints",
                serde_json::to_value(&rows.endpoints).unwrap(),
                rows.endpoints.len(),
            ),
            (
                "chain_members",
                serde_json::to_value(&rows.chain_members).unwrap(),
                rows.chain_members.len(),
            ),
        ] {
            let (keys, extra) = if table == "certificates" {
                ("", " ON CONFLICT DO NOTHING")
            } else {
                ("'crawl_id', $2::bigint, 'domain_id', ($3::bigint[])[i]", "")
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} SELECT r.* FROM jsonb_array_elements($1) WITH ORDINALITY AS e(x, i),
                   LATERAL jsonb_populate_record(NULL::{table}, x || jsonb_build_object({keys})) r{extra}"
            )))
            .bind(data)
            .bind(crawl)
            .bind(ids(n))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        }
    }
    let v1_tables = tables(&store).await;
    let mut before = BTreeMap::new();
    for t in &v1_tables {
        before.insert(t.clone(), dump(&store, t).await);
    }
    assert_eq!(before["results"].len(), 3);

    assert_eq!(store.migrate().await.unwrap(), vec![2, 3, 4, 5, 6, 7]);

    // Every version 1 row is kept, every version 1 column unchanged (the
    // renamed one under its new name).
    for t in &v1_tables {
        let mut after = dump(&store, t).await;
        let old_keys: HashSet<String> = before[t]
            .first()
            .map(|r| r.as_object().unwrap().keys().cloned().collect())
            .unwrap_or_default();
        for row in &mut after {
            let o = row.as_object_mut().unwrap();
            if t == "results" {
                let text = o.remove("acceptance_reason_text").unwrap();
                o.insert("acceptance_reason".into(), text);
            }
            o.retain(|k, _| old_keys.contains(k));
        }
        if t == "schema_version" {
            after.retain(|r| r["version"] == 1);
        }
        after.sort_by_key(|v| v.to_string());
        assert_eq!(after, before[t], "{t}: a version 1 row was lost or changed");
    }

    // The backfill, from the schema-1 report (a).
    let domain_of = async |d: &str| -> i64 {
        sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
            .bind(d)
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let a = domain_of("a.hand.test").await;
    let result: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT acceptance_reason, acceptance_reason_text, s2s_client_purpose, c2s_client_purpose,
                    acceptance_ping, acceptance_version_query
             FROM results WHERE domain_id = $1",
    )
    .bind(a)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        result,
        (
            None,
            Some("the server-only certificate was refused".into()),
            Some("intermediate_lacks_client_auth".into()),
            Some("ok".into()),
            Some("result".into()),
            // Schema 1 kept the version (so the query was answered).
            Some("result".into()),
        )
    );
    let attempts: Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT cert_kind, external_outcome, external_condition, external_text, ping, software_name
             FROM acceptance_attempts WHERE domain_id = $1 ORDER BY ordinal",
    )
    .bind(a)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [
            (
                "server_only".into(),
                Some("failure".into()),
                Some("not-authorized".into()),
                Some("unsupported certificate purpose".into()),
                "not_attempted".into(),
                None
            ),
            (
                "client_and_server".into(),
                Some("success".into()),
                None,
                None,
                "result".into(),
                Some("ejabberd".into())
            ),
        ]
    );
    let dialback: (bool, bool, Option<String>, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT offered, attempted, outcome, ping, version_query FROM acceptance_dialback WHERE domain_id = $1",
    )
    .bind(a)
    .fetch_one(store.pool())
    .await
    .unwrap();
    // The version query after dialback: unknown in a schema-1 report.
    assert_eq!(
        dialback,
        (
            true,
            true,
            Some("valid".into()),
            Some("timeout".into()),
            None
        )
    );
    let inbound: Vec<(String, Option<String>, Option<String>, i32)> = sqlx::query_as(
        "SELECT auth_method, auth_outcome, client_purpose, client_chain_length
         FROM inbound_streams WHERE domain_id = $1 ORDER BY ordinal",
    )
    .bind(a)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        inbound,
        [
            (
                "external".into(),
                Some("failure".into()),
                Some("leaf_lacks_client_auth".into()),
                2
            ),
            ("dialback".into(), Some("valid".into()), None, 0),
            ("verify_only".into(), None, Some("ok".into()), 1),
        ]
    );
    let purposes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT client_purpose FROM endpoints WHERE domain_id = $1 ORDER BY ordinal",
    )
    .bind(a)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        purposes,
        [
            Some("ok".into()),
            Some("intermediate_lacks_client_auth".into())
        ]
    );
    let c = domain_of("c.hand.test").await;
    assert_eq!(
        count(&store, "SELECT count(*) FROM acceptance_dialback").await,
        2,
        "no acceptance evidence, no row"
    );
    let not_run: Option<String> =
        sqlx::query_scalar("SELECT acceptance_reason FROM results WHERE domain_id = $1")
            .bind(c)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(not_run, None, "not re-derived for version 1 rows");

    // A schema-2 report stored by version 1 (b) backfills exactly the rows
    // record() writes for it today.
    let b = domain_of("b.hand.test").await;
    let (crawl2, batch) = crawl_of(&store, "v2", std::slice::from_ref(&v2)).await;
    assert_eq!(store.record(crawl2, &batch).await.unwrap(), 1);
    for table in [
        "acceptance_attempts",
        "acceptance_dialback",
        "inbound_streams",
        "endpoints",
    ] {
        let of = async |crawl: i64| -> Vec<serde_json::Value> {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT to_jsonb(t) - 'crawl_id' FROM {table} t
                 WHERE crawl_id = $1 AND domain_id = $2 ORDER BY 1::text"
            )))
            .bind(crawl)
            .bind(b)
            .fetch_all(store.pool())
            .await
            .unwrap()
        };
        let (backfilled, recorded) = (of(crawl).await, of(crawl2).await);
        assert!(!recorded.is_empty(), "{table}");
        assert_eq!(backfilled, recorded, "{table}");
    }
    let new_columns = "acceptance_reason, acceptance_reason_text, acceptance_endpoint,
        c2s_client_purpose, s2s_client_purpose, acceptance_ping, acceptance_version_query";
    let of = async |crawl: i64| -> serde_json::Value {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(x) FROM (SELECT {new_columns} FROM results
             WHERE crawl_id = $1 AND domain_id = $2) x"
        )))
        .bind(crawl)
        .bind(b)
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    assert_eq!(of(crawl).await, of(crawl2).await);

    // Migrating again changes nothing.
    let mut all = BTreeMap::new();
    for t in tables(&store).await {
        all.insert(t.clone(), dump(&store, &t).await);
    }
    assert_eq!(store.migrate().await.unwrap(), Vec::<i32>::new());
    assert_eq!(
        store.migrate_to(1).await.unwrap(),
        Vec::<i32>::new(),
        "never down"
    );
    for (t, rows) in &all {
        assert_eq!(&dump(&store, t).await, rows, "{t} changed");
    }
    assert_eq!(store.schema_version().await.unwrap(), Some(BINARY_VERSION));
}

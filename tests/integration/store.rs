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
    assert_eq!(store.migrate().await.unwrap(), vec![1, 2]);
    let first = t.elapsed();
    let t = Instant::now();
    assert_eq!(store.migrate().await.unwrap(), Vec::<i32>::new());
    let second = t.elapsed();
    assert_eq!(store.schema_version().await.unwrap(), Some(BINARY_VERSION));
    assert_eq!(
        count(&store, "SELECT count(*) FROM schema_version").await,
        2
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
    assert_eq!(all, vec![1, 2], "each version applied exactly once");
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
        tables, 13,
        "schema_version, crawls, domains, crawl_queue, certificates, results, endpoints, chain_members, dns_records, opt_outs; acceptance_attempts, acceptance_dialback, inbound_streams"
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
    fn all<T: Copy>(v: &[T], exhaustive: fn(T)) -> Vec<T> {
        v.iter().copied().for_each(exhaustive);
        v.to_vec()
    }
    // The `match`es fail to compile when a variant is added.
    let statuses = all(
        &[
            S::TlsOk,
            S::NoTls,
            S::TlsFailed,
            S::StreamFailed,
            S::Unreachable,
            S::Blocked,
            S::NotOffered,
            S::NoAddress,
        ],
        |x| match x {
            S::TlsOk
            | S::NoTls
            | S::TlsFailed
            | S::StreamFailed
            | S::Unreachable
            | S::Blocked
            | S::NotOffered
            | S::NoAddress => {}
        },
    );
    let verdicts = all(
        &[
            V::Trusted,
            V::Expired,
            V::NotYetValid,
            V::SelfSigned,
            V::UnknownIssuer,
            V::NameMismatch,
            V::BadSignature,
            V::Invalid,
            V::NoCertificate,
        ],
        |x| match x {
            V::Trusted
            | V::Expired
            | V::NotYetValid
            | V::SelfSigned
            | V::UnknownIssuer
            | V::NameMismatch
            | V::BadSignature
            | V::Invalid
            | V::NoCertificate => {}
        },
    );
    let ekus = all(
        &[
            E::ServerOnly,
            E::ClientAndServer,
            E::ClientOnly,
            E::Any,
            E::Other,
        ],
        |x| match x {
            E::ServerOnly | E::ClientAndServer | E::ClientOnly | E::Any | E::Other => {}
        },
    );
    let names = all(
        &[
            N::DnsId,
            N::Wildcard,
            N::XmppAddr,
            N::SrvId,
            N::CommonName,
            N::None,
        ],
        |x| match x {
            N::DnsId | N::Wildcard | N::XmppAddr | N::SrvId | N::CommonName | N::None => {}
        },
    );
    let acceptance = all(
        &[
            A::AcceptsServerOnly,
            A::RejectsServerOnlyDialback,
            A::RejectsServerOnlyNoFallback,
            A::NoCertAuth,
            A::Inconclusive,
            A::Unreachable,
            A::TlsFailed,
            A::NotRun,
        ],
        |x| match x {
            A::AcceptsServerOnly
            | A::RejectsServerOnlyDialback
            | A::RejectsServerOnlyNoFallback
            | A::NoCertAuth
            | A::Inconclusive
            | A::Unreachable
            | A::TlsFailed
            | A::NotRun => {}
        },
    );
    let outcomes = all(
        &[
            O::Complete,
            O::BlockedAddress,
            O::ConnectFailed,
            O::StreamError,
            O::NoVersion,
            O::NoStarttls,
            O::StarttlsFailure,
            O::InjectionAfterProceed,
            O::TlsFailed,
            O::Timeout,
            O::ByteLimit,
            O::DepthLimit,
            O::InvalidXml,
            O::ForbiddenXml,
            O::Closed,
            O::UnexpectedElement,
        ],
        |x| match x {
            O::Complete
            | O::BlockedAddress
            | O::ConnectFailed
            | O::StreamError
            | O::NoVersion
            | O::NoStarttls
            | O::StarttlsFailure
            | O::InjectionAfterProceed
            | O::TlsFailed
            | O::Timeout
            | O::ByteLimit
            | O::DepthLimit
            | O::InvalidXml
            | O::ForbiddenXml
            | O::Closed
            | O::UnexpectedElement => {}
        },
    );
    let connects = all(
        &[
            C::Connected,
            C::Refused,
            C::Timeout,
            C::Unreachable,
            C::BlockedAddress,
        ],
        |x| match x {
            C::Connected | C::Refused | C::Timeout | C::Unreachable | C::BlockedAddress => {}
        },
    );
    let phases = all(
        &[
            P::Connect,
            P::StreamHeader,
            P::Features,
            P::Starttls,
            P::TlsHandshake,
            P::StreamHeaderAfterTls,
            P::FeaturesAfterTls,
        ],
        |x| match x {
            P::Connect
            | P::StreamHeader
            | P::Features
            | P::Starttls
            | P::TlsHandshake
            | P::StreamHeaderAfterTls
            | P::FeaturesAfterTls => {}
        },
    );
    let failures = all(
        &[
            F::Alert,
            F::ProtocolVersionTooOld,
            F::Incompatible,
            F::Timeout,
            F::Closed,
            F::ProtocolError,
            F::Other,
        ],
        |x| match x {
            F::Alert
            | F::ProtocolVersionTooOld
            | F::Incompatible
            | F::Timeout
            | F::Closed
            | F::ProtocolError
            | F::Other => {}
        },
    );
    let dns = all(
        &[
            D::Records,
            D::NoData,
            D::NxDomain,
            D::ServFail,
            D::Refused,
            D::Timeout,
            D::Error,
        ],
        |x| match x {
            D::Records
            | D::NoData
            | D::NxDomain
            | D::ServFail
            | D::Refused
            | D::Timeout
            | D::Error => {}
        },
    );
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
    ];
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

//! xmpp-survey: measures how ready XMPP servers are for TLS as it is in 2026.
//!
//! # Layout
//!
//! - [`model`]: the model layer: [`model::domain::DomainName`] (the one domain
//!   normaliser and JID parser), report types, outcome enums and their names.
//! - [`sources`]: where domains come from (text, CSV, XMPP Providers, the database), merged, opt-outs applied.
//! - [`dns`]: SRV/A/AAAA/TLSA discovery with typed outcomes (RFC 6120 §3.2, XEP-0368).
//! - [`xmpp`]: stream header, features and errors, parsed from bytes with hostile-input limits.
//! - [`negotiation`]: **the negotiation states**, sans I/O: client and server machines up to
//!   the post-TLS features, and the s2s exchanges after them (EXTERNAL, dialback, IQ).
//! - [`tls`]: certificate analysis (EKU class, SANs, identity) and chain verdicts; rustls config.
//! - [`net`]: the address policy (never probe private space unless told) and connect helper.
//! - [`s2s`]: the drivers of those exchanges ([`s2s::steps`]) and the receiving side of a stream.
//! - [`listener`]: the probe domain's dialback listener (authoritative server, receives replies).
//! - [`probe`]: the I/O that drives one domain's measurement; its [`probe::report`] is the output.
//! - [`verdict`]: **the verdict logic**: per-domain summary derived from a report (pure).
//! - [`facts`]: flattened, comparable facts shared by the testnet manifest and the truth test.
//! - [`store`]: PostgreSQL: schema and migrations, the crawl queue (leases), results.
//! - `testnet` (cargo feature `testnet`, tests and tools only): the local federation (private CA, authoritative DNS, simulated servers).
//! - [`limits`]: every timeout and cap, with why (or where it lives).
//! - [`budget`]: the file-descriptor budget (concurrency, listener streams) and local exhaustion.
//! - [`lookup`]: one domain for its operator: findings (status, evidence, advice from
//!   `seeds/advice.toml`) and history across crawls (`lookup`, the web pages).
//! - [`crawl`]: the crawl engine (leases, retries, batched writes) and `crawls.config`.
//! - [`report`]: `report`: a crawl's readiness report (HTML, Markdown, JSON, CSV).
//! - [`web`]: `serve`: the operators' web server (domain pages, badge,
//!   feeds, JSON API with its OpenAPI document, live probes, opt-outs).
//! - [`app`]: the application: one validated config per run, component assembly
//!   ([`app::setup`]), the config file ([`app::file`]), and what `probe`,
//!   `crawl`, `worker`, `survey`, `lookup` and `serve` do; `main.rs` only
//!   defines the flags, maps them into [`app::config`] and prints errors.

#![forbid(unsafe_code)]

pub mod acceptance;
pub mod app;
pub mod budget;
pub mod crawl;
pub mod dns;
pub mod facts;
pub mod identity;
pub mod limits;
pub mod listener;
pub mod lookup;
pub mod model;
pub mod negotiation;
pub mod net;
pub mod probe;
pub mod report;
pub mod s2s;
pub mod sources;
pub mod store;
#[cfg(feature = "testnet")]
pub mod testnet;
pub mod tls;
pub mod verdict;
pub mod web;
pub mod xmpp;

/// Installs aws-lc-rs as the process-wide rustls provider. Call first in
/// `main` and in test set-up: if feature unification ever enables a second
/// provider, rustls would otherwise panic on the first config it builds.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

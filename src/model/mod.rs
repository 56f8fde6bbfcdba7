//! **The model layer**: what is measured, as types and their names, with
//! no I/O and no dependency on anything above it (DNS records, TLS facts
//! and XMPP features come from the pure [`crate::dns`], [`crate::tls`]
//! and [`crate::xmpp`] parsers). Every other layer speaks these types.
//!
//! - [`domain`]: [`domain::DomainName`], the one normalising and validating
//!   constructor for domains, and the one JID-domainpart parser.
//! - [`report`]: one domain's probe (`--json` output, what the crawl stores).
//! - [`summary`]: the per-service summary derived by [`crate::verdict`].
//! - [`acceptance`]: the acceptance probe's evidence and verdict enums.
//! - [`finding`]: what an operator reads about a domain (status, evidence, advice).
//! - [`change`]: per-domain changes between two crawls (pure diff).
//! - [`names`]: enum names as they appear in JSON, SQL and reports.

pub mod acceptance;
pub mod change;
pub mod domain;
pub mod finding;
pub mod names;
pub mod report;
pub mod summary;

//! Human-readable output of probe reports for a terminal: one block per
//! domain with its evidence, and a one-line-per-domain results table.

use crate::dns::DnsOutcome;
use crate::model::acceptance::IqOutcome;
use crate::model::report::{DomainReport, EndpointOutcome, EndpointReport};
use crate::model::summary::ServiceSummary;
use std::fmt::Write;

use crate::model::names::label as name;

fn opt<T: serde::Serialize>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), name)
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn service_line(label: &str, s: &ServiceSummary) -> String {
    let mut line = format!("  {label}  {:<13}", name(s.status));
    if let Some(st) = s.starttls {
        let _ = write!(line, " STARTTLS {}", name(st));
    }
    if let Some(m) = s.sasl_before_tls.as_ref().filter(|m| !m.is_empty()) {
        let _ = write!(line, " · SASL before TLS: {}", m.join(" "));
    }
    if s.direct_tls {
        line.push_str(" · direct TLS");
    }
    if let Some(v) = &s.tls_version {
        let _ = write!(line, " · {v}");
    }
    if let Some(v) = s.chain_verdict {
        let _ = write!(line, " · cert {} ({})", name(v), opt(s.name_match));
    }
    if let Some(c) = s.eku_class {
        let _ = write!(line, " · EKU {}", name(c));
    }
    if let Some(p) = s.client_purpose {
        let _ = write!(line, " · as TLS client: {}", name(p));
    }
    if s.lets_encrypt == Some(true) {
        line.push_str(" · Let's Encrypt");
    }
    if let Some(d) = s.renews_server_only {
        let _ = write!(line, " · renews server-only by {d}");
    }
    if s.external_offered.is_some() {
        let _ = write!(line, " · EXTERNAL {}", yes_no(s.external_offered));
    }
    if s.dialback_offered.is_some() {
        let _ = write!(
            line,
            " · dialback {} · bidi {}",
            yes_no(s.dialback_offered),
            yes_no(s.bidi_offered)
        );
    }
    if let Some(d) = s.dane_match {
        let _ = write!(line, " · DANE {}", if d { "match" } else { "MISMATCH" });
    }
    line
}

fn endpoint_line(e: &EndpointReport) -> String {
    let mut line = format!(
        "    {} {:<10} {} {}:{} ",
        name(e.key.service),
        name(e.key.transport),
        e.key.host,
        e.key.ip,
        e.key.port
    );
    line.push_str(&name(e.outcome));
    if let Some(p) = e.phase.filter(|_| e.outcome != EndpointOutcome::Complete) {
        let _ = write!(line, " in {}", name(p));
    }
    if let Some(err) = &e.stream_error {
        let _ = write!(line, " <{}/>", err.condition);
    }
    if let Some(n) = e.starttls_injected_bytes {
        let _ = write!(
            line,
            " · STARTTLS INJECTION: {n} plaintext bytes after <proceed/> discarded"
        );
    }
    if let Some(t) = &e.tls {
        if let Some(f) = t.failure {
            let _ = write!(line, " · TLS {}", name(f));
        }
        if let (Some(v), Some(c)) = (&t.version, &t.cipher_suite) {
            let _ = write!(line, " · {v} {c}");
        }
        if let Some(a) = &t.alpn {
            let _ = write!(line, " · ALPN {a}");
        }
        if t.client_cert_requested {
            line.push_str(" · asks client cert");
        }
        if let Some(leaf) = t.chain.first() {
            let _ = write!(
                line,
                " · {} certs, leaf EKU {}, expires {}",
                t.chain.len(),
                name(leaf.eku.class),
                leaf.not_after.date()
            );
            if !leaf.anomalies.is_empty() {
                let odd: Vec<String> = leaf.anomalies.iter().map(name).collect();
                let _ = write!(line, " · certificate anomalies: {}", odd.join(", "));
            }
        }
    }
    if let Some(f) = &e.post_tls {
        let _ = write!(line, " · SASL: {}", f.sasl_mechanisms.join(" "));
    }
    if let Some(d) = &e.detail {
        let _ = write!(line, " ({d})");
    }
    line
}

/// A readable block for one domain.
pub fn domain(r: &DomainReport) -> String {
    let mut out = format!("{}  ({} ms)\n", r.domain, r.duration_ms);
    for l in &r.dns.srv {
        let recs: Vec<String> = l
            .records
            .iter()
            .map(|x| format!("{} {} {} {}", x.priority, x.weight, x.port, x.target))
            .collect();
        let _ = writeln!(
            out,
            "  dns  {:<19} {:<9} {}",
            l.service.label(),
            name(l.outcome),
            recs.join(", ")
        );
    }
    let tlsa = r
        .dns
        .tlsa
        .iter()
        .filter(|t| t.outcome == DnsOutcome::Records)
        .count();
    let _ = writeln!(
        out,
        "  dns  DNSSEC {} · TLSA records at {tlsa} name(s)",
        name(r.dns.dnssec)
    );
    let _ = writeln!(out, "{}", service_line("c2s", &r.summary.c2s));
    let _ = writeln!(out, "{}", service_line("s2s", &r.summary.s2s));
    for e in &r.endpoints {
        let _ = writeln!(out, "{}", endpoint_line(e));
    }
    out.push_str(&acceptance(r));
    out
}

/// The active probe's verdict and evidence (MEASUREMENTS §3).
fn acceptance(r: &DomainReport) -> String {
    let Some(a) = &r.acceptance else {
        return "  acceptance  not run (no probe identity: see --config, --probe-domain)\n".into();
    };
    let mut out = format!(
        "  acceptance  {} [{}]",
        name(a.verdict),
        name(a.reason_code)
    );
    if let Some(ep) = &a.endpoint {
        let _ = write!(out, " on {ep}");
    }
    if let Some(why) = &a.reason {
        let _ = write!(out, " — {why}");
    }
    out.push('\n');
    for at in &a.attempts {
        let tls = at.connection.tls.as_ref();
        let _ = write!(
            out,
            "    as {} ({}): cert requested {}, sent {}",
            a.probe_domain,
            name(at.cert),
            yes_no(tls.map(|t| t.client_cert_requested)),
            yes_no(Some(at.client_cert_sent)),
        );
        if let Some(f) = tls.and_then(|t| t.failure) {
            let detail = tls.and_then(|t| t.failure_detail.as_deref()).unwrap_or("");
            let _ = write!(out, ", TLS {} {detail}", name(f));
        }
        match &at.external {
            Some(crate::xmpp::sasl::SaslOutcome::Failure { condition, text }) => {
                let _ = write!(
                    out,
                    ", EXTERNAL failure <{condition}/>{}",
                    text.as_deref()
                        .map(|t| format!(" \"{t}\""))
                        .unwrap_or_default()
                );
            }
            Some(o) => {
                let _ = write!(out, ", EXTERNAL {}", name(o));
            }
            None => {
                let _ = write!(out, ", EXTERNAL offered {}", yes_no(at.external_offered));
            }
        }
        if at.ping != IqOutcome::NotAttempted {
            let _ = write!(out, ", ping {}", iq_label(&at.ping));
        }
        if at.version_query != IqOutcome::NotAttempted {
            let _ = write!(out, ", version query {}", iq_label(&at.version_query));
        }
        out.push('\n');
    }
    if let Some(d) = &a.dialback {
        let _ = writeln!(
            out,
            "    dialback: {} (our listener got db:verify: {})",
            name(&d.outcome),
            yes_no(Some(d.verify_received))
        );
    }
    for i in &a.inbound {
        let _ = writeln!(
            out,
            "    inbound from {}: TLS {}, client cert EKU {}, auth {}",
            i.peer,
            yes_no(Some(i.tls)),
            opt(i.client_eku),
            name(&i.auth)
        );
    }
    if let Some(sw) = &a.software {
        let _ = writeln!(
            out,
            "    software: {} {}",
            sw.name.as_deref().unwrap_or("?"),
            sw.version.as_deref().unwrap_or("?")
        );
    }
    out
}

/// One line per domain: the figures a reader scans first.
pub fn table(reports: &[DomainReport]) -> String {
    let w = reports
        .iter()
        .map(|r| r.domain.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<w$}  {:<13} {:<9} {:<13} {:<9} {:<8} {:<14} {:<17} {:<3} {:<8} {}\n",
        "domain",
        "c2s",
        "starttls",
        "s2s",
        "starttls",
        "tls",
        "cert",
        "eku",
        "le",
        "dialback",
        "acceptance"
    );
    for r in reports {
        let (c, s) = (&r.summary.c2s, &r.summary.s2s);
        let primary = if s.tls_version.is_some() { s } else { c };
        let _ = writeln!(
            out,
            "{:<w$}  {:<13} {:<9} {:<13} {:<9} {:<8} {:<14} {:<17} {:<3} {:<8} {}",
            r.domain,
            name(c.status),
            opt(c.starttls),
            name(s.status),
            opt(s.starttls),
            primary.tls_version.as_deref().unwrap_or("-"),
            opt(primary.chain_verdict),
            opt(primary.eku_class),
            yes_no(primary.lets_encrypt),
            yes_no(s.dialback_offered),
            name(r.summary.acceptance),
        );
    }
    out
}

/// `result`, `timeout`, or `error service-unavailable`.
fn iq_label(o: &IqOutcome) -> String {
    match o {
        IqOutcome::Error { condition } => format!("error {condition}"),
        other => crate::model::names::label(other),
    }
}

-- xmpp-survey PostgreSQL schema, version 1.
--
-- Applied by `Store::migrate()` (src/store/migrate.rs) inside one
-- transaction, which also records the version in `schema_version`; do not
-- edit this file once released: add migrations/NNNN_*.sql instead.
--
-- Every column's meaning is defined by docs' measurement contract
-- (MEASUREMENTS.md); the COMMENT ON statements below say which part.
-- Enum-like columns are TEXT with a CHECK listing the snake_case values the
-- Rust serde enums produce, so a report reads them without a lookup table.

CREATE TABLE schema_version (
    version    INTEGER     PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_version IS 'One row per applied schema migration; the highest version is the schema the database holds. A binary refuses a database whose version is newer than it knows.';
COMMENT ON COLUMN schema_version.version IS 'Migration number (1 = schema.sql).';
COMMENT ON COLUMN schema_version.applied_at IS 'When the migration was applied.';

CREATE TABLE crawls (
    id               BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label            TEXT        NOT NULL UNIQUE CHECK (label <> ''),
    started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    status           TEXT        NOT NULL DEFAULT 'running'
                                 CHECK (status IN ('running', 'finished', 'interrupted')),
    resumes          INTEGER     NOT NULL DEFAULT 0 CHECK (resumes >= 0),
    resumed_at       TIMESTAMPTZ,
    sources          JSONB       NOT NULL DEFAULT '[]',
    vantage          TEXT        NOT NULL,
    probe_domain     TEXT,
    software_version TEXT        NOT NULL,
    roots_version    TEXT        NOT NULL,
    config           JSONB       NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE crawls IS 'One survey run over a domain list (e.g. the weekly crawl). Everything a reader needs to reproduce or compare its verdicts: where it ran from, with which software and trust roots (MEASUREMENTS §4 "across crawls").';
COMMENT ON COLUMN crawls.id IS 'Surrogate key referenced by the queue and the results.';
COMMENT ON COLUMN crawls.label IS 'Human name, unique, e.g. 2026-W47; starting a crawl with an existing label resumes it.';
COMMENT ON COLUMN crawls.started_at IS 'When the crawl was first created.';
COMMENT ON COLUMN crawls.finished_at IS 'When it was marked finished or interrupted; NULL while running.';
COMMENT ON COLUMN crawls.status IS 'running, finished (every queued domain done or not tested) or interrupted (stopped early; may be resumed).';
COMMENT ON COLUMN crawls.resumes IS 'How many times the crawl was resumed after its creation.';
COMMENT ON COLUMN crawls.resumed_at IS 'When it was last resumed; NULL if never.';
COMMENT ON COLUMN crawls.sources IS 'Where the domain list came from (files, URLs, the db source of earlier crawls), as given by the operator.';
COMMENT ON COLUMN crawls.vantage IS 'Where the crawler ran from (operator-supplied: host, network, country): verdicts such as unreachable depend on it.';
COMMENT ON COLUMN crawls.probe_domain IS 'The probe identity used as from= in the acceptance probe (MEASUREMENTS §3, §5); NULL when the acceptance probe did not run.';
COMMENT ON COLUMN crawls.software_version IS 'xmpp-survey version (and git revision) that measured: verdict logic can change between versions.';
COMMENT ON COLUMN crawls.roots_version IS 'webpki-roots version: the public trust anchors behind every chain verdict (MEASUREMENTS §2).';
COMMENT ON COLUMN crawls.config IS 'The effective crawl configuration (timeouts, rate limits, address policy, extra CAs): the conditions the measurements were taken under.';

CREATE TABLE domains (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE
                           CHECK (name <> '' AND name = lower(name) AND name NOT LIKE '%.'),
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE domains IS 'Every XMPP domain ever enqueued; the "db" domain source of later crawls.';
COMMENT ON COLUMN domains.id IS 'Surrogate key referenced by the queue and the results.';
COMMENT ON COLUMN domains.name IS 'The XMPP domain, normalised: lowercase A-labels, no trailing dot.';
COMMENT ON COLUMN domains.first_seen IS 'When a domain list first contained it.';
COMMENT ON COLUMN domains.last_seen IS 'When a domain list last contained it (updated on every enqueue).';

CREATE TABLE crawl_queue (
    crawl_id    BIGINT      NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    domain_id   BIGINT      NOT NULL REFERENCES domains (id),
    state       TEXT        NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'leased', 'done', 'not_tested')),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    attempts    INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    not_before  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error  TEXT,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ,
    PRIMARY KEY (crawl_id, domain_id),
    CHECK (state <> 'leased' OR (lease_owner IS NOT NULL AND lease_until IS NOT NULL))
);
COMMENT ON TABLE crawl_queue IS 'The work list of a crawl: one row per domain to probe, leased by workers so a crash or a second worker never loses or doubles a domain.';
COMMENT ON COLUMN crawl_queue.crawl_id IS 'The crawl.';
COMMENT ON COLUMN crawl_queue.domain_id IS 'The domain to probe.';
COMMENT ON COLUMN crawl_queue.state IS 'queued (waiting, from not_before), leased (a worker probes it until lease_until), done (a result is stored), not_tested (given up or excluded; last_error says why).';
COMMENT ON COLUMN crawl_queue.lease_owner IS 'Worker holding the lease (free text: host, process, task).';
COMMENT ON COLUMN crawl_queue.lease_until IS 'When the lease expires; an expired lease is taken again by any worker.';
COMMENT ON COLUMN crawl_queue.attempts IS 'How many times the domain was leased in this crawl.';
COMMENT ON COLUMN crawl_queue.not_before IS 'Earliest time the domain may be leased (retry backoff).';
COMMENT ON COLUMN crawl_queue.last_error IS 'Why the last attempt did not produce a result, or why it is not tested (opted out, ...).';
COMMENT ON COLUMN crawl_queue.queued_at IS 'When the domain was added to this crawl.';
COMMENT ON COLUMN crawl_queue.done_at IS 'When it reached done or not_tested.';
-- Leasing scans these two partial indexes only (Store::lease).
CREATE INDEX crawl_queue_queued_idx ON crawl_queue (crawl_id, not_before) WHERE state = 'queued';
CREATE INDEX crawl_queue_leased_idx ON crawl_queue (crawl_id, lease_until) WHERE state = 'leased';
CREATE INDEX crawl_queue_domain_idx ON crawl_queue (domain_id);

CREATE TABLE certificates (
    sha256              TEXT        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    subject             TEXT        NOT NULL,
    issuer              TEXT        NOT NULL,
    serial              TEXT        NOT NULL,
    not_before          TIMESTAMPTZ NOT NULL,
    not_after           TIMESTAMPTZ NOT NULL,
    key_algorithm       TEXT        NOT NULL,
    key_bits            INTEGER,
    key_curve           TEXT,
    signature_algorithm TEXT        NOT NULL,
    eku_present         BOOLEAN     NOT NULL,
    eku_class           TEXT        NOT NULL
                                    CHECK (eku_class IN ('server_only', 'client_and_server', 'client_only', 'any', 'other')),
    eku_oids            TEXT[]      NOT NULL,
    sans                JSONB       NOT NULL,
    lets_encrypt        BOOLEAN     NOT NULL,
    is_ca               BOOLEAN     NOT NULL,
    self_signed         BOOLEAN     NOT NULL,
    renews_server_only  DATE,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    CHECK (first_seen <= last_seen)
);
COMMENT ON TABLE certificates IS 'Every certificate any endpoint presented, stored once by SHA-256 of its DER (MEASUREMENTS §2 "each certificate stored once").';
COMMENT ON COLUMN certificates.sha256 IS 'SHA-256 of the DER, lowercase hex: the certificate''s identity.';
COMMENT ON COLUMN certificates.subject IS 'Subject DN (RFC 4514 string).';
COMMENT ON COLUMN certificates.issuer IS 'Issuer DN (RFC 4514 string).';
COMMENT ON COLUMN certificates.serial IS 'Serial number, lowercase hex.';
COMMENT ON COLUMN certificates.not_before IS 'Validity start (notBefore).';
COMMENT ON COLUMN certificates.not_after IS 'Validity end (notAfter).';
COMMENT ON COLUMN certificates.key_algorithm IS 'Public key type: rsa, ec, ed25519, ed448 or the algorithm OID.';
COMMENT ON COLUMN certificates.key_bits IS 'Key size in bits (RSA modulus, EC field size); NULL if unknown.';
COMMENT ON COLUMN certificates.key_curve IS 'Named curve of an EC key (P-256, ...); NULL otherwise.';
COMMENT ON COLUMN certificates.signature_algorithm IS 'Signature algorithm name (ecdsa-with-SHA256, sha256WithRSAEncryption, ...) or OID.';
COMMENT ON COLUMN certificates.eku_present IS 'Whether the certificate has an Extended Key Usage extension at all.';
COMMENT ON COLUMN certificates.eku_class IS 'EKU class (MEASUREMENTS §2 table): server_only, client_and_server, client_only, any (no EKU or anyExtendedKeyUsage), other.';
COMMENT ON COLUMN certificates.eku_oids IS 'Every EKU purpose OID, dotted, in certificate order.';
COMMENT ON COLUMN certificates.sans IS 'Subject Alternative Names relevant to XMPP: {dns, xmpp_addr (id-on-xmppAddr), srv_id (id-on-dnsSRV), ip}.';
COMMENT ON COLUMN certificates.lets_encrypt IS 'Issued by Let''s Encrypt (by issuer organisation / known intermediates).';
COMMENT ON COLUMN certificates.is_ca IS 'basicConstraints cA is true.';
COMMENT ON COLUMN certificates.self_signed IS 'Subject equals issuer and the signature verifies with its own key.';
COMMENT ON COLUMN certificates.renews_server_only IS 'MEASUREMENTS §2 "will renew as server-only": the date this certificate''s successor turns server-only; NULL if it will not (as analysed when first stored).';
COMMENT ON COLUMN certificates.first_seen IS 'Probe time of the earliest sighting on any endpoint.';
COMMENT ON COLUMN certificates.last_seen IS 'Probe time of the latest sighting on any endpoint, to within 10 minutes (a shared intermediate is seen thousands of times per crawl; updating its row on each sighting would serialise the writers).';
CREATE INDEX certificates_not_after_idx ON certificates (not_after);

CREATE TABLE results (
    crawl_id                  BIGINT      NOT NULL,
    domain_id                 BIGINT      NOT NULL,
    probed_at                 TIMESTAMPTZ NOT NULL,
    duration_ms               BIGINT      NOT NULL CHECK (duration_ms >= 0),
    recorded_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    dnssec                    TEXT        NOT NULL CHECK (dnssec IN ('validated', 'not_validated', 'unknown')),
    -- c2s (client-to-server)
    c2s_status                TEXT        NOT NULL
        CHECK (c2s_status IN ('tls_ok', 'no_tls', 'tls_failed', 'stream_failed', 'unreachable', 'blocked', 'not_offered', 'no_address')),
    c2s_endpoints             INTEGER     NOT NULL,
    c2s_endpoints_tls_ok      INTEGER     NOT NULL,
    c2s_starttls              TEXT        CHECK (c2s_starttls IN ('required', 'optional', 'absent')),
    c2s_sasl_before_tls       TEXT[],
    c2s_direct_tls            BOOLEAN     NOT NULL,
    c2s_tls_version           TEXT,
    c2s_chain_verdict         TEXT
        CHECK (c2s_chain_verdict IN ('trusted', 'expired', 'not_yet_valid', 'self_signed', 'unknown_issuer', 'name_mismatch', 'bad_signature', 'invalid', 'no_certificate')),
    c2s_name_match            TEXT
        CHECK (c2s_name_match IN ('dns_id', 'wildcard', 'xmpp_addr', 'srv_id', 'common_name', 'none')),
    c2s_eku_class             TEXT
        CHECK (c2s_eku_class IN ('server_only', 'client_and_server', 'client_only', 'any', 'other')),
    c2s_lets_encrypt          BOOLEAN,
    c2s_renews_server_only    DATE,
    c2s_client_cert_requested BOOLEAN,
    c2s_external_offered      BOOLEAN,
    c2s_dane_match            BOOLEAN,
    -- s2s (server-to-server)
    s2s_status                TEXT        NOT NULL
        CHECK (s2s_status IN ('tls_ok', 'no_tls', 'tls_failed', 'stream_failed', 'unreachable', 'blocked', 'not_offered', 'no_address')),
    s2s_endpoints             INTEGER     NOT NULL,
    s2s_endpoints_tls_ok      INTEGER     NOT NULL,
    s2s_starttls              TEXT        CHECK (s2s_starttls IN ('required', 'optional', 'absent')),
    s2s_sasl_before_tls       TEXT[],
    s2s_direct_tls            BOOLEAN     NOT NULL,
    s2s_tls_version           TEXT,
    s2s_chain_verdict         TEXT
        CHECK (s2s_chain_verdict IN ('trusted', 'expired', 'not_yet_valid', 'self_signed', 'unknown_issuer', 'name_mismatch', 'bad_signature', 'invalid', 'no_certificate')),
    s2s_name_match            TEXT
        CHECK (s2s_name_match IN ('dns_id', 'wildcard', 'xmpp_addr', 'srv_id', 'common_name', 'none')),
    s2s_eku_class             TEXT
        CHECK (s2s_eku_class IN ('server_only', 'client_and_server', 'client_only', 'any', 'other')),
    s2s_lets_encrypt          BOOLEAN,
    s2s_renews_server_only    DATE,
    s2s_client_cert_requested BOOLEAN,
    s2s_external_offered      BOOLEAN,
    s2s_dialback_offered      BOOLEAN,
    s2s_bidi_offered          BOOLEAN,
    s2s_dane_match            BOOLEAN,
    -- acceptance probe and software
    acceptance                TEXT        NOT NULL
        CHECK (acceptance IN ('accepts_server_only', 'rejects_server_only_dialback', 'rejects_server_only_no_fallback', 'no_cert_auth', 'inconclusive', 'unreachable', 'tls_failed', 'not_run')),
    acceptance_reason         TEXT,
    software_name             TEXT,
    software_version          TEXT,
    report                    JSONB       NOT NULL,
    PRIMARY KEY (crawl_id, domain_id),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES crawl_queue (crawl_id, domain_id) ON DELETE CASCADE
);
COMMENT ON TABLE results IS 'One probed domain in one crawl: the per-domain verdicts as typed columns (what reports group by, MEASUREMENTS §4) and the whole probe report as raw evidence. The primary key makes a duplicate result impossible.';
COMMENT ON COLUMN results.crawl_id IS 'The crawl.';
COMMENT ON COLUMN results.domain_id IS 'The domain.';
COMMENT ON COLUMN results.probed_at IS 'When the probe of this domain started.';
COMMENT ON COLUMN results.duration_ms IS 'Wall time of the whole probe, milliseconds.';
COMMENT ON COLUMN results.recorded_at IS 'When the result was stored.';
COMMENT ON COLUMN results.dnssec IS 'Whether DNS answers were DNSSEC-validated (resolver AD bit on the _xmpp-server SRV answer): validated, not_validated, unknown.';
COMMENT ON COLUMN results.c2s_status IS 'c2s reachability, best first: tls_ok (an endpoint reached post-TLS features), no_tls (clear text only), tls_failed, stream_failed (XMPP failed before TLS), unreachable (no TCP), blocked (address policy), not_offered (SRV target "."), no_address (DNS gave nothing to try).';
COMMENT ON COLUMN results.c2s_endpoints IS 'c2s endpoints probed.';
COMMENT ON COLUMN results.c2s_endpoints_tls_ok IS 'c2s endpoints that reached post-TLS features.';
COMMENT ON COLUMN results.c2s_starttls IS 'c2s STARTTLS offer of the first endpoint that showed pre-TLS features: required, optional, absent (MEASUREMENTS §4 "c2s STARTTLS required / optional / absent"); NULL if none did.';
COMMENT ON COLUMN results.c2s_sasl_before_tls IS 'SASL mechanisms the c2s endpoint offered before TLS (PLAIN here = passwords can travel in clear, RFC 6120 §13.8); NULL if no pre-TLS features were seen.';
COMMENT ON COLUMN results.c2s_direct_tls IS 'A c2s direct-TLS endpoint (XEP-0368) completed TLS.';
COMMENT ON COLUMN results.c2s_tls_version IS 'TLS version of the primary c2s endpoint (the first, in the order a client tries them, that completed TLS), e.g. TLSv1.3.';
COMMENT ON COLUMN results.c2s_chain_verdict IS 'Chain verdict of the primary c2s endpoint against the public roots, for the XMPP domain (MEASUREMENTS §2).';
COMMENT ON COLUMN results.c2s_name_match IS 'Which identifier of the primary c2s certificate matched the XMPP domain: dns_id, wildcard, xmpp_addr, srv_id, common_name (reported, not trusted), none.';
COMMENT ON COLUMN results.c2s_eku_class IS 'EKU class of the primary c2s end-entity certificate (MEASUREMENTS §2 table).';
COMMENT ON COLUMN results.c2s_lets_encrypt IS 'The primary c2s end-entity certificate was issued by Let''s Encrypt.';
COMMENT ON COLUMN results.c2s_renews_server_only IS 'Date the primary c2s certificate''s successor turns server-only, if it will (MEASUREMENTS §2).';
COMMENT ON COLUMN results.c2s_client_cert_requested IS 'The c2s server sent a TLS CertificateRequest.';
COMMENT ON COLUMN results.c2s_external_offered IS 'SASL EXTERNAL offered on c2s after TLS.';
COMMENT ON COLUMN results.c2s_dane_match IS 'The primary c2s chain matched a TLSA record (RFC 7673); NULL when there were no TLSA records.';
COMMENT ON COLUMN results.s2s_status IS 's2s reachability; same values as c2s_status.';
COMMENT ON COLUMN results.s2s_endpoints IS 's2s endpoints probed.';
COMMENT ON COLUMN results.s2s_endpoints_tls_ok IS 's2s endpoints that reached post-TLS features.';
COMMENT ON COLUMN results.s2s_starttls IS 's2s STARTTLS offer (MEASUREMENTS §4 "s2s STARTTLS required"): required, optional, absent.';
COMMENT ON COLUMN results.s2s_sasl_before_tls IS 'SASL mechanisms the s2s endpoint offered before TLS.';
COMMENT ON COLUMN results.s2s_direct_tls IS 'An s2s direct-TLS endpoint (XEP-0368) completed TLS.';
COMMENT ON COLUMN results.s2s_tls_version IS 'TLS version of the primary s2s endpoint.';
COMMENT ON COLUMN results.s2s_chain_verdict IS 'Chain verdict of the primary s2s endpoint (MEASUREMENTS §2).';
COMMENT ON COLUMN results.s2s_name_match IS 'Which identifier of the primary s2s certificate matched the XMPP domain.';
COMMENT ON COLUMN results.s2s_eku_class IS 'EKU class of the primary s2s end-entity certificate: what a receiving server checks when this domain opens s2s (MEASUREMENTS §1).';
COMMENT ON COLUMN results.s2s_lets_encrypt IS 'The primary s2s end-entity certificate was issued by Let''s Encrypt.';
COMMENT ON COLUMN results.s2s_renews_server_only IS 'Date the primary s2s certificate''s successor turns server-only, if it will (MEASUREMENTS §2, §4 "by month").';
COMMENT ON COLUMN results.s2s_client_cert_requested IS 'The s2s server sent a TLS CertificateRequest to the passive probe.';
COMMENT ON COLUMN results.s2s_external_offered IS 'SASL EXTERNAL (XEP-0178) offered on s2s after TLS.';
COMMENT ON COLUMN results.s2s_dialback_offered IS 'Server Dialback (XEP-0220) offered on s2s after TLS.';
COMMENT ON COLUMN results.s2s_bidi_offered IS 'Bidirectional s2s (XEP-0288) offered after TLS.';
COMMENT ON COLUMN results.s2s_dane_match IS 'The primary s2s chain matched a TLSA record (RFC 7673); NULL when there were no TLSA records.';
COMMENT ON COLUMN results.acceptance IS 'Acceptance of server-only certificates (MEASUREMENTS §3 verdict table); not_run when the crawl had no probe identity.';
COMMENT ON COLUMN results.acceptance_reason IS 'Why the acceptance verdict was reached, in words (MEASUREMENTS §3 "say why").';
COMMENT ON COLUMN results.software_name IS 'Server software name from XEP-0092, when the acceptance probe authenticated and asked.';
COMMENT ON COLUMN results.software_version IS 'Server software version from XEP-0092.';
COMMENT ON COLUMN results.report IS 'The whole DomainReport (docs/probe-json-schema.md): the raw evidence every column above is derived from.';
CREATE INDEX results_domain_idx ON results (domain_id, crawl_id);
CREATE INDEX results_c2s_status_idx ON results (crawl_id, c2s_status);
CREATE INDEX results_s2s_status_idx ON results (crawl_id, s2s_status);
CREATE INDEX results_s2s_eku_idx ON results (crawl_id, s2s_eku_class);
CREATE INDEX results_s2s_chain_idx ON results (crawl_id, s2s_chain_verdict);
CREATE INDEX results_acceptance_idx ON results (crawl_id, acceptance);
CREATE INDEX results_software_idx ON results (crawl_id, software_name, software_version);
CREATE INDEX results_s2s_renews_idx ON results (crawl_id, s2s_renews_server_only)
    WHERE s2s_renews_server_only IS NOT NULL;

CREATE TABLE endpoints (
    crawl_id              BIGINT  NOT NULL,
    domain_id             BIGINT  NOT NULL,
    ordinal               INTEGER NOT NULL CHECK (ordinal >= 0),
    service               TEXT    NOT NULL CHECK (service IN ('c2s', 's2s')),
    transport             TEXT    NOT NULL CHECK (transport IN ('starttls', 'direct_tls')),
    host                  TEXT    NOT NULL,
    ip                    INET    NOT NULL,
    port                  INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    source                TEXT    NOT NULL CHECK (source IN ('srv', 'fallback')),
    connect               TEXT    NOT NULL
        CHECK (connect IN ('connected', 'refused', 'timeout', 'unreachable', 'blocked_address')),
    connect_ms            BIGINT,
    outcome               TEXT    NOT NULL
        CHECK (outcome IN ('complete', 'blocked_address', 'connect_failed', 'stream_error', 'no_version', 'no_starttls', 'starttls_failure', 'injection_after_proceed', 'tls_failed', 'timeout', 'byte_limit', 'depth_limit', 'invalid_xml', 'forbidden_xml', 'closed', 'unexpected_element')),
    phase                 TEXT
        CHECK (phase IN ('connect', 'stream_header', 'features', 'starttls', 'tls_handshake', 'stream_header_after_tls', 'features_after_tls')),
    starttls              TEXT    CHECK (starttls IN ('required', 'optional', 'absent')),
    tls_failure           TEXT
        CHECK (tls_failure IN ('alert', 'protocol_version_too_old', 'incompatible', 'timeout', 'closed', 'protocol_error', 'other')),
    tls_version           TEXT,
    cipher_suite          TEXT,
    alpn                  TEXT,
    client_cert_requested BOOLEAN,
    chain_verdict         TEXT
        CHECK (chain_verdict IN ('trusted', 'expired', 'not_yet_valid', 'self_signed', 'unknown_issuer', 'name_mismatch', 'bad_signature', 'invalid', 'no_certificate')),
    name_match            TEXT
        CHECK (name_match IN ('dns_id', 'wildcard', 'xmpp_addr', 'srv_id', 'common_name', 'none')),
    dane_match            BOOLEAN,
    leaf_sha256           TEXT    REFERENCES certificates (sha256),
    evidence              JSONB   NOT NULL,
    PRIMARY KEY (crawl_id, domain_id, ordinal),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES results (crawl_id, domain_id) ON DELETE CASCADE
);
COMMENT ON TABLE endpoints IS 'Every endpoint (service, host, IP, port, transport) the passive probe tried for a domain, in the order a peer would try them (MEASUREMENTS §2 "per endpoint").';
COMMENT ON COLUMN endpoints.crawl_id IS 'The crawl.';
COMMENT ON COLUMN endpoints.domain_id IS 'The domain.';
COMMENT ON COLUMN endpoints.ordinal IS 'Position in the report''s endpoint list (0 first): c2s then s2s, in trial order.';
COMMENT ON COLUMN endpoints.service IS 'c2s or s2s.';
COMMENT ON COLUMN endpoints.transport IS 'starttls (RFC 6120 §5) or direct_tls (XEP-0368).';
COMMENT ON COLUMN endpoints.host IS 'SRV target (or the domain itself for fallback), lowercase, no trailing dot.';
COMMENT ON COLUMN endpoints.ip IS 'The address connected to (or refused by the address policy).';
COMMENT ON COLUMN endpoints.port IS 'The port connected to.';
COMMENT ON COLUMN endpoints.source IS 'srv (an SRV record) or fallback (RFC 6120 §3.2.2: the domain''s own A/AAAA on the default port).';
COMMENT ON COLUMN endpoints.connect IS 'TCP connect result: connected, refused, timeout, unreachable, blocked_address (not attempted, MEASUREMENTS §5).';
COMMENT ON COLUMN endpoints.connect_ms IS 'Milliseconds the TCP connect took, when attempted.';
COMMENT ON COLUMN endpoints.outcome IS 'Where and why the probe of this endpoint ended; complete = reached post-TLS features.';
COMMENT ON COLUMN endpoints.phase IS 'The phase the outcome happened in (for timeouts, limits, closes).';
COMMENT ON COLUMN endpoints.starttls IS 'STARTTLS offer in the pre-TLS features: required, optional, absent; NULL without pre-TLS features (direct TLS, early failure).';
COMMENT ON COLUMN endpoints.tls_failure IS 'Why TLS failed (alert, protocol_version_too_old, ...); NULL if TLS succeeded or was not attempted.';
COMMENT ON COLUMN endpoints.tls_version IS 'Negotiated TLS version, e.g. TLSv1.3.';
COMMENT ON COLUMN endpoints.cipher_suite IS 'Negotiated cipher suite (IANA name).';
COMMENT ON COLUMN endpoints.alpn IS 'ALPN protocol the server selected (direct TLS: xmpp-client / xmpp-server).';
COMMENT ON COLUMN endpoints.client_cert_requested IS 'The server sent a TLS CertificateRequest; NULL if TLS was not attempted.';
COMMENT ON COLUMN endpoints.chain_verdict IS 'Chain verdict of this endpoint for the XMPP domain (MEASUREMENTS §2).';
COMMENT ON COLUMN endpoints.name_match IS 'Which identifier of the end-entity certificate matched the XMPP domain.';
COMMENT ON COLUMN endpoints.dane_match IS 'The chain matched a TLSA record of this endpoint; NULL when there were none.';
COMMENT ON COLUMN endpoints.leaf_sha256 IS 'The end-entity certificate presented; the whole chain is in chain_members.';
COMMENT ON COLUMN endpoints.evidence IS 'The endpoint''s JSON report (stream headers, features before/after TLS, stream error, failure details) with tls.chain replaced by chain_sha256, the list of certificate hashes.';
CREATE INDEX endpoints_leaf_idx ON endpoints (leaf_sha256);
CREATE INDEX endpoints_ip_idx ON endpoints (ip);

CREATE TABLE chain_members (
    crawl_id  BIGINT  NOT NULL,
    domain_id BIGINT  NOT NULL,
    ordinal   INTEGER NOT NULL,
    position  INTEGER NOT NULL CHECK (position >= 0),
    sha256    TEXT    NOT NULL REFERENCES certificates (sha256),
    PRIMARY KEY (crawl_id, domain_id, ordinal, position),
    FOREIGN KEY (crawl_id, domain_id, ordinal) REFERENCES endpoints (crawl_id, domain_id, ordinal) ON DELETE CASCADE
);
COMMENT ON TABLE chain_members IS 'The chain each endpoint presented, certificate by certificate, so intermediates (and their EKU, MEASUREMENTS §2 "EKU list of every certificate in the chain") can be queried.';
COMMENT ON COLUMN chain_members.crawl_id IS 'The crawl.';
COMMENT ON COLUMN chain_members.domain_id IS 'The domain.';
COMMENT ON COLUMN chain_members.ordinal IS 'The endpoint (endpoints.ordinal).';
COMMENT ON COLUMN chain_members.position IS 'Position in the presented chain: 0 = end-entity, then as sent.';
COMMENT ON COLUMN chain_members.sha256 IS 'The certificate.';
CREATE INDEX chain_members_sha256_idx ON chain_members (sha256);

CREATE TABLE dns_records (
    crawl_id  BIGINT  NOT NULL,
    domain_id BIGINT  NOT NULL,
    ordinal   INTEGER NOT NULL CHECK (ordinal >= 0),
    name      TEXT    NOT NULL,
    rtype     TEXT    NOT NULL CHECK (rtype IN ('SRV', 'A', 'AAAA', 'TLSA')),
    outcome   TEXT    NOT NULL
        CHECK (outcome IN ('records', 'no_data', 'nx_domain', 'serv_fail', 'refused', 'timeout', 'error')),
    data      JSONB   NOT NULL,
    PRIMARY KEY (crawl_id, domain_id, ordinal),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES results (crawl_id, domain_id) ON DELETE CASCADE
);
COMMENT ON TABLE dns_records IS 'One row per DNS question the probe asked for a domain, with its outcome: NXDOMAIN, SERVFAIL, timeout and "no records" are different answers (MEASUREMENTS §2).';
COMMENT ON COLUMN dns_records.crawl_id IS 'The crawl.';
COMMENT ON COLUMN dns_records.domain_id IS 'The domain.';
COMMENT ON COLUMN dns_records.ordinal IS 'Order of the question in the report: SRV (4 names), then A/AAAA per host, then TLSA.';
COMMENT ON COLUMN dns_records.name IS 'The owner name asked, no trailing dot, e.g. _xmpp-server._tcp.example.org.';
COMMENT ON COLUMN dns_records.rtype IS 'Record type asked: SRV, A, AAAA, TLSA.';
COMMENT ON COLUMN dns_records.outcome IS 'How the question was answered: records, no_data, nx_domain, serv_fail, refused, timeout, error.';
COMMENT ON COLUMN dns_records.data IS 'The answer: SRV {records [{priority, weight, port, target}], decidedly_unavailable, detail}; A/AAAA {addrs, cnames}; TLSA {records [{usage, selector, matching, data}]}.';
CREATE INDEX dns_records_type_idx ON dns_records (crawl_id, rtype, outcome);

CREATE TABLE opt_outs (
    domain   TEXT        PRIMARY KEY CHECK (domain = lower(domain)),
    reason   TEXT        NOT NULL DEFAULT '',
    added_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE opt_outs IS 'Domains whose operators asked not to be probed (MEASUREMENTS §5): never enqueued, and dropped from running crawls'' queues when added.';
COMMENT ON COLUMN opt_outs.domain IS 'The XMPP domain, normalised like domains.name (exact match; subdomains are not implied).';
COMMENT ON COLUMN opt_outs.reason IS 'Why, and who asked (free text).';
COMMENT ON COLUMN opt_outs.added_at IS 'When the opt-out was recorded.';

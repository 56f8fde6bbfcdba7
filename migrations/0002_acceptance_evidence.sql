-- xmpp-survey PostgreSQL schema, version 2: the acceptance evidence
-- (MEASUREMENTS §3) as typed tables and columns, beside the JSONB report
-- that held it alone in version 1; crawls that stopped on an error.
--
-- Applied by `Store::migrate()` after schema.sql (version 1), in one
-- transaction. Existing rows are kept: every version 1 column keeps its
-- value (results.acceptance_reason, which held the verdict's text, is
-- renamed acceptance_reason_text), and the new tables and columns are
-- backfilled from results.report where the report holds the information.
-- Do not edit once released: add migrations/0003_*.sql instead.

-- Crawls ---------------------------------------------------------------

ALTER TABLE crawls DROP CONSTRAINT crawls_status_check;
ALTER TABLE crawls ADD CONSTRAINT crawls_status_check
    CHECK (status IN ('running', 'finished', 'interrupted', 'failed'));
ALTER TABLE crawls ADD COLUMN error TEXT;
ALTER TABLE crawls ADD CONSTRAINT crawls_error_check
    CHECK ((status = 'failed') = (error IS NOT NULL));
COMMENT ON COLUMN crawls.status IS 'running, finished (every queued domain done or not tested), interrupted (stopped early; may be resumed) or failed (stopped on an error, see error; may be resumed).';
COMMENT ON COLUMN crawls.finished_at IS 'When it was marked finished, interrupted or failed; NULL while running.';
COMMENT ON COLUMN crawls.error IS 'Why the crawl stopped on an error (status failed); NULL otherwise, and cleared when the crawl is resumed.';

-- Results: typed acceptance columns -------------------------------------

ALTER TABLE results RENAME COLUMN acceptance_reason TO acceptance_reason_text;
COMMENT ON COLUMN results.acceptance_reason_text IS 'Why the acceptance verdict was reached, in words: conditions, alert names, the dialback outcome (MEASUREMENTS §3 "say why"); never matched on, see acceptance_reason.';
ALTER TABLE results
    ADD COLUMN acceptance_reason TEXT
        CHECK (acceptance_reason IN ('no_probe_identity', 'no_s2s_address', 's2s_unreachable', 'no_tls_session', 'external_succeeded', 'no_certificate_request', 'attempt_incomplete', 'both_certificates_refused', 'tls_alert_on_server_only', 'external_refused', 'external_not_offered')),
    ADD COLUMN acceptance_endpoint TEXT,
    ADD COLUMN c2s_client_purpose TEXT
        CHECK (c2s_client_purpose IN ('ok', 'leaf_lacks_client_auth', 'intermediate_lacks_client_auth')),
    ADD COLUMN s2s_client_purpose TEXT
        CHECK (s2s_client_purpose IN ('ok', 'leaf_lacks_client_auth', 'intermediate_lacks_client_auth')),
    ADD COLUMN acceptance_ping TEXT
        CHECK (acceptance_ping IN ('not_attempted', 'result', 'error', 'timeout')),
    ADD COLUMN acceptance_version_query TEXT
        CHECK (acceptance_version_query IN ('not_attempted', 'result', 'error', 'timeout'));
COMMENT ON COLUMN results.acceptance_reason IS 'Why the acceptance verdict was reached, as a stable code (AcceptanceReason, MEASUREMENTS §3): what reports group by. no_probe_identity for not_run; NULL for rows recorded before schema 2 whose report carried no code (it is not re-derived).';
COMMENT ON COLUMN results.acceptance_endpoint IS 'The s2s endpoint the acceptance attempts ran against ("ip:port transport"); NULL when no attempt was made or the report predates it.';
COMMENT ON COLUMN results.c2s_client_purpose IS 'Whether the primary c2s chain passes a strict TLS-client purpose check (OpenSSL X509_PURPOSE_SSL_CLIENT): ok, leaf_lacks_client_auth, intermediate_lacks_client_auth; NULL without a chain.';
COMMENT ON COLUMN results.s2s_client_purpose IS 'Whether the primary s2s chain passes a strict TLS-client purpose check when this domain opens s2s to a strict peer (MEASUREMENTS §1, §4 federation impact): ok, leaf_lacks_client_auth, intermediate_lacks_client_auth; NULL without a chain.';
COMMENT ON COLUMN results.acceptance_ping IS 'Answer to the XEP-0199 ping on the first authenticated acceptance stream (attempts in order, then dialback): not_attempted, result, error, timeout; NULL when no stream authenticated.';
COMMENT ON COLUMN results.acceptance_version_query IS 'Answer to the XEP-0092 version query on that stream: not_attempted, result, error (software hidden on purpose), timeout; NULL when no stream authenticated, or unknown (reports before schema 2 did not record a refused query).';
CREATE INDEX results_acceptance_reason_idx ON results (crawl_id, acceptance, acceptance_reason);
CREATE INDEX results_s2s_client_purpose_idx ON results (crawl_id, s2s_client_purpose);

-- Endpoints ---------------------------------------------------------------

ALTER TABLE endpoints
    ADD COLUMN starttls_injected_bytes BIGINT CHECK (starttls_injected_bytes >= 0),
    ADD COLUMN client_purpose TEXT
        CHECK (client_purpose IN ('ok', 'leaf_lacks_client_auth', 'intermediate_lacks_client_auth'));
COMMENT ON COLUMN endpoints.starttls_injected_bytes IS 'Plaintext bytes that arrived after <proceed/> (STARTTLS injection, CVE-2011-0411 class), discarded before the handshake (RFC 6120 §5.4.3.3); NULL: none arrived, or a report before schema 2 (those stopped with outcome injection_after_proceed).';
COMMENT ON COLUMN endpoints.client_purpose IS 'Whether this endpoint''s presented chain passes a strict TLS-client purpose check (OpenSSL X509_PURPOSE_SSL_CLIENT): ok, leaf_lacks_client_auth, intermediate_lacks_client_auth; NULL without a chain.';

-- Acceptance evidence tables ---------------------------------------------

CREATE TABLE acceptance_attempts (
    crawl_id                BIGINT  NOT NULL,
    domain_id               BIGINT  NOT NULL,
    ordinal                 INTEGER NOT NULL CHECK (ordinal >= 0),
    cert_kind               TEXT    NOT NULL CHECK (cert_kind IN ('server_only', 'client_and_server')),
    transport               TEXT    NOT NULL CHECK (transport IN ('starttls', 'direct_tls')),
    ip                      INET    NOT NULL,
    port                    INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    client_cert_requested   BOOLEAN,
    client_cert_sent        BOOLEAN NOT NULL,
    tls_version             TEXT,
    tls_failure             TEXT
        CHECK (tls_failure IN ('alert', 'protocol_version_too_old', 'incompatible', 'timeout', 'closed', 'protocol_error', 'other')),
    tls_failure_detail      TEXT,
    outcome                 TEXT    NOT NULL
        CHECK (outcome IN ('complete', 'blocked_address', 'connect_failed', 'stream_error', 'no_version', 'no_starttls', 'starttls_failure', 'injection_after_proceed', 'tls_failed', 'timeout', 'byte_limit', 'depth_limit', 'invalid_xml', 'forbidden_xml', 'closed', 'unexpected_element')),
    phase                   TEXT
        CHECK (phase IN ('connect', 'stream_header', 'features', 'starttls', 'tls_handshake', 'stream_header_after_tls', 'features_after_tls')),
    external_offered        BOOLEAN,
    external_outcome        TEXT    CHECK (external_outcome IN ('success', 'failure', 'challenge')),
    external_condition      TEXT,
    external_text           TEXT,
    dialback_offered        BOOLEAN,
    ping                    TEXT    NOT NULL CHECK (ping IN ('not_attempted', 'result', 'error', 'timeout')),
    ping_condition          TEXT,
    version_query           TEXT    CHECK (version_query IN ('not_attempted', 'result', 'error', 'timeout')),
    version_query_condition TEXT,
    software_name           TEXT,
    software_version        TEXT,
    detail                  TEXT,
    external_fault          TEXT
        CHECK (external_fault IN ('timeout', 'closed', 'invalid_xml', 'limit', 'stream_error', 'write', 'unexpected')),
    PRIMARY KEY (crawl_id, domain_id, ordinal),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES results (crawl_id, domain_id) ON DELETE CASCADE,
    CHECK (external_condition IS NULL OR external_outcome = 'failure'),
    CHECK (ping_condition IS NULL OR ping = 'error'),
    CHECK (version_query_condition IS NULL OR version_query = 'error')
);
COMMENT ON TABLE acceptance_attempts IS 'One acceptance attempt (MEASUREMENTS §3): STARTTLS to the target''s s2s endpoint as from=PROBE presenting one probe certificate, then SASL EXTERNAL (XEP-0178), then ping and version when authenticated. The raw evidence beside results.acceptance.';
COMMENT ON COLUMN acceptance_attempts.crawl_id IS 'The crawl.';
COMMENT ON COLUMN acceptance_attempts.domain_id IS 'The domain.';
COMMENT ON COLUMN acceptance_attempts.ordinal IS 'Position in the report''s attempt list (0 first: server_only, then the client_and_server control).';
COMMENT ON COLUMN acceptance_attempts.cert_kind IS 'The probe certificate presented: server_only (EKU serverAuth only) or client_and_server (the control that tells EKU from trust).';
COMMENT ON COLUMN acceptance_attempts.transport IS 'starttls or direct_tls.';
COMMENT ON COLUMN acceptance_attempts.ip IS 'The address of the s2s endpoint.';
COMMENT ON COLUMN acceptance_attempts.port IS 'The port of the s2s endpoint.';
COMMENT ON COLUMN acceptance_attempts.client_cert_requested IS 'MEASUREMENTS §3.1: the server sent a TLS CertificateRequest; NULL if TLS was not attempted.';
COMMENT ON COLUMN acceptance_attempts.client_cert_sent IS 'The probe answered the CertificateRequest with its certificate.';
COMMENT ON COLUMN acceptance_attempts.tls_version IS 'Negotiated TLS version, e.g. TLSv1.3.';
COMMENT ON COLUMN acceptance_attempts.tls_failure IS 'Why TLS failed; alert after presenting the certificate = the server rejected it in the handshake (TLS 1.3: on the first read).';
COMMENT ON COLUMN acceptance_attempts.tls_failure_detail IS 'The TLS failure in words: the alert description for tls_failure = alert (e.g. unsupported_certificate), else the error text.';
COMMENT ON COLUMN acceptance_attempts.outcome IS 'Where and why the connection ended (endpoints.outcome values); complete = reached post-TLS features.';
COMMENT ON COLUMN acceptance_attempts.phase IS 'The phase the outcome happened in.';
COMMENT ON COLUMN acceptance_attempts.external_offered IS 'MEASUREMENTS §3.2: EXTERNAL was in the post-TLS SASL mechanisms; NULL without post-TLS features.';
COMMENT ON COLUMN acceptance_attempts.external_outcome IS 'MEASUREMENTS §3.3: the answer to <auth mechanism=''EXTERNAL''/>: success, failure, challenge; NULL when not sent.';
COMMENT ON COLUMN acceptance_attempts.external_condition IS 'The <failure/> condition (RFC 6120 §6.5), e.g. not-authorized.';
COMMENT ON COLUMN acceptance_attempts.external_text IS 'The <failure/> text, e.g. unsupported certificate purpose (ejabberd before 25.08).';
COMMENT ON COLUMN acceptance_attempts.external_fault IS 'How the EXTERNAL exchange broke instead of answering (timeout, closed, invalid_xml, limit, stream_error, write, unexpected); NULL when it answered or was not sent. Such an attempt makes the verdict inconclusive (attempt_incomplete).';
COMMENT ON COLUMN acceptance_attempts.dialback_offered IS 'MEASUREMENTS §3.4: dialback offered (feature or xmlns:db on the header); NULL when not seen.';
COMMENT ON COLUMN acceptance_attempts.ping IS 'MEASUREMENTS §3.5: answer to the XEP-0199 ping after authenticating: not_attempted (not authenticated), result, error, timeout.';
COMMENT ON COLUMN acceptance_attempts.ping_condition IS 'The ping''s error condition (RFC 6120 §8.3.3).';
COMMENT ON COLUMN acceptance_attempts.version_query IS 'MEASUREMENTS §3.5: answer to the XEP-0092 version query: not_attempted, result, error, timeout; NULL when unknown (reports before schema 2 did not record a refused query).';
COMMENT ON COLUMN acceptance_attempts.version_query_condition IS 'The version query''s error condition (service-unavailable = software hidden on purpose).';
COMMENT ON COLUMN acceptance_attempts.software_name IS 'XEP-0092 name answered on this attempt.';
COMMENT ON COLUMN acceptance_attempts.software_version IS 'XEP-0092 version answered on this attempt.';
COMMENT ON COLUMN acceptance_attempts.detail IS 'What went wrong after the connection was up, in words.';
CREATE INDEX acceptance_attempts_external_idx
    ON acceptance_attempts (crawl_id, cert_kind, external_outcome, external_condition);

CREATE TABLE acceptance_dialback (
    crawl_id                BIGINT  NOT NULL,
    domain_id               BIGINT  NOT NULL,
    offered                 BOOLEAN NOT NULL,
    attempted               BOOLEAN NOT NULL,
    outcome                 TEXT
        CHECK (outcome IN ('valid', 'invalid', 'error', 'not_offered', 'connection_failed', 'timeout')),
    condition               TEXT,
    verify_received         BOOLEAN,
    ping                    TEXT    CHECK (ping IN ('not_attempted', 'result', 'error', 'timeout')),
    ping_condition          TEXT,
    version_query           TEXT    CHECK (version_query IN ('not_attempted', 'result', 'error', 'timeout')),
    version_query_condition TEXT,
    PRIMARY KEY (crawl_id, domain_id),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES results (crawl_id, domain_id) ON DELETE CASCADE,
    CHECK (attempted = (outcome IS NOT NULL)),
    CHECK (condition IS NULL OR outcome = 'error')
);
COMMENT ON TABLE acceptance_dialback IS 'Dialback availability for one domain whose acceptance probe ran (MEASUREMENTS §3.4, §4 "dialback availability"): whether it was offered, and the separate dialback attempt with the server-only certificate when it was.';
COMMENT ON COLUMN acceptance_dialback.crawl_id IS 'The crawl.';
COMMENT ON COLUMN acceptance_dialback.domain_id IS 'The domain.';
COMMENT ON COLUMN acceptance_dialback.offered IS 'Any acceptance attempt saw dialback offered.';
COMMENT ON COLUMN acceptance_dialback.attempted IS 'A dialback attempt was made (XEP-0220 §2.1, the probe''s listener acting as authoritative server).';
COMMENT ON COLUMN acceptance_dialback.outcome IS 'How it ended: valid, invalid, error, not_offered, connection_failed, timeout; NULL if not attempted.';
COMMENT ON COLUMN acceptance_dialback.condition IS 'The error condition for outcome = error.';
COMMENT ON COLUMN acceptance_dialback.verify_received IS 'The target called the probe''s listener with db:verify for this attempt; NULL if not attempted.';
COMMENT ON COLUMN acceptance_dialback.ping IS 'Answer to the XEP-0199 ping after dialback: not_attempted, result, error, timeout; NULL if not attempted.';
COMMENT ON COLUMN acceptance_dialback.ping_condition IS 'The ping''s error condition.';
COMMENT ON COLUMN acceptance_dialback.version_query IS 'Answer to the XEP-0092 version query after dialback; NULL if not attempted or unknown (reports before schema 2).';
COMMENT ON COLUMN acceptance_dialback.version_query_condition IS 'The version query''s error condition.';
CREATE INDEX acceptance_dialback_outcome_idx ON acceptance_dialback (crawl_id, offered, outcome);

CREATE TABLE inbound_streams (
    crawl_id            BIGINT      NOT NULL,
    domain_id           BIGINT      NOT NULL,
    ordinal             INTEGER     NOT NULL CHECK (ordinal >= 0),
    peer                TEXT        NOT NULL,
    at                  TIMESTAMPTZ NOT NULL,
    tls                 BOOLEAN     NOT NULL,
    client_chain_length INTEGER     NOT NULL CHECK (client_chain_length >= 0),
    client_leaf_sha256  TEXT        CHECK (client_leaf_sha256 ~ '^[0-9a-f]{64}$'),
    client_eku_class    TEXT
        CHECK (client_eku_class IN ('server_only', 'client_and_server', 'client_only', 'any', 'other')),
    client_purpose      TEXT
        CHECK (client_purpose IN ('ok', 'leaf_lacks_client_auth', 'intermediate_lacks_client_auth')),
    auth_method         TEXT        NOT NULL CHECK (auth_method IN ('external', 'dialback', 'verify_only', 'none')),
    auth_outcome        TEXT        CHECK (auth_outcome IN ('success', 'failure', 'challenge', 'valid', 'invalid')),
    auth_condition      TEXT,
    replies             INTEGER     NOT NULL CHECK (replies >= 0),
    PRIMARY KEY (crawl_id, domain_id, ordinal),
    FOREIGN KEY (crawl_id, domain_id) REFERENCES results (crawl_id, domain_id) ON DELETE CASCADE,
    CHECK ((auth_outcome IS NOT NULL) = (auth_method IN ('external', 'dialback')))
);
COMMENT ON TABLE inbound_streams IS 'Streams the target opened back to the probe''s listener during the acceptance probe: the certificate the target presents as TLS client, i.e. whether strict peers will refuse this server (MEASUREMENTS §1, §3).';
COMMENT ON COLUMN inbound_streams.crawl_id IS 'The crawl.';
COMMENT ON COLUMN inbound_streams.domain_id IS 'The domain probed.';
COMMENT ON COLUMN inbound_streams.ordinal IS 'Position in the report''s inbound list (arrival order).';
COMMENT ON COLUMN inbound_streams.peer IS 'The from of its stream header.';
COMMENT ON COLUMN inbound_streams.at IS 'When it connected.';
COMMENT ON COLUMN inbound_streams.tls IS 'TLS was negotiated.';
COMMENT ON COLUMN inbound_streams.client_chain_length IS 'Certificates in the chain it presented as TLS client (0: none).';
COMMENT ON COLUMN inbound_streams.client_leaf_sha256 IS 'SHA-256 of its end-entity certificate (not stored in certificates: inbound chains stay in the report).';
COMMENT ON COLUMN inbound_streams.client_eku_class IS 'EKU class of its end-entity certificate (MEASUREMENTS §2 table).';
COMMENT ON COLUMN inbound_streams.client_purpose IS 'Whether its chain passes a strict TLS-client purpose check: ok, leaf_lacks_client_auth, intermediate_lacks_client_auth; NULL without a chain.';
COMMENT ON COLUMN inbound_streams.auth_method IS 'How it authenticated: external (SASL EXTERNAL), dialback, verify_only (only db:verify of the probe''s key), none.';
COMMENT ON COLUMN inbound_streams.auth_outcome IS 'external: the answer the listener gave (success, failure, challenge); dialback: valid or invalid as its authoritative server said; NULL otherwise.';
COMMENT ON COLUMN inbound_streams.auth_condition IS 'The failure condition the listener gave to EXTERNAL.';
COMMENT ON COLUMN inbound_streams.replies IS 'IQ replies it delivered on this stream.';
CREATE INDEX inbound_streams_purpose_idx ON inbound_streams (crawl_id, client_eku_class, client_purpose);

-- Backfill from results.report (version 1 rows) ---------------------------
-- The same rules as src/store/rows.rs, in SQL; the helpers live in this
-- session's temporary schema and are dropped at the end.

-- crate::tls::eku::client_purpose over a JSON chain (CertInfo objects).
CREATE FUNCTION pg_temp.xs_client_purpose(chain JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(chain) IS DISTINCT FROM 'array' OR jsonb_array_length(chain) = 0 THEN NULL
        WHEN (chain->0->'eku'->>'present')::boolean AND NOT (chain->0->'eku'->>'client_auth')::boolean
            THEN 'leaf_lacks_client_auth'
        WHEN EXISTS (
            SELECT 1 FROM jsonb_array_elements(chain) WITH ORDINALITY AS c(x, i)
            WHERE i > 1 AND NOT coalesce((x->>'self_signed')::boolean, false)
              AND (x->'eku'->>'present')::boolean AND NOT (x->'eku'->>'client_auth')::boolean)
            THEN 'intermediate_lacks_client_auth'
        ELSE 'ok'
    END
$$;

-- The client purpose of a service's primary chain. Reports of JSON schema
-- 2 carry it in the summary (absent = none); schema 1 reports took TLS
-- facts from the first endpoint that reached post-TLS features (outcome
-- complete), as the row's other s2s_/c2s_ columns did.
CREATE FUNCTION pg_temp.xs_service_purpose(report JSONB, service TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN coalesce((report->>'schema_version')::int, 1) >= 2
            THEN report->'summary'->service->>'client_purpose'
        ELSE pg_temp.xs_client_purpose((
            SELECT e->'tls'->'chain'
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(report->'endpoints') = 'array'
                                           THEN report->'endpoints' ELSE '[]' END)
                 WITH ORDINALITY AS t(e, i)
            WHERE e->>'service' = service AND e->>'outcome' = 'complete'
            ORDER BY i LIMIT 1))
    END
$$;

-- An IqOutcome (schema 2: always present; schema 1: absent = not sent).
CREATE FUNCTION pg_temp.xs_ping(stream JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(stream->'ping'->>'result', 'not_attempted')
$$;

-- The version query's outcome; schema 1 recorded only a successful one
-- (version present) and, with no ping either, an unauthenticated stream.
CREATE FUNCTION pg_temp.xs_version_query(stream JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN stream ? 'version_query' THEN stream->'version_query'->>'result'
        WHEN stream ? 'version' THEN 'result'
        WHEN NOT stream ? 'ping' THEN 'not_attempted'
    END
$$;

INSERT INTO acceptance_attempts
SELECT r.crawl_id, r.domain_id, (a.i - 1)::int,
       a.x->>'cert',
       a.x->'connection'->>'transport',
       (a.x->'connection'->>'ip')::inet,
       (a.x->'connection'->>'port')::int,
       (a.x->'connection'->'tls'->>'client_cert_requested')::boolean,
       coalesce((a.x->>'client_cert_sent')::boolean, false),
       a.x->'connection'->'tls'->>'version',
       a.x->'connection'->'tls'->>'failure',
       a.x->'connection'->'tls'->>'failure_detail',
       a.x->'connection'->>'outcome',
       a.x->'connection'->>'phase',
       (a.x->>'external_offered')::boolean,
       a.x->'external'->>'result',
       a.x->'external'->>'condition',
       a.x->'external'->>'text',
       (a.x->>'dialback_offered')::boolean,
       pg_temp.xs_ping(a.x),
       a.x->'ping'->>'condition',
       pg_temp.xs_version_query(a.x),
       a.x->'version_query'->>'condition',
       a.x->'version'->>'name',
       a.x->'version'->>'version',
       a.x->>'detail'
FROM results r,
     jsonb_array_elements(r.report->'acceptance'->'attempts') WITH ORDINALITY AS a(x, i)
WHERE jsonb_typeof(r.report->'acceptance'->'attempts') = 'array';

INSERT INTO acceptance_dialback
SELECT r.crawl_id, r.domain_id,
       coalesce((SELECT bool_or((x->>'dialback_offered')::boolean)
                 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(acc->'attempts') = 'array'
                                                THEN acc->'attempts' ELSE '[]' END) x), false),
       d IS NOT NULL,
       d->'outcome'->>'result',
       d->'outcome'->>'condition',
       (d->>'verify_received')::boolean,
       CASE WHEN d IS NOT NULL THEN pg_temp.xs_ping(d) END,
       d->'ping'->>'condition',
       CASE WHEN d IS NOT NULL THEN pg_temp.xs_version_query(d) END,
       d->'version_query'->>'condition'
FROM results r,
     LATERAL (SELECT r.report->'acceptance' AS acc) a,
     LATERAL (SELECT CASE WHEN jsonb_typeof(a.acc->'dialback') = 'object'
                          THEN a.acc->'dialback' END AS d) db
WHERE jsonb_typeof(a.acc) = 'object';

INSERT INTO inbound_streams
SELECT r.crawl_id, r.domain_id, (s.i - 1)::int,
       s.x->>'peer',
       (s.x->>'at')::timestamptz,
       (s.x->>'tls')::boolean,
       CASE WHEN jsonb_typeof(s.x->'client_chain') = 'array'
            THEN jsonb_array_length(s.x->'client_chain') ELSE 0 END,
       s.x->'client_chain'->0->>'sha256',
       s.x->>'client_eku',
       coalesce(s.x->>'client_purpose', pg_temp.xs_client_purpose(s.x->'client_chain')),
       s.x->'auth'->>'method',
       CASE s.x->'auth'->>'method'
           WHEN 'external' THEN s.x->'auth'->'outcome'->>'result'
           WHEN 'dialback' THEN CASE WHEN (s.x->'auth'->>'valid')::boolean
                                     THEN 'valid' ELSE 'invalid' END
       END,
       s.x->'auth'->'outcome'->>'condition',
       coalesce((s.x->>'replies')::int, 0)
FROM results r,
     jsonb_array_elements(r.report->'acceptance'->'inbound') WITH ORDINALITY AS s(x, i)
WHERE jsonb_typeof(r.report->'acceptance'->'inbound') = 'array';

-- The first authenticated stream: the attempts in order (EXTERNAL
-- success), then the dialback attempt (valid).
UPDATE results r SET
    acceptance_reason = r.report->'acceptance'->>'reason_code',
    acceptance_endpoint = r.report->'acceptance'->>'endpoint',
    c2s_client_purpose = pg_temp.xs_service_purpose(r.report, 'c2s'),
    s2s_client_purpose = pg_temp.xs_service_purpose(r.report, 's2s'),
    (acceptance_ping, acceptance_version_query) = (
        SELECT s.ping, s.version_query FROM (
            SELECT 0 AS rank, a.ordinal, a.ping, a.version_query FROM acceptance_attempts a
             WHERE a.crawl_id = r.crawl_id AND a.domain_id = r.domain_id
               AND a.external_outcome = 'success'
            UNION ALL
            SELECT 1, 0, d.ping, d.version_query FROM acceptance_dialback d
             WHERE d.crawl_id = r.crawl_id AND d.domain_id = r.domain_id AND d.outcome = 'valid'
        ) s ORDER BY s.rank, s.ordinal LIMIT 1);

UPDATE endpoints e SET
    starttls_injected_bytes = (e.evidence->>'starttls_injected_bytes')::bigint,
    client_purpose = pg_temp.xs_client_purpose(r.report->'endpoints'->e.ordinal->'tls'->'chain')
FROM results r
WHERE r.crawl_id = e.crawl_id AND r.domain_id = e.domain_id
  AND (e.evidence ? 'starttls_injected_bytes'
       OR jsonb_typeof(r.report->'endpoints'->e.ordinal->'tls'->'chain') = 'array');

DROP FUNCTION pg_temp.xs_service_purpose(JSONB, TEXT);
DROP FUNCTION pg_temp.xs_client_purpose(JSONB);
DROP FUNCTION pg_temp.xs_ping(JSONB);
DROP FUNCTION pg_temp.xs_version_query(JSONB);

-- Local resources (issue "No one outside can change a verdict or stop a
-- crawl"): running out of descriptors is the crawler's failure, never the
-- target's; the listener's counters are kept with the crawl. --------------

ALTER TABLE endpoints DROP CONSTRAINT endpoints_connect_check;
ALTER TABLE endpoints ADD CONSTRAINT endpoints_connect_check
    CHECK (connect IN ('connected', 'refused', 'timeout', 'unreachable', 'blocked_address', 'local_resource_exhausted'));
COMMENT ON COLUMN endpoints.connect IS 'TCP connect result: connected, refused, timeout, unreachable, blocked_address (not attempted, MEASUREMENTS §5), local_resource_exhausted (our side ran out of descriptors, buffers or ports: says nothing about the target; a crawl retries such a domain, so stored results do not normally hold it).';
ALTER TABLE dns_records DROP CONSTRAINT dns_records_outcome_check;
ALTER TABLE dns_records ADD CONSTRAINT dns_records_outcome_check
    CHECK (outcome IN ('records', 'no_data', 'nx_domain', 'serv_fail', 'refused', 'timeout', 'error', 'local_resource_exhausted'));
COMMENT ON COLUMN dns_records.outcome IS 'How the question was answered: records, no_data, nx_domain, serv_fail, refused, timeout, error, local_resource_exhausted (our side could not open a socket: says nothing about the domain; retried by a crawl).';
ALTER TABLE crawls ADD COLUMN listener_stats JSONB;
COMMENT ON COLUMN crawls.listener_stats IS 'Resource use of each process that worked on the crawl, keyed by worker id ("host:pid"): {"listener": the dialback listener''s counters (accepted, refused_address_cap, refused_prefix_cap, refused_slots, refused_not_in_flight, authenticated, unauthenticated, verifications, peak_streams, accept_errors) or null without the acceptance probe, "fd_peak": most open file descriptors seen (sampled each second), "budget": the fd budget it ran with}. Written when the process ends its work (finished, interrupted or failed); NULL before.';

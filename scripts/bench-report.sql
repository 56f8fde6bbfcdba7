-- Synthetic data for `scripts/bench.sh report`: 100,000 domains x 10 crawls
-- (1,000,000 results) with every table the report reads. Deterministic: no
-- random(), only arithmetic on (domain, crawl). Sections start with
-- `--@TABLE (columns)` and are loaded with COPY (SELECT ...) TO STDOUT |
-- COPY TABLE FROM STDIN; the helpers below (schema bench) are dropped
-- before the report runs.
CREATE SCHEMA bench;
-- A pseudo-random 0..999 from (a, salt): two Lehmer steps, no state.
CREATE FUNCTION bench.r(a bigint, salt int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT (((((a * 1000003 + salt * 7919 + 17) % 2147483647) * 48271 % 2147483647) * 48271 % 2147483647) % 1000)::int
$$;
-- The certificate generation of a domain in crawl c: renewed every 3 crawls, staggered.
CREATE FUNCTION bench.gen(d bigint, c int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT ((c + d % 3) / 3)::int
$$;
-- Who issued a domain's certificate.
CREATE FUNCTION bench.ca(d bigint, g int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN bench.r(d, 6) >= 960 THEN 'self'
    WHEN bench.r(d, 6) >= 930 THEN 'private'
    WHEN bench.r(d, 6) >= 890 THEN 'gts'
    WHEN bench.r(d, 6) >= 840 THEN 'digicert'
    WHEN bench.r(d, 6) >= 760 THEN 'sectigo'
    WHEN g >= 3 AND bench.r(d * 8 + g, 15) < 150 THEN 'le_yr1'
    WHEN (d + g) % 2 = 0 THEN 'le_r10'
    ELSE 'le_r11' END
$$;
CREATE FUNCTION bench.leaf(d bigint, g int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT md5('leaf/' || d || '/' || g) || md5('gen/' || g || '/' || d)
$$;
CREATE FUNCTION bench.inter(ca text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN ca <> 'self' THEN md5('intermediate/' || ca) || md5(ca) END
$$;
-- EKU class of a leaf: server-only grows with each renewal (1.5 % → 4.5 %).
CREATE FUNCTION bench.eku(d bigint, g int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN bench.r(d * 8 + g, 7) < 15 + 10 * g THEN 'server_only'
    WHEN bench.r(d * 8 + g, 7) < 115 + 10 * g THEN 'any'
    WHEN bench.r(d * 8 + g, 7) < 125 + 10 * g THEN 'other'
    ELSE 'client_and_server' END
$$;
CREATE FUNCTION bench.name(d bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT (ARRAY['chat', 'xmpp', 'jabber', 'im', 'talk', 'srv'])[1 + bench.r(d, 20) % 6]
         || d || '.' || (ARRAY['org', 'net', 'de', 'fr', 'im', 'eu', 'ru', 'nl', 'com'])[1 + bench.r(d, 21) % 9]
$$;
CREATE FUNCTION bench.started(c int) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT timestamptz '2026-01-05 00:00:00+00' + (c - 1) * interval '7 days'
$$;
-- Validity and renewal date of a leaf.
CREATE FUNCTION bench.nb(d bigint, g int) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT bench.started(1) + (3 * g - d % 3) * interval '7 days' - interval '20 days'
$$;
CREATE FUNCTION bench.na(nb timestamptz, ca text) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT nb + CASE WHEN ca IN ('le_r10', 'le_r11', 'le_yr1', 'gts') THEN interval '90 days' ELSE interval '365 days' END
$$;
-- MEASUREMENTS §2 "will renew as server-only": a month before expiry, or the CA's cut-over (seeds/ca-cutover.toml).
CREATE FUNCTION bench.renews(eku text, ca text, na timestamptz) RETURNS date LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN eku = 'client_and_server' THEN
    greatest((na - interval '30 days')::date,
             CASE WHEN ca IN ('le_r10', 'le_r11') THEN date '2026-02-11' WHEN ca = 'gts' THEN date '2026-04-13'
                  WHEN ca = 'digicert' THEN date '2027-03-01' END) END
$$;
--@crawls
INSERT INTO crawls (id, label, started_at, finished_at, status, sources, vantage, probe_domain,
                    software_version, roots_version, config) OVERRIDING SYSTEM VALUE
SELECT c, 'bench-' || lpad(c::text, 2, '0'), bench.started(c), bench.started(c) + interval '5 hours',
       'finished', '["text:bench-domains.txt"]', 'bench (synthetic)',
       CASE WHEN c >= 3 THEN 'probe.bench.example' END,
       '0.1.0 (bench)', CASE WHEN c < 6 THEN '1.0.4' ELSE '1.0.5' END,
       CASE WHEN c >= 3 THEN '{"identity": {"certificates": [{"role": "server_only", "eku_class": "server_only"}, {"role": "control", "eku_class": "client_and_server"}]}}'::jsonb
            ELSE '{}'::jsonb END
  FROM generate_series(1, 10) c
--@domains
SELECT d, bench.name(d), bench.started(1), bench.started(10) FROM generate_series(1, 101000) d
--@crawl_queue (crawl_id, domain_id, state, attempts, not_before, last_error, queued_at, done_at)
SELECT c, d, CASE WHEN d <= 100000 THEN 'done' ELSE 'not_tested' END, 1, bench.started(c),
       CASE WHEN d > 100000 THEN CASE WHEN d % 2 = 0 THEN 'opted out: bench' ELSE 'dns timeout' END END,
       bench.started(c), bench.started(c) + d * interval '150 ms'
  FROM generate_series(1, 10) c, generate_series(1, 101000) d
--@certificates
SELECT bench.leaf(d, g), 'CN=' || name,
       CASE ca WHEN 'le_r10' THEN 'CN=R10,O=Let''s Encrypt,C=US'
               WHEN 'le_r11' THEN 'CN=R11,O=Let''s Encrypt,C=US'
               WHEN 'le_yr1' THEN 'CN=YR1,O=Let''s Encrypt,C=US'
               WHEN 'sectigo' THEN 'CN=Sectigo RSA Domain Validation Secure Server CA,O=Sectigo Limited,L=Salford,ST=Greater Manchester,C=GB'
               WHEN 'digicert' THEN 'CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US'
               WHEN 'gts' THEN 'CN=WR1,O=Google Trust Services,C=US'
               WHEN 'private' THEN 'CN=Internal CA,O=Example Corp,C=DE'
               ELSE 'CN=' || name END,
       substr(md5('serial/' || d || '/' || g), 1, 32),
       nb, na,
       CASE WHEN key < 600 THEN 'ec' ELSE 'rsa' END,
       CASE WHEN key < 600 THEN 256 WHEN key < 900 THEN 2048 ELSE 4096 END,
       CASE WHEN key < 600 THEN 'P-256' END,
       CASE WHEN key < 600 THEN 'ecdsa-with-SHA256' ELSE 'sha256WithRSAEncryption' END,
       eku <> 'any', eku,
       CASE eku WHEN 'server_only' THEN '{1.3.6.1.5.5.7.3.1}'
                WHEN 'client_and_server' THEN '{1.3.6.1.5.5.7.3.1,1.3.6.1.5.5.7.3.2}'
                WHEN 'other' THEN '{1.3.6.1.5.5.7.3.1,1.3.6.1.4.1.311.10.3.3}'
                ELSE '{}' END::text[],
       jsonb_build_object('dns', jsonb_build_array(name, '*.' || name),
                          'xmpp_addr', '[]'::jsonb, 'srv_id', '[]'::jsonb, 'ip', '[]'::jsonb),
       ca LIKE 'le\_%', false, ca = 'self', bench.renews(eku, ca, na),
       greatest(nb, bench.started(1)), greatest(nb, bench.started(1)) + interval '14 days'
  FROM generate_series(1, 100000) d,
       LATERAL generate_series(((1 + d % 3) / 3)::int, ((10 + d % 3) / 3)::int) g,
       LATERAL (SELECT bench.ca(d, g) AS ca, bench.eku(d, g) AS eku, bench.nb(d, g) AS nb,
                       bench.name(d) AS name, bench.r(d, 16) AS key OFFSET 0) x,
       LATERAL (SELECT bench.na(nb, ca) AS na OFFSET 0) y
UNION ALL
SELECT bench.inter(ca), subject, issuer, substr(md5('serial/' || ca), 1, 32),
       timestamptz '2024-03-13 00:00:00+00', timestamptz '2027-03-12 23:59:59+00',
       'rsa', 2048, NULL, 'sha256WithRSAEncryption', eku <> 'any', eku,
       CASE eku WHEN 'server_only' THEN '{1.3.6.1.5.5.7.3.1}'
                WHEN 'client_and_server' THEN '{1.3.6.1.5.5.7.3.1,1.3.6.1.5.5.7.3.2}' ELSE '{}' END::text[],
       '{"dns": [], "xmpp_addr": [], "srv_id": [], "ip": []}'::jsonb,
       ca LIKE 'le\_%', true, false, NULL, bench.started(1), bench.started(10)
  FROM (VALUES
    ('le_r10', 'CN=R10,O=Let''s Encrypt,C=US', 'CN=ISRG Root X1,O=Internet Security Research Group,C=US', 'client_and_server'),
    ('le_r11', 'CN=R11,O=Let''s Encrypt,C=US', 'CN=ISRG Root X1,O=Internet Security Research Group,C=US', 'client_and_server'),
    ('le_yr1', 'CN=YR1,O=Let''s Encrypt,C=US', 'CN=ISRG Root YR,O=Internet Security Research Group,C=US', 'server_only'),
    ('sectigo', 'CN=Sectigo RSA Domain Validation Secure Server CA,O=Sectigo Limited,L=Salford,ST=Greater Manchester,C=GB', 'CN=USERTrust RSA Certification Authority,O=The USERTRUST Network,C=US', 'client_and_server'),
    ('digicert', 'CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US', 'CN=DigiCert Global Root G2,O=DigiCert Inc,C=US', 'client_and_server'),
    ('gts', 'CN=WR1,O=Google Trust Services,C=US', 'CN=GTS Root R1,O=Google Trust Services LLC,C=US', 'client_and_server'),
    ('private', 'CN=Internal CA,O=Example Corp,C=DE', 'CN=Internal CA,O=Example Corp,C=DE', 'any')
  ) AS i(ca, subject, issuer, eku)
--@results (crawl_id, domain_id, probed_at, duration_ms, recorded_at, dnssec, c2s_status, c2s_endpoints, c2s_endpoints_tls_ok, c2s_starttls, c2s_sasl_before_tls, c2s_direct_tls, c2s_tls_version, c2s_chain_verdict, c2s_name_match, c2s_eku_class, c2s_lets_encrypt, c2s_renews_server_only, c2s_client_cert_requested, c2s_external_offered, c2s_dane_match, s2s_status, s2s_endpoints, s2s_endpoints_tls_ok, s2s_starttls, s2s_sasl_before_tls, s2s_direct_tls, s2s_tls_version, s2s_chain_verdict, s2s_name_match, s2s_eku_class, s2s_lets_encrypt, s2s_renews_server_only, s2s_client_cert_requested, s2s_external_offered, s2s_dialback_offered, s2s_bidi_offered, s2s_dane_match, acceptance, acceptance_reason_text, software_name, software_version, report, acceptance_reason, acceptance_endpoint, c2s_client_purpose, s2s_client_purpose, acceptance_ping, acceptance_version_query)
SELECT c, d, bench.started(c) + d * interval '150 ms', 200 + 7 * bench.r(d * 16 + c, 30), bench.started(c) + d * interval '150 ms' + interval '3 s',
       CASE WHEN bench.r(d, 31) < 50 THEN 'validated' WHEN bench.r(d, 31) < 950 THEN 'not_validated' ELSE 'unknown' END,
       -- c2s
       c2s, c2s_n, CASE WHEN c2s = 'tls_ok' THEN c2s_n ELSE 0 END, c2s_starttls,
       CASE WHEN c2s_starttls IS NULL THEN NULL WHEN c2s_starttls = 'required' THEN '{}'
            WHEN c2s_starttls = 'absent' OR bench.r(d, 32) < 500 THEN '{PLAIN,SCRAM-SHA-1}' ELSE '{SCRAM-SHA-1}' END::text[],
       c2s = 'tls_ok' AND c2s_direct,
       CASE WHEN c2s = 'tls_ok' THEN tls_version END, CASE WHEN c2s = 'tls_ok' THEN verdict END,
       CASE WHEN c2s = 'tls_ok' THEN name_match END, CASE WHEN c2s = 'tls_ok' THEN eku END,
       CASE WHEN c2s = 'tls_ok' THEN ca LIKE 'le\_%' END, CASE WHEN c2s = 'tls_ok' THEN renews END,
       CASE WHEN c2s IN ('tls_ok', 'tls_failed') THEN bench.r(d, 24) < 100 END,
       CASE WHEN c2s = 'tls_ok' THEN bench.r(d, 26) < 60 END,
       CASE WHEN c2s = 'tls_ok' THEN dane END,
       -- s2s
       s2s, s2s_n, CASE WHEN s2s = 'tls_ok' THEN s2s_n ELSE 0 END, s2s_starttls,
       CASE WHEN s2s_starttls IS NOT NULL THEN '{}'::text[] END,
       s2s = 'tls_ok' AND s2s_direct,
       CASE WHEN s2s = 'tls_ok' THEN tls_version END, CASE WHEN s2s = 'tls_ok' THEN verdict END,
       CASE WHEN s2s = 'tls_ok' THEN name_match END, CASE WHEN s2s = 'tls_ok' THEN eku END,
       CASE WHEN s2s = 'tls_ok' THEN ca LIKE 'le\_%' END, CASE WHEN s2s = 'tls_ok' THEN renews END,
       CASE WHEN s2s IN ('tls_ok', 'tls_failed') THEN bench.r(d, 25) < 900 END,
       CASE WHEN s2s = 'tls_ok' THEN acc NOT IN ('no_cert_auth') END,
       CASE WHEN s2s = 'tls_ok' THEN dialback END,
       CASE WHEN s2s = 'tls_ok' THEN bench.r(d, 28) < 150 END,
       CASE WHEN s2s = 'tls_ok' THEN dane END,
       -- acceptance
       acc, replace(reason, '_', ' '),
       CASE WHEN authed THEN sw END, CASE WHEN authed THEN ver END,
       jsonb_build_object('schema_version', 2, 'domain', name,
                          'summary', jsonb_build_object('c2s', jsonb_build_object('status', c2s), 's2s', jsonb_build_object('status', s2s, 'eku', eku)),
                          'acceptance', jsonb_build_object('verdict', acc, 'reason_code', reason)),
       reason,
       CASE WHEN acc NOT IN ('not_run', 'unreachable') THEN host(ip) || ':5269 starttls' END,
       CASE WHEN c2s = 'tls_ok' THEN purpose END, CASE WHEN s2s = 'tls_ok' THEN purpose END,
       CASE WHEN authed THEN 'result' END, CASE WHEN authed THEN CASE WHEN sw IS NULL THEN 'error' ELSE 'result' END END
  FROM generate_series(1, 10) c, generate_series(1, 100000) d,
  LATERAL (SELECT bench.gen(d, c) AS g, '10.0.0.0'::inet + d * 4 AS ip,
                  bench.r(d * 16 + c, 2) < 20 AS down, bench.name(d) AS name OFFSET 0) g,
  LATERAL (SELECT bench.ca(d, g) AS ca, bench.eku(d, g) AS eku,
                  CASE WHEN bench.r(d, 1) BETWEEN 930 AND 979 THEN 'no_address'
                       WHEN down THEN 'unreachable'
                       WHEN bench.r(d, 1) < 800 THEN 'tls_ok' WHEN bench.r(d, 1) < 820 THEN 'no_tls'
                       WHEN bench.r(d, 1) < 840 THEN 'tls_failed' WHEN bench.r(d, 1) < 850 THEN 'stream_failed'
                       WHEN bench.r(d, 1) < 930 THEN 'unreachable' WHEN bench.r(d, 1) < 980 THEN 'no_address'
                       WHEN bench.r(d, 1) < 990 THEN 'not_offered' ELSE 'blocked' END AS s2s,
                  CASE WHEN bench.r(d, 1) BETWEEN 930 AND 979 THEN 'no_address'
                       WHEN down THEN 'unreachable'
                       WHEN bench.r(d, 3) < 830 THEN 'tls_ok' WHEN bench.r(d, 3) < 845 THEN 'no_tls'
                       WHEN bench.r(d, 3) < 860 THEN 'tls_failed' WHEN bench.r(d, 3) < 870 THEN 'stream_failed'
                       WHEN bench.r(d, 3) < 960 THEN 'unreachable' WHEN bench.r(d, 3) < 990 THEN 'not_offered'
                       ELSE 'blocked' END AS c2s,
                  bench.r(d, 4) < 300 AS c2s_direct, bench.r(d, 23) < 200 AS s2s_direct,
                  CASE WHEN bench.r(d, 18) < 900 THEN 'TLSv1.3' ELSE 'TLSv1.2' END AS tls_version,
                  CASE WHEN bench.r(d, 14) < 20 THEN true WHEN bench.r(d, 14) < 25 THEN false END AS dane,
                  bench.r(d, 13) < 750 AS dialback,
                  CASE WHEN bench.r(d, 11) < 450 THEN 'ejabberd' WHEN bench.r(d, 11) < 800 THEN 'Prosody'
                       WHEN bench.r(d, 11) < 850 THEN 'Openfire' WHEN bench.r(d, 11) < 870 THEN 'Tigase' END AS sw OFFSET 0) s,
  LATERAL (SELECT CASE WHEN ca = 'self' THEN 'self_signed' WHEN ca = 'private' THEN 'unknown_issuer'
                       WHEN bench.r(d * 16 + c, 8) < 30 THEN 'expired' WHEN bench.r(d, 9) < 30 THEN 'name_mismatch'
                       ELSE 'trusted' END AS verdict,
                  CASE WHEN eku IN ('server_only', 'other') THEN 'leaf_lacks_client_auth'
                       WHEN ca = 'le_yr1' THEN 'intermediate_lacks_client_auth' ELSE 'ok' END AS purpose,
                  CASE WHEN c2s IN ('no_address', 'not_offered') THEN 0 ELSE 1 + c2s_direct::int END AS c2s_n,
                  CASE WHEN s2s IN ('no_address', 'not_offered') THEN 0 ELSE 1 + s2s_direct::int END AS s2s_n,
                  CASE WHEN c2s = 'no_tls' THEN 'absent' WHEN c2s IN ('tls_ok', 'tls_failed')
                       THEN CASE WHEN bench.r(d, 22) < 850 THEN 'required' ELSE 'optional' END END AS c2s_starttls,
                  CASE WHEN s2s = 'no_tls' THEN 'absent' WHEN s2s IN ('tls_ok', 'tls_failed')
                       THEN CASE WHEN bench.r(d, 19) < 850 THEN 'required' ELSE 'optional' END END AS s2s_starttls,
                  CASE sw WHEN 'ejabberd' THEN (ARRAY['23.10', '24.02', '24.12', '25.08'])[1 + least(3, bench.r(d, 12) / 250 + (c - 1) / 5)]
                          WHEN 'Prosody' THEN CASE WHEN bench.r(d, 12) < 400 + 50 * c THEN '13.0.1' ELSE '0.12.4' END
                          WHEN 'Openfire' THEN '4.9.2' WHEN 'Tigase' THEN '8.4.0' END AS ver,
                  bench.renews(eku, ca, bench.na(bench.nb(d, g), ca)) AS renews OFFSET 0) v,
  LATERAL (SELECT CASE WHEN c < 3 THEN 'no_probe_identity'
                       WHEN s2s = 'no_address' THEN 'no_s2s_address'
                       WHEN s2s IN ('unreachable', 'blocked', 'not_offered') THEN 's2s_unreachable'
                       WHEN s2s IN ('no_tls', 'tls_failed') THEN 'no_tls_session'
                       WHEN s2s = 'stream_failed' OR bench.r(d * 16 + c, 29) < 15 THEN 'attempt_incomplete'
                       WHEN sw = 'ejabberd' THEN CASE WHEN ver = '25.08' THEN 'external_succeeded' ELSE 'external_refused' END
                       WHEN sw = 'Prosody' THEN CASE WHEN bench.r(d, 10) < 700 THEN 'external_succeeded' ELSE 'external_not_offered' END
                       WHEN sw = 'Openfire' THEN 'tls_alert_on_server_only'
                       WHEN sw = 'Tigase' THEN 'no_certificate_request'
                       WHEN bench.r(d, 10) < 300 THEN 'external_succeeded' WHEN bench.r(d, 10) < 550 THEN 'external_refused'
                       WHEN bench.r(d, 10) < 800 THEN 'external_not_offered' WHEN bench.r(d, 10) < 900 THEN 'both_certificates_refused'
                       WHEN bench.r(d, 10) < 960 THEN 'attempt_incomplete' ELSE 'no_tls_session' END AS reason,
                  CASE WHEN verdict = 'name_mismatch' THEN 'none' WHEN bench.r(d, 17) < 100 THEN 'wildcard'
                       ELSE 'dns_id' END AS name_match OFFSET 0) rr,
  LATERAL (SELECT CASE reason WHEN 'no_probe_identity' THEN 'not_run'
                              WHEN 'no_s2s_address' THEN 'unreachable' WHEN 's2s_unreachable' THEN 'unreachable'
                              WHEN 'no_tls_session' THEN 'tls_failed'
                              WHEN 'attempt_incomplete' THEN 'inconclusive' WHEN 'both_certificates_refused' THEN 'inconclusive'
                              WHEN 'external_succeeded' THEN 'accepts_server_only'
                              WHEN 'external_not_offered' THEN 'no_cert_auth' WHEN 'no_certificate_request' THEN 'no_cert_auth'
                              ELSE CASE WHEN dialback THEN 'rejects_server_only_dialback' ELSE 'rejects_server_only_no_fallback' END
                  END AS acc,
                  reason IN ('external_succeeded', 'external_refused', 'tls_alert_on_server_only') AS authed OFFSET 0) a
--@endpoints (crawl_id, domain_id, ordinal, service, transport, host, ip, port, source, connect, connect_ms, outcome, phase, starttls, tls_failure, tls_version, cipher_suite, alpn, client_cert_requested, chain_verdict, name_match, dane_match, leaf_sha256, evidence, starttls_injected_bytes, client_purpose)
SELECT r.crawl_id, r.domain_id,
       CASE WHEN s.service = 'c2s' THEN s.k ELSE r.c2s_endpoints + s.k END,
       s.service, s.transport,
       CASE WHEN bench.r(r.domain_id, 33) < 900 THEN 'xmpp.' || dm.name ELSE dm.name END,
       '10.0.0.0'::inet + r.domain_id * 4 + (s.service = 's2s')::int,
       CASE s.service || s.transport WHEN 'c2sstarttls' THEN 5222 WHEN 'c2sdirect_tls' THEN 5223
                                     WHEN 's2sstarttls' THEN 5269 ELSE 5270 END,
       CASE WHEN bench.r(r.domain_id, 33) < 900 THEN 'srv' ELSE 'fallback' END,
       CASE WHEN x.outcome = 'blocked_address' THEN 'blocked_address'
            WHEN x.outcome = 'connect_failed' THEN CASE WHEN bench.r(r.domain_id, 34) < 700 THEN 'timeout' ELSE 'refused' END
            ELSE 'connected' END,
       CASE WHEN x.outcome <> 'blocked_address' THEN 3 + bench.r(r.domain_id * 16 + r.crawl_id, 35) / 10 END,
       x.outcome,
       CASE x.outcome WHEN 'no_starttls' THEN 'features' WHEN 'tls_failed' THEN 'tls_handshake'
                      WHEN 'stream_error' THEN 'stream_header' WHEN 'connect_failed' THEN 'connect' END,
       CASE WHEN s.transport = 'starttls' THEN x.starttls END,
       CASE WHEN x.outcome = 'tls_failed' THEN CASE WHEN bench.r(r.domain_id, 36) < 700 THEN 'alert' ELSE 'protocol_version_too_old' END END,
       CASE WHEN x.ok THEN x.tls_version END,
       CASE WHEN x.ok THEN CASE WHEN x.tls_version = 'TLSv1.3' THEN 'TLS13_AES_256_GCM_SHA384' ELSE 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384' END END,
       CASE WHEN x.ok AND s.transport = 'direct_tls' THEN CASE WHEN s.service = 'c2s' THEN 'xmpp-client' ELSE 'xmpp-server' END END,
       CASE WHEN x.outcome IN ('complete', 'tls_failed') THEN x.ccr END,
       CASE WHEN x.ok THEN x.verdict END, CASE WHEN x.ok THEN x.name_match END, CASE WHEN x.ok THEN x.dane END,
       CASE WHEN x.ok THEN bench.leaf(r.domain_id, bench.gen(r.domain_id, r.crawl_id::int)) END,
       jsonb_build_object('stream_from', dm.name, 'features_after_tls',
                          CASE WHEN x.ok THEN '{"mechanisms": ["SCRAM-SHA-1", "EXTERNAL"], "dialback": true}'::jsonb END),
       NULL::bigint,
       CASE WHEN x.ok THEN x.purpose END
  FROM results r
  JOIN domains dm ON dm.id = r.domain_id
  CROSS JOIN LATERAL (VALUES ('c2s', 'starttls', 0), ('c2s', 'direct_tls', 1),
                             ('s2s', 'starttls', 0), ('s2s', 'direct_tls', 1)) AS s(service, transport, k)
  CROSS JOIN LATERAL (
    SELECT st = 'tls_ok' AS ok,
           CASE st WHEN 'tls_ok' THEN 'complete' WHEN 'no_tls' THEN CASE WHEN s.transport = 'starttls' THEN 'no_starttls' ELSE 'tls_failed' END
                   WHEN 'tls_failed' THEN 'tls_failed' WHEN 'stream_failed' THEN 'stream_error'
                   WHEN 'unreachable' THEN 'connect_failed' ELSE 'blocked_address' END AS outcome,
           y.*
      FROM (SELECT CASE WHEN s.service = 'c2s' THEN r.c2s_status ELSE r.s2s_status END AS st,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_endpoints ELSE r.s2s_endpoints END AS n,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_starttls ELSE r.s2s_starttls END AS starttls,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_tls_version ELSE r.s2s_tls_version END AS tls_version,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_client_cert_requested ELSE r.s2s_client_cert_requested END AS ccr,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_chain_verdict ELSE r.s2s_chain_verdict END AS verdict,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_name_match ELSE r.s2s_name_match END AS name_match,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_dane_match ELSE r.s2s_dane_match END AS dane,
                   CASE WHEN s.service = 'c2s' THEN r.c2s_client_purpose ELSE r.s2s_client_purpose END AS purpose) y) x
 WHERE s.k < x.n
--@chain_members (crawl_id, domain_id, ordinal, position, sha256)
SELECT e.crawl_id, e.domain_id, e.ordinal, m.position, m.sha256
  FROM endpoints e
  CROSS JOIN LATERAL (VALUES (0, e.leaf_sha256),
                             (1, bench.inter(bench.ca(e.domain_id, bench.gen(e.domain_id, e.crawl_id::int))))) AS m(position, sha256)
 WHERE e.leaf_sha256 IS NOT NULL AND m.sha256 IS NOT NULL
--@acceptance_dialback (crawl_id, domain_id, offered, attempted, outcome, condition, verify_received, ping, ping_condition, version_query, version_query_condition)
SELECT crawl_id, domain_id, offered, offered, outcome, NULL, outcome = 'valid',
       CASE WHEN offered THEN CASE WHEN outcome = 'valid' THEN 'result' ELSE 'not_attempted' END END, NULL,
       CASE WHEN offered THEN CASE WHEN outcome = 'valid' THEN 'result' ELSE 'not_attempted' END END, NULL
  FROM (SELECT r.crawl_id, r.domain_id, coalesce(r.s2s_dialback_offered, false) AS offered,
               CASE WHEN coalesce(r.s2s_dialback_offered, false) THEN
                 CASE WHEN r.acceptance IN ('rejects_server_only_dialback', 'accepts_server_only') THEN 'valid'
                      WHEN r.acceptance = 'no_cert_auth' THEN CASE WHEN bench.r(r.domain_id, 37) < 800 THEN 'valid' ELSE 'invalid' END
                      ELSE 'timeout' END END AS outcome
          FROM results r WHERE r.acceptance NOT IN ('not_run', 'unreachable')) x
--@acceptance_attempts (crawl_id, domain_id, ordinal, cert_kind, transport, ip, port, client_cert_requested, client_cert_sent, tls_version, tls_failure, tls_failure_detail, outcome, phase, external_offered, external_outcome, external_condition, external_text, dialback_offered, ping, ping_condition, version_query, version_query_condition, software_name, software_version, detail, external_fault)
SELECT r.crawl_id, r.domain_id, k.ordinal, k.kind, 'starttls', '10.0.0.0'::inet + r.domain_id * 4 + 1, 5269,
       CASE WHEN t.tls THEN t.ccr END, coalesce(t.tls AND t.ccr, false),
       CASE WHEN t.tls AND t.outcome <> 'tls_failed' THEN coalesce(r.s2s_tls_version, 'TLSv1.3') END,
       CASE WHEN t.outcome = 'tls_failed' THEN 'alert' END,
       CASE WHEN t.outcome = 'tls_failed' THEN CASE WHEN a.reason = 'no_tls_session' THEN 'handshake_failure' ELSE 'unsupported_certificate' END END,
       t.outcome,
       CASE t.outcome WHEN 'tls_failed' THEN 'tls_handshake' WHEN 'timeout' THEN 'features_after_tls' END,
       CASE WHEN t.outcome = 'complete' THEN a.reason NOT IN ('external_not_offered', 'no_certificate_request') END,
       t.ext,
       CASE WHEN t.ext = 'failure' THEN 'not-authorized' END,
       CASE WHEN t.ext = 'failure' AND r.software_name = 'ejabberd' THEN 'unsupported certificate purpose' END,
       CASE WHEN t.outcome = 'complete' THEN coalesce(r.s2s_dialback_offered, false) END,
       CASE WHEN t.ext = 'success' THEN 'result' ELSE 'not_attempted' END, NULL,
       CASE WHEN t.ext = 'success' THEN CASE WHEN r.software_name IS NULL THEN 'error' ELSE 'result' END ELSE 'not_attempted' END,
       CASE WHEN t.ext = 'success' AND r.software_name IS NULL THEN 'service-unavailable' END,
       CASE WHEN t.ext = 'success' THEN r.software_name END, CASE WHEN t.ext = 'success' THEN r.software_version END,
       CASE WHEN t.outcome = 'timeout' THEN 'no answer to the stream features in 10 s' END,
       NULL
  FROM results r
  CROSS JOIN LATERAL (SELECT coalesce(r.acceptance_reason, '') AS reason) a
  CROSS JOIN LATERAL (VALUES (0, 'server_only'), (1, 'client_and_server')) AS k(ordinal, kind)
  CROSS JOIN LATERAL (
    SELECT a.reason <> 'no_tls_session' AS tls,
           a.reason <> 'no_certificate_request' AS ccr,
           CASE WHEN a.reason = 'no_tls_session' OR (a.reason = 'tls_alert_on_server_only' AND k.ordinal = 0) THEN 'tls_failed'
                WHEN a.reason = 'attempt_incomplete' THEN 'timeout' ELSE 'complete' END AS outcome,
           CASE WHEN a.reason = 'external_succeeded' THEN 'success'
                WHEN a.reason IN ('external_refused', 'tls_alert_on_server_only') THEN CASE WHEN k.ordinal = 0 THEN CASE WHEN a.reason = 'external_refused' THEN 'failure' END ELSE 'success' END
                WHEN a.reason = 'both_certificates_refused' THEN 'failure' END AS ext) t
 WHERE r.acceptance NOT IN ('not_run', 'unreachable')

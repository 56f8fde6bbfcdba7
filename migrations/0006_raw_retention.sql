-- xmpp-survey PostgreSQL schema, version 6: retention of raw evidence
-- (`xmpp-survey db prune --keep-raw WEEKS`). The raw JSONB beside the
-- typed columns (results.report, endpoints.evidence, dns_records.data)
-- is what makes old crawls large; every figure a report or the lookup
-- history shows comes from typed columns, so the raw evidence of old
-- crawls can go while the typed rows stay queryable. NULL there means
-- "pruned"; crawls.raw_pruned_at says when.
--
-- Applied by `Store::migrate()` after version 5, in one transaction.
-- Do not edit once released: add a later migrations/NNNN_*.sql instead.

ALTER TABLE results ALTER COLUMN report DROP NOT NULL;
ALTER TABLE endpoints ALTER COLUMN evidence DROP NOT NULL;
ALTER TABLE dns_records ALTER COLUMN data DROP NOT NULL;
ALTER TABLE crawls ADD COLUMN raw_pruned_at TIMESTAMPTZ;

COMMENT ON COLUMN results.report IS 'The whole probe report (docs/probe-json-schema.md) as raw evidence; NULL once pruned (`db prune --keep-raw`, never the newest result of a domain: the lookup reads it). Every typed column stays.';
COMMENT ON COLUMN endpoints.evidence IS 'The endpoint''s JSON report (stream headers, features before/after TLS, stream error, failure details) with tls.chain replaced by chain_sha256, the list of certificate hashes; NULL once pruned (`db prune --keep-raw`): the typed columns stay.';
COMMENT ON COLUMN dns_records.data IS 'The answer: SRV {records [{priority, weight, port, target}], decidedly_unavailable, detail}; A/AAAA {addrs, cnames}; TLSA {records [{usage, selector, matching, data}]}. NULL once pruned (`db prune --keep-raw`); name, rtype and outcome stay.';
COMMENT ON COLUMN crawls.raw_pruned_at IS 'When `db prune --keep-raw` last removed raw evidence (results.report, endpoints.evidence, dns_records.data) of this crawl; NULL if never.';

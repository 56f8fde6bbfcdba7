-- xmpp-survey PostgreSQL schema, version 4: per-domain changes between
-- consecutive finished crawls of one vantage (issue 12), filled when a
-- crawl is marked finished (Store::finish_crawl, same transaction) and
-- read by the report, the lookup history and the web feeds.
--
-- Applied by `Store::migrate()` after version 3, in one transaction.
-- Do not edit once released: add migrations/0005_*.sql instead.

CREATE TABLE domain_changes (
    crawl_id          BIGINT NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    previous_crawl_id BIGINT NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    domain_id         BIGINT NOT NULL REFERENCES domains (id),
    kind              TEXT   NOT NULL
        CHECK (kind IN ('verdict', 'eku_class', 'starttls', 'software_version', 'certificate_renewed', 'appeared', 'disappeared')),
    scope             TEXT   NOT NULL CHECK (scope IN ('domain', 'c2s', 's2s')),
    before            TEXT,
    after             TEXT,
    PRIMARY KEY (crawl_id, domain_id, kind, scope)
);
COMMENT ON TABLE domain_changes IS 'What changed about each domain between the previous finished crawl of the same vantage and this one (MEASUREMENTS §4 "domains whose verdict changed since the previous crawl"): computed by model::change::diff when the crawl is marked finished, replaced as a whole when it is finished again, so the primary key never sees a duplicate.';
COMMENT ON COLUMN domain_changes.crawl_id IS 'The crawl the change was seen in.';
COMMENT ON COLUMN domain_changes.previous_crawl_id IS 'The newest finished crawl of the same vantage created before crawl_id: what the change is relative to.';
COMMENT ON COLUMN domain_changes.domain_id IS 'The domain.';
COMMENT ON COLUMN domain_changes.kind IS 'verdict (acceptance verdict), eku_class (of the primary end-entity certificate), starttls (required/optional/absent), software_version (XEP-0092 name and version), certificate_renewed (another end-entity SHA-256), appeared (not in the previous crawl), disappeared (not in this crawl). Values other than verdict are compared only when observed in both crawls.';
COMMENT ON COLUMN domain_changes.scope IS 'domain (verdict, software_version, appeared, disappeared), or the service the change is about: c2s or s2s.';
COMMENT ON COLUMN domain_changes.before IS 'The previous crawl''s value as shown to readers (a verdict or class name, "name version", "notAfter (sha256 prefix)"); NULL for appeared/disappeared.';
COMMENT ON COLUMN domain_changes.after IS 'This crawl''s value, same form as before.';
CREATE INDEX domain_changes_domain_idx ON domain_changes (domain_id, crawl_id);
CREATE INDEX domain_changes_kind_idx ON domain_changes (crawl_id, kind);

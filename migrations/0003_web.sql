-- xmpp-survey PostgreSQL schema, version 3: what `xmpp-survey serve`
-- writes: live probes requested from the web ("test now") and opt-out
-- requests awaiting the crawl operator's decision.
--
-- Applied by `Store::migrate()` after version 2, in one transaction.
-- Do not edit once released: add migrations/0004_*.sql instead.

CREATE TABLE live_probes (
    id                BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain            TEXT        NOT NULL CHECK (domain <> '' AND domain = lower(domain)),
    requested_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    requested_by_hash TEXT        NOT NULL,
    state             TEXT        NOT NULL DEFAULT 'queued'
                                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'refused')),
    finished_at       TIMESTAMPTZ,
    error             TEXT,
    report            JSONB
);
COMMENT ON TABLE live_probes IS 'Live probes requested on the web server ("test now", MEASUREMENTS §5 rate limits apply): one row per request, run by the serve process in the background; not part of any crawl.';
COMMENT ON COLUMN live_probes.id IS 'Surrogate key, in the page URL of the probe.';
COMMENT ON COLUMN live_probes.domain IS 'The XMPP domain, normalised like domains.name.';
COMMENT ON COLUMN live_probes.requested_at IS 'When the probe was requested.';
COMMENT ON COLUMN live_probes.requested_by_hash IS 'Keyed hash of the requesting client address (never the address itself): enough to see floods, not to identify anyone.';
COMMENT ON COLUMN live_probes.state IS 'queued, running, done (report holds the DomainReport), failed (error says why) or refused (address policy or opt-out; error says why).';
COMMENT ON COLUMN live_probes.finished_at IS 'When the probe reached done, failed or refused; NULL before.';
COMMENT ON COLUMN live_probes.error IS 'Why the probe failed or was refused; NULL otherwise.';
COMMENT ON COLUMN live_probes.report IS 'The whole DomainReport (docs/probe-json-schema.md) when done; NULL otherwise.';
CREATE INDEX live_probes_domain_idx ON live_probes (domain, requested_at DESC);
CREATE INDEX live_probes_state_idx ON live_probes (state) WHERE state IN ('queued', 'running');

CREATE TABLE optout_requests (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain       TEXT        NOT NULL CHECK (domain <> '' AND domain = lower(domain)),
    reason       TEXT        NOT NULL DEFAULT '',
    contact      TEXT        NOT NULL DEFAULT '',
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    state        TEXT        NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_at   TIMESTAMPTZ,
    CHECK ((state = 'pending') = (decided_at IS NULL))
);
COMMENT ON TABLE optout_requests IS 'Opt-out requests sent through the web form (MEASUREMENTS §5): pending until the crawl operator approves (`xmpp-survey optout approve ID`, which adds the domain to opt_outs) or rejects them.';
COMMENT ON COLUMN optout_requests.id IS 'Surrogate key, as `xmpp-survey optout list` shows it.';
COMMENT ON COLUMN optout_requests.domain IS 'The XMPP domain, normalised like domains.name.';
COMMENT ON COLUMN optout_requests.reason IS 'Why, in the requester''s words (free text, length-limited by the server).';
COMMENT ON COLUMN optout_requests.contact IS 'How to reach the requester, as given (free text, may be empty).';
COMMENT ON COLUMN optout_requests.requested_at IS 'When the request was sent.';
COMMENT ON COLUMN optout_requests.state IS 'pending, approved (the domain is in opt_outs) or rejected.';
COMMENT ON COLUMN optout_requests.decided_at IS 'When it was approved or rejected; NULL while pending.';
CREATE INDEX optout_requests_pending_idx ON optout_requests (domain) WHERE state = 'pending';

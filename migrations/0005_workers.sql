-- xmpp-survey PostgreSQL schema, version 5: several hosts, one database.
-- Workers register and heartbeat (`xmpp-survey status` shows them), the
-- queue remembers which worker stored each result, and the probe domain's
-- listener relays evidence to the worker probing a domain.
--
-- Applied by `Store::migrate()` after version 4, in one transaction.
-- Do not edit once released: add migrations/0006_*.sql instead.

CREATE TABLE workers (
    crawl_id     BIGINT      NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    worker_id    TEXT        NOT NULL CHECK (worker_id <> ''),
    host         TEXT        NOT NULL,
    pid          INTEGER     NOT NULL,
    listen       TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    interval_ms  INTEGER     NOT NULL CHECK (interval_ms > 0),
    stopped_at   TIMESTAMPTZ,
    PRIMARY KEY (crawl_id, worker_id)
);
COMMENT ON TABLE workers IS 'Each worker process that joined a crawl (crawl, worker or survey command, on any host sharing the database): registered when it starts, heartbeat while it works, stopped_at when it ends cleanly. A worker killed (kill -9, host lost) keeps its last heartbeat: status shows it stale, and its leases are taken over once they expire.';
COMMENT ON COLUMN workers.crawl_id IS 'The crawl it works on.';
COMMENT ON COLUMN workers.worker_id IS 'Its name in leases (crawl_queue.lease_owner, done_by): --worker-id, default host:pid.';
COMMENT ON COLUMN workers.host IS 'Host name of the machine it runs on (/etc/hostname).';
COMMENT ON COLUMN workers.pid IS 'Its process id on that host.';
COMMENT ON COLUMN workers.listen IS 'Address its dialback listener is bound to; NULL without the acceptance probe. Only the one the probe domain''s DNS points to receives targets'' connections.';
COMMENT ON COLUMN workers.started_at IS 'When it registered (joined the crawl).';
COMMENT ON COLUMN workers.heartbeat_at IS 'Its last heartbeat: live while within a few heartbeat intervals of now.';
COMMENT ON COLUMN workers.interval_ms IS 'Its heartbeat interval in milliseconds (status calls a worker stale after several missed).';
COMMENT ON COLUMN workers.stopped_at IS 'When it ended its work cleanly (finished, interrupted or failed); NULL while running or after a crash.';

ALTER TABLE crawl_queue
    ADD COLUMN done_by TEXT;
COMMENT ON COLUMN crawl_queue.done_by IS 'The worker holding the lease when the result was stored (lease_owner before it was cleared); NULL for domains not done, and for those done before schema version 5.';

CREATE FUNCTION crawl_queue_done_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'done' AND OLD.state <> 'done' THEN
        NEW.done_by := OLD.lease_owner;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crawl_queue_done_by() IS 'Keeps crawl_queue.done_by: the lease owner at the moment a domain becomes done.';
CREATE TRIGGER crawl_queue_done_by BEFORE UPDATE OF state ON crawl_queue
    FOR EACH ROW EXECUTE FUNCTION crawl_queue_done_by();

CREATE TABLE relay_events (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crawl_id   BIGINT      NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    to_worker  TEXT        NOT NULL,
    payload    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE relay_events IS 'Evidence in transit from the probe domain''s listener to the worker probing a domain (db:verify answered, an authenticated inbound stream, an IQ reply), announced with NOTIFY and deleted by the receiving worker when it takes it. Rows left over belong to workers that died.';
COMMENT ON COLUMN relay_events.id IS 'Surrogate key, the NOTIFY payload''s reference.';
COMMENT ON COLUMN relay_events.crawl_id IS 'The crawl both workers work on.';
COMMENT ON COLUMN relay_events.to_worker IS 'The worker probing the domain (workers.worker_id).';
COMMENT ON COLUMN relay_events.payload IS 'The evidence (listener::Relayed as JSON: kind verified, inbound or iq, domain, details).';
COMMENT ON COLUMN relay_events.created_at IS 'When the listener relayed it.';

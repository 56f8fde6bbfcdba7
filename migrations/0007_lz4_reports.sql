-- xmpp-survey PostgreSQL schema, version 7: the raw report of every result
-- (results.report, 7-17 KB of JSON per domain, the largest value the
-- crawl writes) compressed with LZ4 instead of PostgreSQL's default pglz.
-- Measured on this project's benchmark (docs/benchmarks.md, issue 13
-- step 3): pglz compression was the largest single item of PostgreSQL's
-- CPU while a crawl writes, LZ4 takes about half the time for ~20 % more
-- disk. Values already stored keep their compression; new ones use LZ4.
-- A PostgreSQL built without LZ4 (`--without-lz4`) keeps pglz and says so.
--
-- Applied by `Store::migrate()` after version 6, in one transaction.
-- Do not edit once released: add a later migrations/NNNN_*.sql instead.

DO $$
BEGIN
    ALTER TABLE results ALTER COLUMN report SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no LZ4 support: results.report stays compressed with pglz';
END
$$;

-- What the runtime role (smsreg_app) may do, applied by the db-grants job after every
-- migration, as the owner role. Idempotent.
--
-- Why a grant step after migrating rather than ALTER DEFAULT PRIVILEGES: default
-- privileges are fixed when a table is created and are the same for every table, so
-- "read and write everything" would also hand smsreg_app UPDATE and DELETE on the
-- ledger tables, the very rights their migration revokes; and "SELECT, INSERT only"
-- would leave the purge and every status change without the rights they need. A step
-- that runs after each migration sees the finished schema and can tell the two apart.
\set ON_ERROR_STOP on
BEGIN;

GRANT USAGE ON SCHEMA public TO smsreg_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO smsreg_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO smsreg_app;

-- Alembic's bookkeeping: the runtime may read which revision it runs on, never move it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM smsreg_app;

-- Append-only tables: those a ledger_refuse_* trigger guards (the disclosure ledger's
-- entries, subject index and checkpoints). smsreg_app appends and reads; UPDATE, DELETE
-- and TRUNCATE stay with the owner (`smsreg ledger purge` of entries past retention).
DO $$
DECLARE
    append_only regclass;
BEGIN
    FOR append_only IN
        SELECT DISTINCT t.tgrelid::regclass
        FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE NOT t.tgisinternal AND p.proname LIKE 'ledger\_refuse\_%'
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM smsreg_app', append_only);
        RAISE NOTICE 'append-only for smsreg_app: %', append_only;
    END LOOP;
END
$$;

COMMIT;

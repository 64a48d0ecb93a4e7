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

-- Append-only tables: those a ledger_refuse_* trigger guards. smsreg_app appends and
-- reads; UPDATE and TRUNCATE stay with the owner. DELETE too on the disclosure ledger's
-- tables (ledger_*: its entries, subject index and checkpoints), whose entries past
-- retention only the owner deletes (`smsreg ledger purge`). The access log keeps DELETE:
-- `smsreg purge`, run as smsreg_app, deletes its entries past retention, and its own
-- trigger refuses to delete any younger than 365 days, whoever asks.
DO $$
DECLARE
    append_only regclass;
BEGIN
    FOR append_only IN
        SELECT DISTINCT t.tgrelid::regclass
        FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE NOT t.tgisinternal AND p.proname LIKE 'ledger\_refuse\_%'
    LOOP
        EXECUTE format('REVOKE UPDATE, TRUNCATE ON %s FROM smsreg_app', append_only);
        IF append_only::text LIKE 'ledger\_%' THEN
            EXECUTE format('REVOKE DELETE ON %s FROM smsreg_app', append_only);
        END IF;
        RAISE NOTICE 'append-only for smsreg_app: %', append_only;
    END LOOP;
END
$$;

COMMIT;

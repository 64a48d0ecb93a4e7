#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory
# (/docker-entrypoint-initdb.d), as the superuser. Creates the two roles smsreg uses:
#
#   smsreg_owner  owns the database and its schema; only the migrate job (and a person
#                 running `smsreg ledger purge`) connects as it.
#   smsreg_app    the service, the outbox worker and the scheduled jobs. It owns nothing,
#                 so the ledger's append-only rights bind it; what it may do is granted
#                 table by table after each migration (grants.sql, the db-grants job).
#
# Passwords come from the environment and are passed to psql as variables, never echoed.
# Changing them later is ALTER ROLE: this script does not run again on existing data.
set -eu
: "${DB_OWNER_PASSWORD:?DB_OWNER_PASSWORD is required}"
: "${DB_APP_PASSWORD:?DB_APP_PASSWORD is required}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v owner_pw="$DB_OWNER_PASSWORD" -v app_pw="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE smsreg_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE smsreg_app LOGIN PASSWORD :'app_pw';
CREATE DATABASE smsreg OWNER smsreg_owner;
REVOKE ALL ON DATABASE smsreg FROM PUBLIC;
GRANT CONNECT ON DATABASE smsreg TO smsreg_owner, smsreg_app;
\connect smsreg
-- PostgreSQL 15 already gives PUBLIC no CREATE here; say it anyway, and name who may use it.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO smsreg_app;
SQL

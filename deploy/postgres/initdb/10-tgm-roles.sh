#!/bin/sh
# tgm's two database roles, so that no tgm process connects as a superuser (PostgreSQL 15+, psql 15+; idempotent).
#   tgm_migrator  owns the database and its public schema: the only role that changes the schema
#                 (`python -m tgm.services.botregistry migrate`, docker-compose's botregistry-migrate, the k8s Job)
#   tgm_app       what the registry serves with: reads and writes rows, no DDL, no temporary tables, not a superuser
# docker-compose: the postgres image runs it once, on the first start of an empty data folder (as its superuser).
# Elsewhere (a managed PostgreSQL): run it as an admin role with PGHOST/PGPORT/PGUSER/PGPASSWORD set and
# POSTGRES_DB=<the database>, TGM_DB_MIGRATOR_PASSWORD, TGM_DB_APP_PASSWORD. The passwords are read by psql from
# the environment (\getenv), never put on a command line. tests/deploy/test_postgres_roles.py runs this file.
set -eu
: "${POSTGRES_DB:?}" "${TGM_DB_MIGRATOR_PASSWORD:?}" "${TGM_DB_APP_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-${PGUSER:-postgres}}" --dbname "$POSTGRES_DB" <<'SQL'
\getenv migrator_password TGM_DB_MIGRATOR_PASSWORD
\getenv app_password TGM_DB_APP_PASSWORD
SELECT 'CREATE ROLE tgm_migrator' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tgm_migrator') \gexec
SELECT 'CREATE ROLE tgm_app' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tgm_app') \gexec
ALTER ROLE tgm_migrator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'migrator_password';
ALTER ROLE tgm_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
ALTER DATABASE :"DBNAME" OWNER TO tgm_migrator;
ALTER SCHEMA public OWNER TO tgm_migrator;
-- Nobody else connects or makes temporary tables; only the owner creates in the schema.
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO tgm_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tgm_app;
-- Rows only, on the tables there now and on every table the migrator creates later.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tgm_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tgm_app;
ALTER DEFAULT PRIVILEGES FOR ROLE tgm_migrator IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tgm_app;
ALTER DEFAULT PRIVILEGES FOR ROLE tgm_migrator IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO tgm_app;
SQL

-- replicator: least-privilege accounts on the PostgreSQL side (here the "crm" connection).
--
-- Run as a superuser (or the owner of the mapped tables with CREATEROLE), connected to the
-- replicated database:  psql -d crm -v ON_ERROR_STOP=1 -f grants-postgresql.sql
--
-- Replace before running:
--   crm                  the database (connections.crm.database)
--   app                  the schema of the mapped tables. Every line naming app is per schema:
--                        repeat them (USAGE, the table grants and the default privileges) for
--                        each schema a mapping names; one schema is only the example
--   app_owner            the role that creates tables in app (for the default privileges)
--   replicator           the state schema (connections.crm.state_schema, default replicator)
--   CHANGE_ME_*          the passwords; store the same values in the systemd credentials
--                        /etc/replicator/credentials/crm-capture and crm-apply (root, 0600).
--                        Better: leave PASSWORD out here and set it with psql's \password, which
--                        sends only a hash (no password in this file or the server log).
--
-- pg_hba.conf: allow both roles over TLS. A logical replication connection matches the database
-- name, not the "replication" keyword (that one is for physical replication):
--   hostssl crm  replicator_apply    192.0.2.50/32  scram-sha-256
--   hostssl crm  replicator_capture  192.0.2.50/32  scram-sha-256
--
-- These roles run the daemon (`replicator run` and `replicator check`). `replicator setup` needs
-- more (creating the publication requires owning the mapped tables, creating the slot requires
-- REPLICATION): run it with an administrator's account, see docs/operations.md, "Install".

-- ---------------------------------------------------------------------------------------------
-- 1. Capture role: reads the WAL through the pgoutput slot. REPLICATION is all it needs: logical
--    decoding does not check table privileges. It also reads pg_replication_slots (open to all)
--    to check the slot and export replicator_slot_*_wal_bytes.
CREATE ROLE replicator_capture LOGIN REPLICATION PASSWORD 'CHANGE_ME_crm_capture';
-- Future initial snapshots (copying existing rows) will need SELECT on the mapped tables:
-- GRANT USAGE ON SCHEMA app TO replicator_capture;
-- GRANT SELECT ON ALL TABLES IN SCHEMA app TO replicator_capture;

-- ---------------------------------------------------------------------------------------------
-- 2. Apply role: writes the rows coming from MariaDB and this direction's checkpoint row.
CREATE ROLE replicator_apply LOGIN PASSWORD 'CHANGE_ME_crm_apply';
GRANT CONNECT ON DATABASE crm TO replicator_apply;

-- DML on the mapped tables (upserts: INSERT ... ON CONFLICT DO UPDATE also needs SELECT).
-- ON ALL TABLES IN SCHEMA covers the tables that exist *now*, including ones no mapping names:
-- prefer one line per mapped table where the schema holds tables replicator must not write, and
-- grant again on tables created later:
--   GRANT SELECT, INSERT, UPDATE, DELETE ON app.customer, app.orders TO replicator_apply;
GRANT USAGE ON SCHEMA app TO replicator_apply;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO replicator_apply;
-- Tables created later: ON ALL TABLES does not reach them, and a mapping added for one then fails
-- its first apply with "permission denied" (`replicator check` reports it first). Default
-- privileges grant on every table app_owner creates in app from now on (run once per role that
-- creates tables there; without FOR ROLE it would only cover tables created by the role running
-- this file). A new mapped table must still be added to the publication: `replicator setup`.
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO replicator_apply;
-- Row-level security: on a mapped table with ENABLE ROW LEVEL SECURITY, the policies let an account see
-- and write only some rows, and an UPDATE or DELETE of a row they hide touches nothing without an error.
-- `replicator check` refuses such a table until both roles bypass them (as PostgreSQL's own logical
-- replication does); as a superuser:
-- ALTER ROLE replicator_apply BYPASSRLS;
-- ALTER ROLE replicator_capture BYPASSRLS;
-- TRUNCATE only for mappings with `truncate: propagate`:
-- GRANT TRUNCATE ON app.customer TO replicator_apply;
-- Sequences only if a mapping leaves a key to a DEFAULT nextval() (replicator writes the keys):
-- GRANT USAGE ON ALL SEQUENCES IN SCHEMA app TO replicator_apply;

-- The state schema: the checkpoint (one row per stream, updated in the same transaction as the
-- data it describes), the crosswalk and parked rows of linked mappings, and the progress of syncs.
-- Created here with the same DDL `replicator setup` uses (replicator/checkpoint.py, links.py,
-- sync.py; `replicator setup --print-sql` prints it), so that it can be granted now; setup finds
-- it and leaves it alone.
CREATE SCHEMA IF NOT EXISTS replicator;
CREATE TABLE IF NOT EXISTS replicator.checkpoint (
    stream text PRIMARY KEY,
    position text NOT NULL,
    txn_seq bigint NOT NULL DEFAULT 0,
    source_commit_time timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS replicator.crosswalk (
    mapping text NOT NULL, source_side text NOT NULL, source_key text NOT NULL,
    target_key text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mapping, source_side, source_key));
CREATE INDEX IF NOT EXISTS crosswalk_target ON replicator.crosswalk (mapping, source_side, target_key);
CREATE TABLE IF NOT EXISTS replicator.parked (
    id bigserial PRIMARY KEY, stream text NOT NULL, waiting_mapping text NOT NULL,
    waiting_key text NOT NULL, mapping text NOT NULL, change text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS parked_waiting ON replicator.parked (stream, waiting_mapping, waiting_key);
CREATE TABLE IF NOT EXISTS replicator.sync (
    stream text NOT NULL, mapping text NOT NULL, status text NOT NULL, last_key text,
    rows_done bigint NOT NULL DEFAULT 0, rows_estimated bigint NOT NULL DEFAULT 0,
    requested_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, finished_at timestamptz,
    rows_skipped bigint NOT NULL DEFAULT 0, PRIMARY KEY (stream, mapping));
-- (an installation from before round 12: the column it lacks)
ALTER TABLE replicator.sync ADD COLUMN IF NOT EXISTS rows_skipped bigint NOT NULL DEFAULT 0;
-- every conflict decided in this database (docs/conflicts.md); trimmed by conflicts.retention_days
CREATE TABLE IF NOT EXISTS replicator.conflicts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    detected_at timestamptz NOT NULL DEFAULT now(),
    stream text NOT NULL, mapping text NOT NULL, kind text NOT NULL, target_table text NOT NULL,
    target_key text NOT NULL, source_key text NOT NULL, field text,
    source_value text, target_value text, rule text NOT NULL, winner text NOT NULL,
    resolution text NOT NULL, detail text NOT NULL DEFAULT '', source_commit_time timestamptz,
    resolved_at timestamptz, resolved_by text);
CREATE INDEX IF NOT EXISTS conflicts_time ON replicator.conflicts (detected_at);
CREATE INDEX IF NOT EXISTS conflicts_row ON replicator.conflicts (mapping, target_key);
CREATE INDEX IF NOT EXISTS conflicts_source ON replicator.conflicts (mapping, source_key);
CREATE INDEX IF NOT EXISTS conflicts_pending ON replicator.conflicts (target_table) WHERE resolution = 'pending';
-- rows this database rejected under `on_error: quarantine`, and later changes of those rows (`replicator dlq`)
CREATE TABLE IF NOT EXISTS replicator.dead_letter (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now(),
    stream text NOT NULL, mapping text NOT NULL, target_table text NOT NULL, target_key text NOT NULL,
    source_key text NOT NULL, op text NOT NULL, source_position text NOT NULL, source_row text,
    change text NOT NULL, error text NOT NULL, error_class text NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letter_row ON replicator.dead_letter (stream, target_table, target_key);
-- active/standby: which instance applies each stream into this database, and since which takeover
CREATE TABLE IF NOT EXISTS replicator.lease (
            stream text PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL, session bigint NOT NULL,
            renewed_at timestamptz NOT NULL DEFAULT clock_timestamp());
GRANT USAGE ON SCHEMA replicator TO replicator_apply;
GRANT SELECT, INSERT, UPDATE ON replicator.checkpoint TO replicator_apply;
GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.crosswalk, replicator.parked, replicator.sync TO replicator_apply;
GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.conflicts, replicator.dead_letter TO replicator_apply;
GRANT SELECT, INSERT, UPDATE ON replicator.lease TO replicator_apply;
GRANT USAGE ON SEQUENCE replicator.parked_id_seq TO replicator_apply;
-- Sync and verify read the mapped tables of this side with the apply role (SELECT above), and a
-- sync's watermarks are logical messages (pg_logical_emit_message, below): nothing more to grant.

-- CREATE on the schema lets the apply role create the table itself; together with CREATE on the
-- database, ownership of the published tables and REPLICATION it could run `replicator setup`
-- alone, which is more than the daemon should hold. Not granted:
-- GRANT CREATE ON SCHEMA replicator TO replicator_apply;

-- Loop prevention on this side: the applier starts every transaction with
-- pg_logical_emit_message(true, 'replicator', '<stream>'). EXECUTE on pg_logical_emit_message is
-- granted to PUBLIC by default: nothing to grant (only if your site revoked it):
-- GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO replicator_apply;
-- No replication origins are used: no pg_replication_origin_* grants, no superuser.
--
-- The session lock that keeps a second instance out is an advisory lock (no privilege needed).
-- `replicator check` reads pg_settings, pg_roles, pg_replication_slots, pg_publication(_tables)
-- and the catalog of the mapped tables, all readable by any role.

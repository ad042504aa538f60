-- replicator: least-privilege accounts on the MariaDB side (here the "erp" connection).
--
-- Run as an administrator:  mariadb < grants-mariadb.sql
--
-- Replace before running:
--   erp                  the database of the mapped tables (connections.erp.database). Every line
--                        naming erp is per database: repeat it for every other database a mapping
--                        names. A database-level grant (erp.*) also covers tables created later.
--   replicator           the state database (connections.erp.state_schema, default replicator)
--   '%'                  the host part: better the replicator host's address, e.g. '192.0.2.50'
--   CHANGE_ME_*          the passwords; store the same values in the systemd credentials
--                        /etc/replicator/credentials/erp-capture and erp-apply (root, 0600)
-- Add REQUIRE SSL (or REQUIRE X509) to CREATE USER to refuse unencrypted logins.
--
-- No SUPER, no BINLOG REPLAY, no sql_log_bin: loop prevention works with plain DML on the
-- checkpoint table (docs/operations.md, "Loop prevention").
--
-- These accounts run the daemon (`replicator run` and `replicator check`). `replicator setup`
-- creates the state database and reads the binlog position: run it with an administrator's
-- account, or grant the two commented privileges at the end (docs/operations.md, "Install").

-- ---------------------------------------------------------------------------------------------
-- 1. Capture user: reads the binlog as a replica. REPLICATION SLAVE streams the binlog; BINLOG
--    MONITOR allows SHOW BINARY LOGS / SHOW MASTER STATUS (the purged-binlog check). With
--    binlog_row_metadata=FULL the binlog reader itself needs no SELECT on the tables.
CREATE USER 'replicator_capture'@'%' IDENTIFIED BY 'CHANGE_ME_erp_capture';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'replicator_capture'@'%';
-- `replicator check` (and the preflight of `replicator run`) logs the capture user into the
-- connection's database to read its grants, which needs some privilege there; SELECT is also
-- what future initial snapshots will need.
GRANT SELECT ON erp.* TO 'replicator_capture'@'%';

-- ---------------------------------------------------------------------------------------------
-- 2. Apply user: writes the rows coming from PostgreSQL and this direction's checkpoint row.
CREATE USER 'replicator_apply'@'%' IDENTIFIED BY 'CHANGE_ME_erp_apply';
-- DML on the mapped tables. erp.* covers every table of the database, now and later; list the
-- tables instead if it holds tables replicator must not write:
--   GRANT SELECT, INSERT, UPDATE, DELETE ON erp.customers TO 'replicator_apply'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON erp.* TO 'replicator_apply'@'%';
-- TRUNCATE on MariaDB needs DROP: grant it only for mappings with `truncate: propagate`:
-- GRANT DROP ON erp.customers TO 'replicator_apply'@'%';
-- No TRIGGER: with INSERT, UPDATE, DELETE the account sees the names of the mapped tables' triggers but not
-- their statements, so `replicator check` warns that it cannot tell what each does to replicator's writes
-- (docs/operations.md, "Changes the servers make on their own"). TRIGGER would also let the account create
-- and drop triggers: rather run `replicator check` once as a DBA's account that has it, or a read-only one:
--   GRANT SELECT, TRIGGER ON erp.* TO 'dba_check'@'%';   -- SELECT for the catalog, TRIGGER for the statements

-- The state database. Its checkpoint table holds one row per stream; every applied transaction
-- first bumps its own row, which is both the checkpoint and the loop-prevention tag. The
-- conflicts table (docs/conflicts.md) is written in the same transactions and trimmed by retention,
-- and so is the dead_letter table (`on_error: quarantine`, docs/operations.md).
GRANT SELECT, INSERT, UPDATE, DELETE ON replicator.* TO 'replicator_apply'@'%';

-- Only if this account runs `replicator setup` itself (CREATE DATABASE / CREATE TABLE IF NOT
-- EXISTS for the state database, SHOW MASTER STATUS for the starting position). Otherwise a DBA
-- runs setup as an administrator (or runs the `replicator setup --print-sql` statements first).
-- All can be revoked after setup. ALTER only for an upgrade that adds a column to a state table
-- (round 12: sync.rows_skipped).
-- GRANT CREATE ON replicator.* TO 'replicator_apply'@'%';
-- GRANT ALTER ON replicator.* TO 'replicator_apply'@'%';
-- GRANT BINLOG MONITOR ON *.* TO 'replicator_apply'@'%';

-- pgbench script: one event = one INSERT, in its own transaction (autocommit), as an
-- app that awaits logTokenIssued() & co. on every request does. The row is one of
-- the events `gatewatch-bench ingest` sends, copied from bench_pool by primary key;
-- created_at is the insert time (like gatewatch stamping events that have no ts).
\set n random(1, :pool)
INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details)
SELECT user_id, action, resource_type, resource_id, details FROM bench_pool WHERE n = :n;

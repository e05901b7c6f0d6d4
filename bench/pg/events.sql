-- pgbench script: the newest 50 token.issued events (getTokenActivity with a filter),
-- the same question as GET /events?limit=50&type=token.issued.
SELECT * FROM audit_logs WHERE action LIKE 'token.issued.%' ORDER BY created_at DESC LIMIT 50;

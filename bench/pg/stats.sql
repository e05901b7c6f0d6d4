-- pgbench script: the dashboard's stats cards over the last 30 days.
SELECT * FROM get_token_stats(now() - interval '30 days', now());

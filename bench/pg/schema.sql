-- The reference design gatewatch is compared with: the identity provider's
-- "just log to Postgres" audit log (shared/origins/token-audit-logging-story.txt),
-- rebuilt here from its description. One row per event, the event's attributes in a
-- jsonb column, a plpgsql function computing the dashboard's stats cards.
--
-- Choices where the origin is silent, each in Postgres' favour:
-- - id is a bigint identity (8 bytes), not a uuid (16 bytes);
-- - user_id is text (the benchmark's users are strings, not uuids), no foreign key.

CREATE TABLE audit_logs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text,
    action        text        NOT NULL,
    resource_type text,
    resource_id   text,
    details       jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The two indexes of the reference design.
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_action_idx ON audit_logs (action);

-- The analytics view of the origin (a plain view: no storage, not used by the suite).
CREATE VIEW token_analytics AS
SELECT date(l.created_at)          AS day,
       l.action,
       l.details ->> 'client_id'   AS client_id,
       l.details ->> 'grant_type'  AS grant_type,
       count(*)                    AS events
FROM audit_logs l
WHERE l.action LIKE 'token.%'
GROUP BY 1, 2, 3, 4;

-- The stats cards over [p_start_date, p_end_date], optionally for one client:
-- tokens issued (any grant), refreshed, failed, and distinct users and clients, all
-- counted in one pass with COUNT ... FILTER over the action patterns.
CREATE FUNCTION get_token_stats(
    p_start_date timestamptz,
    p_end_date   timestamptz,
    p_client_id  text DEFAULT NULL
)
RETURNS TABLE (
    total_issued    bigint,
    total_refreshed bigint,
    total_failed    bigint,
    unique_users    bigint,
    unique_clients  bigint
)
LANGUAGE plpgsql
AS $body$
BEGIN
    RETURN QUERY
    SELECT count(*) FILTER (WHERE l.action LIKE 'token.issued.%'),
           count(*) FILTER (WHERE l.action = 'token.refreshed'),
           count(*) FILTER (WHERE l.action LIKE 'token.%failed%'),
           count(DISTINCT l.user_id),
           count(DISTINCT l.details ->> 'client_id')
    FROM audit_logs l
    WHERE l.action LIKE 'token.%'
      AND l.created_at >= p_start_date
      AND l.created_at <= p_end_date
      AND (p_client_id IS NULL OR l.details ->> 'client_id' = p_client_id);
END;
$body$;

-- Not part of the reference design: the pre-generated events that the per-event
-- INSERT benchmark copies rows from (the same events `gatewatch-bench ingest` sends).
-- Excluded from every size figure.
CREATE TABLE bench_pool (
    n             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text,
    action        text NOT NULL,
    resource_type text,
    resource_id   text,
    details       jsonb,
    created_at    timestamptz
);

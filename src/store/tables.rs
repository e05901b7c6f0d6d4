//! Every redb table of the store, in one place. Keys are fixed-width tuples so that range
//! scans run in time order within a tenant; values are versioned encodings (see `codec`).

use redb::TableDefinition;

/// Schema version, next sequence number and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// tenant id → [`super::records::TenantRecord`].
pub const TENANTS: TableDefinition<u32, &[u8]> = TableDefinition::new("tenants");
/// slug → tenant id.
pub const TENANT_SLUGS: TableDefinition<&str, u32> = TableDefinition::new("tenant_slugs");

/// user id → [`super::records::UserRecord`].
pub const USERS: TableDefinition<u32, &[u8]> = TableDefinition::new("users");
/// user name → user id.
pub const USER_NAMES: TableDefinition<&str, u32> = TableDefinition::new("user_names");
/// (tenant id, user id) → role code.
pub const MEMBERS: TableDefinition<(u32, u32), u8> = TableDefinition::new("members");

/// key id → [`super::records::KeyRecord`] (holds the SHA-256 of the secret, never the secret).
pub const API_KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_keys");

/// Dashboard sessions: SHA-256 of the session secret → [`super::records::SessionRecord`]
/// (the cookie's secret itself is never stored).
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");

/// Interned strings (event types, client ids, grant types, methods): id → text.
pub const NAMES: TableDefinition<u32, &str> = TableDefinition::new("names");

/// The append-only event log: (tenant, seq) → [`super::records::EventRecord`]. Keyed by
/// the server's sequence number, so every insert lands at the end of its tenant's range
/// and pages fill completely, whatever order the events' own times arrive in.
/// (Schema 3 and earlier named it `log`, with records of an older format.)
pub const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("event_log");
/// The log in time order, for the events of no packed span: [`time_key`]s of (tenant, ts
/// ms, seq) → the event's [`TimeHead`]. Time ranges, listings and cursors read it with
/// [`SPAN_TIMES`] and fetch from [`LOG`] the records they need.
pub const TIMES: TableDefinition<u128, TimeHead> = TableDefinition::new("recent_times");
/// [`TIMES`] as schemas 4 to 9 kept it, without heads: moved into [`TIMES`] at open.
pub const LEGACY_TIMES: TableDefinition<u128, ()> = TableDefinition::new("times");

/// What a listing checks on an event before fetching it: its type id, its outcome code
/// and its client id plus one (0 for none).
pub type TimeHead = (u32, u8, u64);

/// The [`TimeHead`] of an event of type `type_id`, outcome `outcome` and client `client`.
pub fn time_head(type_id: u32, outcome: u8, client: Option<u32>) -> TimeHead {
    (type_id, outcome, client.map_or(0, |c| u64::from(c) + 1))
}
/// The time index of packed spans (see `time_pieces`): (tenant, span's first seq, first
/// ts, first seq) → a piece of the span's (ts, seq), in that order.
pub const SPAN_TIMES: TableDefinition<SpanTimeKey, &[u8]> = TableDefinition::new("span_times");

/// (tenant, span's first seq, the piece's first ts, the piece's first seq).
pub type SpanTimeKey = (u32, u64, u64, u64);

/// Bits of a [`time_key`] that hold the seq; the time sits above them, the tenant above it.
const TIME_SEQ_BITS: u32 = 52;
/// Bits of a [`time_key`] that hold the time: milliseconds up to the year 2527, which is
/// far beyond what ingest accepts (a few minutes from now at most).
const TIME_TS_BITS: u32 = 44;

/// The [`TIMES`] key of event `seq` of `tenant` at `ts`: one `u128` (16 bytes, where the
/// tuple takes 20) that sorts as the tuple (tenant, ts, seq) does. `ts` and `seq` are
/// clamped to their fields; neither can reach its limit (see [`TIME_TS_BITS`]; seqs
/// count stored events).
pub fn time_key(tenant: u32, ts: u64, seq: u64) -> u128 {
    let ts = ts.min((1 << TIME_TS_BITS) - 1);
    let seq = seq.min((1 << TIME_SEQ_BITS) - 1);
    (u128::from(tenant) << (TIME_TS_BITS + TIME_SEQ_BITS))
        | (u128::from(ts) << TIME_SEQ_BITS)
        | u128::from(seq)
}

/// The (tenant, ts, seq) of a [`time_key`].
pub fn time_key_parts(key: u128) -> (u32, u64, u64) {
    let seq = (key & ((1 << TIME_SEQ_BITS) - 1)) as u64;
    let ts = ((key >> TIME_SEQ_BITS) & ((1 << TIME_TS_BITS) - 1)) as u64;
    ((key >> (TIME_TS_BITS + TIME_SEQ_BITS)) as u32, ts, seq)
}

/// Counter buckets: [`CounterKey`] → count.
pub const COUNTERS: TableDefinition<CounterKey, u64> = TableDefinition::new("counters");

/// Per-token state: (tenant, token) → [`super::records::TokenRecord`] (its number and state).
pub const TOKENS: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("token_states");
/// (tenant, token number) → token: log records name their token by number.
pub const TOKEN_IDS: TableDefinition<(u32, u64), &str> = TableDefinition::new("token_ids");

/// Token lives by their end: (tenant, end ms, token) → issued ms. The end is the revoke or
/// expiry event, else the planned expiry (see `TokenState::life`); it answers token-lifetime
/// percentiles over a range without reading every token.
pub const TOKEN_ENDS: TableDefinition<(u32, u64, &str), u64> = TableDefinition::new("token_ends");

/// Token lifetimes by when the life ends: (tenant, granularity, bucket) → (lifetime ms,
/// count) pairs; the `token_ends` index folded per hour and day (see `lifetimes`).
pub const LIFETIMES: TableDefinition<LifetimeKey, &[u8]> = TableDefinition::new("lifetimes");

/// (tenant, granularity, bucket).
pub type LifetimeKey = (u32, u8, u32);

/// Per-tenant numbers of user ids, IP addresses and routes (see `columns`), dense from 1 per
/// (tenant, kind): (tenant, kind, the value's bytes) → number.
pub const VALUE_IDS: TableDefinition<(u32, u8, &[u8]), u32> = TableDefinition::new("value_ids");
/// (tenant, kind, number) → the value's bytes (a user id's or route's text, an IP's 4 or
/// 16 octets).
pub const VALUE_NAMES: TableDefinition<(u32, u8, u32), &[u8]> = TableDefinition::new("value_names");

/// A tenant's newest column entries, not yet sealed in a block: (tenant, seq) →
/// [`TailValue`].
pub const COLUMN_TAIL: TableDefinition<(u32, u64), TailValue> = TableDefinition::new("column_tail");
/// Sealed column blocks: (tenant, seq of the first entry) → an encoded block.
pub const COLUMN_BLOCKS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("column_blocks");

/// Posted spans of column blocks (see `postings`): (tenant, seq of the span's first entry)
/// → (the seq after its last entry, partitions).
pub const POSTING_SPANS: TableDefinition<(u32, u64), (u64, u16)> =
    TableDefinition::new("posting_spans");
/// One partition of one column of a span: (tenant, span's first seq, column code,
/// partition) → an encoded chunk. The span before the column, so that a new span's chunks
/// are appended after the tenant's others (leaves filled, not split in half).
pub const POSTINGS: TableDefinition<(u32, u64, u8, u16), &[u8]> = TableDefinition::new("postings");
/// One piece of one column of a span, its entries ordered by hour (see `hour_pieces`):
/// (tenant, span's first seq, column code, first hour) → an encoded piece.
pub const SPAN_HOURS: TableDefinition<(u32, u64, u8, u32), &[u8]> =
    TableDefinition::new("span_hours");

/// (hour, outcome code, user number, IP number, token number, route number); 0 = none.
/// (Schema 6 and earlier had no route number.)
pub type TailValue = (u32, u8, u32, u32, u64, u32);

/// Idempotency keys: (tenant, client's id) → receive time ms (kept 7 days).
pub const DEDUP: TableDefinition<(u32, &str), u64> = TableDefinition::new("dedup");

/// (tenant, granularity, dimension, dimension value id, bucket, type id, outcome code).
///
/// The dimension value sits before the bucket so that one client's (or grant type's) time
/// range is contiguous; for [`Dim::Type`] the value is always 0.
pub type CounterKey = (u32, u8, u8, u32, u32, u32, u8);

/// Bucket granularity of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// Hours since the epoch.
    Hour = 0,
    /// UTC days since the epoch.
    Day = 1,
}

/// What a counter is broken down by, besides type and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    /// Type × outcome only.
    Type = 0,
    /// Per grant type.
    GrantType = 1,
    /// Per client id.
    Client = 2,
    /// `token.issued` per client id, with the grant type's id in the type slot: answers
    /// "issued by grant type" for one client.
    ClientGrant = 3,
}

/// Meta keys.
pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const META_NEXT_SEQ: &str = "next_seq";
pub const META_NEXT_TENANT: &str = "next_tenant";
pub const META_NEXT_USER: &str = "next_user";
pub const META_NEXT_KEY: &str = "next_key";
/// The number the next new token gets.
pub const META_NEXT_TOKEN: &str = "next_token";
/// Set once the `lifetimes` table has been filled from `token_ends` (stores written before
/// the table existed get it filled at their first open).
pub const META_LIFETIMES_BUILT: &str = "lifetimes_built";

/// Set once the column tables hold every logged event (stores written before they existed
/// get them built at open, resuming from the (tenant, seq) below).
pub const META_COLUMNS_BUILT: &str = "columns_built";
pub const META_COLUMNS_TENANT: &str = "columns_next_tenant";
pub const META_COLUMNS_SEQ: &str = "columns_next_seq";

/// Distinct-count sketches and duration histograms per bucket:
/// (tenant, granularity, bucket, kind) → a sketch (see `sketches::Sketch::encode`).
pub const SKETCHES: TableDefinition<SketchKey, &[u8]> = TableDefinition::new("sketches");

/// (tenant, granularity, bucket, kind).
pub type SketchKey = (u32, u8, u32, u8);

/// First event seq not yet folded into the `sketches` table (later ones are replayed from
/// the log at start-up).
pub const META_SKETCH_SEQ: &str = "sketch_seq";
/// How many rebuilds the store has had: the generation of the day tallies kept in memory
/// (see `day_tallies`).
pub const META_REBUILDS: &str = "rebuilds";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_their_tuples_and_split_back() {
        let mut tuples = vec![
            (0, 0, 0),
            (0, 0, 1),
            (0, 1, 0),
            (1, 0, 0),
            (7, 1_764_633_600_000, 12),
            (7, 1_764_633_600_000, 13),
            (7, 1_764_633_600_001, 2),
            (u32::MAX, (1 << TIME_TS_BITS) - 1, (1 << TIME_SEQ_BITS) - 1),
        ];
        tuples.sort();
        let keys: Vec<u128> = tuples
            .iter()
            .map(|&(t, ts, s)| time_key(t, ts, s))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (key, tuple) in keys.iter().zip(&tuples) {
            assert_eq!(time_key_parts(*key), *tuple);
        }
        // Out-of-range parts clamp to their field instead of spilling into the next.
        assert_eq!(time_key_parts(time_key(3, u64::MAX, u64::MAX)).0, 3);
    }
}

use super::*;
use crate::model::{EventType, Outcome};

const NOW: u64 = 1_795_000_000_000;

fn ev(t: &str, ts: u64) -> Event {
    Event::new(EventType::parse(t).expect("valid type"), ts)
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
    (dir, store)
}

#[tokio::test]
async fn ingest_assigns_increasing_seqs_and_dedups() {
    let (_dir, store) = open();
    let mut a = ev("token.issued", NOW);
    a.id = Some("k1".into());
    let ids = store
        .ingest(
            1,
            NOW,
            vec![a.clone(), ev("token.refreshed", NOW), a.clone()],
        )
        .await
        .expect("ingests");
    assert_eq!(ids, vec![Some(1), Some(2), None]);
    let ids = store.ingest(1, NOW + 1, vec![a.clone()]).await.expect("ok");
    assert_eq!(ids, vec![None]);
    // The same key in another tenant is another event.
    let ids = store.ingest(2, NOW + 1, vec![a.clone()]).await.expect("ok");
    assert_eq!(ids, vec![Some(3)]);
    // After the 7-day window the key is free again.
    let later = NOW + 8 * crate::model::time::DAY_MS;
    let ids = store.ingest(1, later, vec![a]).await.expect("ok");
    assert_eq!(ids, vec![Some(4)]);
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert_eq!(report.events, 4);
    assert!(report.is_consistent(), "{report:?}");
}

#[tokio::test]
async fn events_page_is_newest_first_with_cursor() {
    let (_dir, store) = open();
    let events: Vec<Event> = (0..10).map(|i| ev("join.access", NOW + i * 1000)).collect();
    store.ingest(1, NOW, events).await.expect("ingests");
    store
        .ingest(2, NOW, vec![ev("join.access", NOW)])
        .await
        .expect("ok");
    let snap = store.snapshot().expect("snap");
    let filter = EventFilter {
        from: NOW,
        to: NOW + 100_000,
        ..EventFilter::default()
    };
    let page = snap.events_page(1, &filter, None, 4).expect("page");
    let ts: Vec<u64> = page.events.iter().map(|e| e.event.ts - NOW).collect();
    assert_eq!(ts, vec![9000, 8000, 7000, 6000]);
    let mut seen = ts.len();
    let mut cursor = page.next;
    while let Some(c) = cursor {
        let page = snap.events_page(1, &filter, Some(c), 4).expect("page");
        seen += page.events.len();
        cursor = page.next;
    }
    assert_eq!(seen, 10);
    let one = snap.event(1, 3).expect("reads").expect("exists");
    assert_eq!(one.event.ts, NOW + 2000);
    assert_eq!(
        snap.event(2, 3).expect("reads"),
        None,
        "another tenant's seq"
    );
}

#[tokio::test]
async fn counters_and_tokens_follow_the_log() {
    let (_dir, store) = open();
    let mut issued = ev("token.issued", NOW);
    issued.token = Some("t1".into());
    issued.client_id = Some("web".into());
    issued.grant_type = Some("authorization_code".into());
    let mut failed = ev("join.invalid_token", NOW + 10);
    failed.token = Some("t1".into());
    failed.outcome = Outcome::Failure;
    store
        .ingest(1, NOW, vec![issued, failed])
        .await
        .expect("ingests");
    let snap = store.snapshot().expect("snap");
    let hour = crate::model::time::hour_of(NOW);
    let rows = snap
        .counters(1, Granularity::Hour, Dim::Type, None, hour, hour + 1)
        .expect("reads");
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 2);
    let web = snap.names().id("web").expect("interned");
    let rows = snap
        .counters(1, Granularity::Day, Dim::Client, Some(web), 0, u32::MAX)
        .expect("reads");
    assert_eq!(rows.len(), 1);
    let token = snap.token_state(1, "t1").expect("reads").expect("exists");
    assert_eq!((token.successes, token.failures), (1, 1));
    assert!(snap.verify().expect("verifies").is_consistent());
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
        store
            .ingest(1, NOW, vec![ev("a.b", NOW), ev("c", NOW)])
            .await
            .expect("ingests");
        store.close();
    }
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    let ids = store.ingest(1, NOW, vec![ev("c", NOW)]).await.expect("ok");
    assert_eq!(ids, vec![Some(3)]);
    let snap = store.snapshot().expect("snap");
    assert_eq!(snap.names().id("c"), Some(1));
    assert!(snap.verify().expect("verifies").is_consistent());
}

#[tokio::test]
async fn rebuild_repairs_damaged_counters() {
    let (_dir, store) = open();
    store.ingest(1, NOW, vec![ev("a", NOW)]).await.expect("ok");
    store
        .write(|txn| {
            txn.open_table(tables::COUNTERS)?
                .insert((1u32, 0u8, 0u8, 0u32, 0u32, 0u32, 0u8), 99u64)?;
            Ok(())
        })
        .await
        .expect("writes");
    let before = store.rebuild().await.expect("rebuilds");
    assert_eq!(before.counter_mismatches, 1);
    assert!(store
        .snapshot()
        .expect("snap")
        .verify()
        .expect("ok")
        .is_consistent());
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let (_dir, store) = open();
    store.close();
    assert_eq!(
        store.ingest(1, NOW, vec![ev("a", NOW)]).await,
        Err(StoreError::Unavailable)
    );
    assert!(!store.is_writable());
}

#[tokio::test]
async fn pruning_forgets_only_expired_idempotency_keys() {
    let (_dir, store) = open();
    let mut old = ev("a", NOW);
    old.id = Some("old".into());
    let mut fresh = ev("a", NOW);
    fresh.id = Some("fresh".into());
    store.ingest(1, NOW, vec![old.clone()]).await.expect("ok");
    let day = crate::model::time::DAY_MS;
    store
        .ingest(1, NOW + 3 * day, vec![fresh.clone()])
        .await
        .expect("ok");
    let removed = store
        .prune_dedup_keys(NOW + 7 * day + 1)
        .await
        .expect("prunes");
    assert_eq!(removed, 1);
    // The fresh key still suppresses a repeat.
    let ids = store
        .ingest(1, NOW + 7 * day + 2, vec![fresh])
        .await
        .expect("ok");
    assert_eq!(ids, vec![None]);
}

/// A store written before the lifetime buckets existed gets them filled from `token_ends`
/// when it is opened; a damaged bucket is found by `verify` and mended by `rebuild`.
#[tokio::test]
async fn lifetime_buckets_are_filled_at_first_open_and_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut issued = ev("token.issued", NOW);
    issued.token = Some("t".into());
    let mut revoked = ev("token.revoked", NOW + 60_000);
    revoked.token = Some("t".into());
    {
        let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
        store
            .ingest(1, NOW, vec![issued, revoked])
            .await
            .expect("ingests");
        // As an older release left it: no buckets, no mark.
        store
            .write(|txn| {
                txn.open_table(tables::LIFETIMES)?.retain(|_, _| false)?;
                txn.open_table(tables::META)?
                    .remove(tables::META_LIFETIMES_BUILT)?;
                Ok(())
            })
            .await
            .expect("writes");
        assert!(!consistent(&store));
        store.close();
    }
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    let snap = store.snapshot().expect("snap");
    assert!(snap.verify().expect("verifies").is_consistent());
    assert_eq!(
        snap.lifetime_buckets().expect("reads").len(),
        2,
        "an hour and a day"
    );
    drop(snap);
    store
        .write(|txn| {
            txn.open_table(tables::LIFETIMES)?.retain(|_, _| false)?;
            Ok(())
        })
        .await
        .expect("writes");
    let before = store.rebuild().await.expect("rebuilds");
    assert!(before.token_mismatches > 0);
    assert!(store
        .snapshot()
        .expect("snap")
        .verify()
        .expect("verifies")
        .is_consistent());
}

/// Rewrites a current store as schema version 1 wrote it: the log keyed by
/// (tenant, ts, seq), the seq index, version 1 records.
fn downgrade_to_v1(path: &std::path::Path) {
    use super::migrate::v1;
    use super::records::{EventRecord, Text};
    use redb::ReadableTable;
    let db = redb::Database::open(path).expect("opens");
    let names = migrate::load_names(&db).expect("names");
    let txn = db.begin_write().expect("write");
    {
        let log = txn.open_table(tables::LOG).expect("log");
        let mut old = txn.open_table(v1::EVENTS).expect("v1 log");
        let mut by_seq = txn.open_table(v1::EVENT_SEQ).expect("v1 index");
        let token_ids = txn.open_table(tables::TOKEN_IDS).expect("token ids");
        let values = txn.open_table(tables::VALUE_NAMES).expect("values");
        for entry in log.iter().expect("iter") {
            let (key, bytes) = entry.expect("entry");
            let (tenant, seq) = key.value();
            let record = EventRecord::decode(bytes.value()).expect("decodes");
            let received_at = record.received_at();
            let numbers = read::TenantNumbers {
                tenant,
                tokens: &token_ids,
                values: &values,
            };
            let e = record.into_event(&names, &numbers).expect("names");
            let id = |t: &Option<String>| t.as_deref().map(|t| names.id(t).expect("interned"));
            let old_record = v1::Record {
                received_at,
                type_id: names.id(e.event_type.as_str()).expect("type"),
                outcome: e.outcome.code(),
                client: id(&e.client_id),
                id: e.id.clone(),
                token: e.token.clone(),
                user_id: e.user_id.clone(),
                device_id: e.device_id.clone(),
                grant: id(&e.grant_type),
                scopes: e.scopes.clone(),
                ip: e.ip,
                user_agent: e.user_agent.clone().map(Text::Inline),
                method: id(&e.method),
                route: e.route.clone(),
                status: e.status,
                error: e.error.clone(),
                expires_at: e.expires_at,
                duration_ms: e.duration_ms,
                context: e.context.clone(),
            };
            let bytes = codec::encode(&old_record).expect("encodes");
            old.insert((tenant, e.ts, seq), bytes.as_slice())
                .expect("insert");
            by_seq.insert(seq, (tenant, e.ts)).expect("insert");
        }
    }
    {
        let numbered = txn.open_table(tables::TOKENS).expect("tokens");
        let mut old = txn.open_table(v1::TOKENS).expect("v1 tokens");
        for entry in numbered.iter().expect("iter") {
            let (key, bytes) = entry.expect("entry");
            let stored: super::records::TokenRecord =
                super::records::TokenRecord::decode(bytes.value()).expect("decodes");
            let state = codec::encode(&stored.state).expect("encodes");
            old.insert(key.value(), state.as_slice()).expect("insert");
        }
    }
    drop_postings(&txn);
    txn.delete_table(tables::LOG).expect("drop");
    txn.delete_table(tables::TIMES).expect("drop");
    txn.delete_table(tables::TOKENS).expect("drop");
    txn.delete_table(tables::TOKEN_IDS).expect("drop");
    txn.delete_table(tables::COLUMN_TAIL).expect("drop");
    txn.delete_table(tables::COLUMN_BLOCKS).expect("drop");
    txn.delete_table(tables::VALUE_IDS).expect("drop");
    txn.delete_table(tables::VALUE_NAMES).expect("drop");
    let mut meta = txn.open_table(tables::META).expect("meta");
    meta.remove(tables::META_COLUMNS_BUILT).expect("no columns");
    meta.insert(tables::META_SCHEMA_VERSION, 1)
        .expect("version");
    meta.remove(tables::META_NEXT_TOKEN)
        .expect("no token numbers");
    drop(meta);
    txn.commit().expect("commit");
}

/// Drops the posting tables, which no store before version 5 had.
fn drop_postings(txn: &redb::WriteTransaction) {
    txn.delete_table(tables::POSTING_SPANS).expect("drop");
    txn.delete_table(tables::POSTINGS).expect("drop");
    drop_hour_pieces(txn);
}

/// Drops the hour pieces, which no store before version 6 had.
fn drop_hour_pieces(txn: &redb::WriteTransaction) {
    txn.delete_table(tables::SPAN_HOURS).expect("drop");
    unpack_times(txn);
}

/// Puts every event back in the time index without heads and drops the time pieces,
/// which no store before version 8 had.
fn unpack_times(txn: &redb::WriteTransaction) {
    use redb::ReadableTable;
    let log = txn.open_table(tables::LOG).expect("log");
    let mut times = txn.open_table(tables::LEGACY_TIMES).expect("times");
    for entry in log.iter().expect("iter") {
        let (key, bytes) = entry.expect("entry");
        let (tenant, seq) = key.value();
        let ts = records::RecordHead::decode(bytes.value()).expect("head").ts;
        times
            .insert(tables::time_key(tenant, ts, seq), ())
            .expect("insert");
    }
    txn.delete_table(tables::TIMES).expect("drop");
    txn.delete_table(tables::SPAN_TIMES).expect("drop");
}

/// Moves the time index of the newest events into the table without heads that stores
/// before version 10 had.
fn legacy_times(txn: &redb::WriteTransaction) {
    use redb::ReadableTable;
    let times = txn.open_table(tables::TIMES).expect("times");
    let mut legacy = txn.open_table(tables::LEGACY_TIMES).expect("times");
    for entry in times.iter().expect("iter") {
        legacy
            .insert(entry.expect("entry").0.value(), ())
            .expect("insert");
    }
    drop(times);
    txn.delete_table(tables::TIMES).expect("drop");
}

/// Version 8: time pieces without heads, the newest events' time index too.
fn headless_times(txn: &redb::WriteTransaction) {
    super::time_pieces::headless_pieces(txn);
    legacy_times(txn);
}

/// Makes the log and column tables what version 6 wrote: routes in records as text, tail
/// rows without a route, no route numbers.
fn drop_route_column(txn: &redb::WriteTransaction) {
    use redb::ReadableTable;
    unpack_times(txn);
    {
        let values = txn.open_table(tables::VALUE_NAMES).expect("values");
        let mut log = txn.open_table(tables::LOG).expect("log");
        let mut rewritten = Vec::new();
        for entry in log.iter().expect("iter") {
            let (key, bytes) = entry.expect("entry");
            let (tenant, seq) = key.value();
            let mut record = records::EventRecord::decode(bytes.value()).expect("decodes");
            if let Some(records::RouteRef::Number(id)) = record.route {
                let text =
                    read::text_named(&values, tenant, columns::KIND_ROUTE, id).expect("named");
                record.route = Some(records::RouteRef::Text(records::Text::Inline(text)));
                rewritten.push(((tenant, seq), record.encode().expect("encodes")));
            }
        }
        assert!(!rewritten.is_empty(), "records with a route to rewrite");
        for (key, bytes) in rewritten {
            log.insert(key, bytes.as_slice()).expect("insert");
        }
    }
    /// (hour, outcome, user, IP, token).
    type V6Row = (u32, u8, u32, u32, u64);
    const V6_TAIL: redb::TableDefinition<(u32, u64), V6Row> =
        redb::TableDefinition::new("column_tail");
    let rows: Vec<_> = {
        let tail = txn.open_table(tables::COLUMN_TAIL).expect("tail");
        let rows = tail.iter().expect("iter").map(|row| {
            let (key, value) = row.expect("row");
            let (hour, outcome, user, ip, token, _) = value.value();
            (key.value(), (hour, outcome, user, ip, token))
        });
        rows.collect()
    };
    assert!(!rows.is_empty(), "a tail to rewrite");
    txn.delete_table(tables::COLUMN_TAIL).expect("drop");
    let mut tail = txn.open_table(V6_TAIL).expect("v6 tail");
    for (key, value) in rows {
        tail.insert(key, value).expect("insert");
    }
    let mut ids = txn.open_table(tables::VALUE_IDS).expect("ids");
    ids.retain(|key, _| key.1 != columns::KIND_ROUTE)
        .expect("retain");
    let mut names = txn.open_table(tables::VALUE_NAMES).expect("names");
    names
        .retain(|key, _| key.1 != columns::KIND_ROUTE)
        .expect("retain");
}

/// Rewrites a current store as schema version 3 wrote it (records of format 1 with the
/// user id as text, the tuple-keyed time index); as version 2 did when `v2` is set (no
/// value numbers and no columns either).
fn downgrade_to_v3(path: &std::path::Path, v2: bool) {
    use super::migrate::v3;
    use super::records::EventRecord;
    use redb::ReadableTable;
    let db = redb::Database::open(path).expect("opens");
    let txn = db.begin_write().expect("write");
    {
        let log = txn.open_table(tables::LOG).expect("log");
        let mut old_log = txn.open_table(v3::LOG).expect("v3 log");
        let mut old_times = txn.open_table(v3::EVENT_TIMES).expect("v3 index");
        let values = txn.open_table(tables::VALUE_NAMES).expect("values");
        for entry in log.iter().expect("iter") {
            let (key, bytes) = entry.expect("entry");
            let (tenant, seq) = key.value();
            let record = EventRecord::decode(bytes.value()).expect("decodes");
            let user_id = record.user.map(|id| {
                read::text_named(&values, tenant, columns::KIND_USER, id).expect("named")
            });
            let route = record.route.clone().map(|route| match route {
                records::RouteRef::Number(id) => records::Text::Inline(
                    read::text_named(&values, tenant, columns::KIND_ROUTE, id).expect("named"),
                ),
                records::RouteRef::Text(text) => text,
            });
            old_times
                .insert((tenant, record.ts, seq), ())
                .expect("insert");
            let old = v3::Record::from_current(record, user_id, route);
            let old = codec::encode(&old).expect("encodes");
            old_log
                .insert((tenant, seq), old.as_slice())
                .expect("insert");
        }
    }
    drop_postings(&txn);
    txn.delete_table(tables::LOG).expect("drop");
    txn.delete_table(tables::TIMES).expect("drop");
    if v2 {
        txn.delete_table(tables::COLUMN_TAIL).expect("drop");
        txn.delete_table(tables::COLUMN_BLOCKS).expect("drop");
        txn.delete_table(tables::VALUE_IDS).expect("drop");
        txn.delete_table(tables::VALUE_NAMES).expect("drop");
    }
    let mut meta = txn.open_table(tables::META).expect("meta");
    if v2 {
        meta.remove(tables::META_COLUMNS_BUILT).expect("unbuilt");
    }
    meta.insert(tables::META_SCHEMA_VERSION, if v2 { 2 } else { 3 })
        .expect("version");
    drop(meta);
    txn.commit().expect("commit");
}

fn every_event(store: &Store, tenants: &[u32]) -> Vec<StoredEvent> {
    let snap = store.snapshot().expect("snap");
    let mut all = Vec::new();
    for &tenant in tenants {
        snap.for_each_event(tenant, 0, u64::MAX, |e| {
            all.push(e);
            Ok(())
        })
        .expect("reads");
    }
    all
}

/// A store of 40 events over two tenants, each with every field set, and its events.
async fn store_to_upgrade() -> (tempfile::TempDir, Vec<StoredEvent>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = Vec::new();
    for i in 0..40u64 {
        let mut e = ev(
            ["token.issued", "token.refreshed", "join.access"][i as usize % 3],
            NOW - i * 997_000,
        );
        e.token = Some(format!("tok-{}", i % 7));
        e.client_id = Some(format!("client-{}", i % 3));
        e.user_id = Some(format!("user-{}", i % 5));
        e.route = Some(format!("/join/{}", i % 4));
        e.scopes = vec!["openid".into(), format!("s{}", i % 2)];
        e.user_agent = Some(format!("agent {}", i % 3));
        e.error = (i % 4 == 0).then(|| "invalid_grant".to_owned());
        e.expires_at = Some(NOW + 3_600_000);
        e.ip = Some(std::net::IpAddr::from([10, 0, 0, (i % 9) as u8]));
        e.duration_ms = Some(i as u32);
        e.context = Some(format!("{{\"n\":{i}}}"));
        events.push(e);
    }
    let before;
    {
        let store = Store::open(dir.path(), WriterConfig::default()).expect("opens");
        store
            .ingest(1, NOW, events[..25].to_vec())
            .await
            .expect("ok");
        store
            .ingest(2, NOW + 5, events[25..].to_vec())
            .await
            .expect("ok");
        before = every_event(&store, &[1, 2]);
        store.close();
    }
    (dir, before)
}

#[tokio::test]
async fn a_version_1_store_is_upgraded_at_open_even_after_an_interrupted_upgrade() {
    let (dir, before) = store_to_upgrade().await;
    assert_eq!(before.len(), 40);
    let path = dir.path().join(DB_FILE);
    downgrade_to_v1(&path);
    {
        // An upgrade cut short after a first chunk of tokens and one of events (whose
        // tokens not numbered yet get numbered on the way).
        let db = redb::Database::open(&path).expect("opens");
        let txn = db.begin_write().expect("write");
        assert_eq!(migrate::v1::number_tokens(&txn, 3).expect("numbers"), 3);
        txn.commit().expect("commit");
        let txn = db.begin_write().expect("write");
        assert_eq!(migrate::v1::move_chunk(&txn, 7).expect("moves"), 7);
        txn.commit().expect("commit");
    }
    let db = assert_upgraded(dir.path(), &before).await;
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    assert!(
        txn.open_table(migrate::v1::EVENTS).is_err(),
        "the old log is gone"
    );
}

/// Opens the store in `dir`, which must upgrade to the events `before`, verify clean,
/// go on numbering events after them, and say it is of the current version. Returns it
/// closed and opened raw, for checks of its tables.
async fn assert_upgraded(dir: &std::path::Path, before: &[StoredEvent]) -> redb::Database {
    let store = Store::open(dir, WriterConfig::default()).expect("upgrades");
    let mut after = every_event(&store, &[1, 2]);
    after.sort_by_key(|e| (e.tenant, e.event.ts, e.seq));
    let mut want = before.to_vec();
    want.sort_by_key(|e| (e.tenant, e.event.ts, e.seq));
    assert_eq!(after, want);
    let snap = store.snapshot().expect("snap");
    let report = snap.verify().expect("verifies");
    assert_eq!(report.events, 40);
    assert!(report.is_consistent(), "{report:?}");
    // Listings by time and by user read the new time index and columns.
    let page = snap
        .events_page(
            1,
            &EventFilter {
                from: 0,
                to: u64::MAX,
                user_id: Some("user-3".into()),
                ..EventFilter::default()
            },
            None,
            100,
        )
        .expect("lists");
    let mut want: Vec<u64> = before
        .iter()
        .filter(|e| e.tenant == 1 && e.event.user_id.as_deref() == Some("user-3"))
        .map(|e| e.seq)
        .collect();
    want.sort_by_key(|seq| std::cmp::Reverse(*seq));
    let mut got: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    got.sort_by_key(|seq| std::cmp::Reverse(*seq));
    assert!(!want.is_empty());
    assert_eq!(got, want);
    drop(snap);
    // New events continue the seqs.
    let ids = store
        .ingest(1, NOW, vec![ev("join.access", NOW)])
        .await
        .expect("ok");
    assert_eq!(ids, vec![Some(41)]);
    store.close();
    drop(store);
    let db = redb::Database::open(dir.join(DB_FILE)).expect("opens");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    let version = txn
        .open_table(tables::META)
        .expect("meta")
        .get(tables::META_SCHEMA_VERSION)
        .expect("reads")
        .map(|v| v.value());
    assert_eq!(version, Some(migrate::SCHEMA_VERSION));
    drop(txn);
    db
}

#[tokio::test]
async fn version_2_and_3_stores_get_their_records_rewritten_at_open_even_after_a_cut() {
    for v2 in [false, true] {
        let (dir, before) = store_to_upgrade().await;
        let path = dir.path().join(DB_FILE);
        downgrade_to_v3(&path, v2);
        {
            // An upgrade cut short after a first chunk.
            let db = redb::Database::open(&path).expect("opens");
            let txn = db.begin_write().expect("write");
            let (moved, done) = migrate::v3::move_chunk(&txn, 7).expect("moves");
            assert_eq!((moved, done), (7, false));
            txn.commit().expect("commit");
        }
        let db = assert_upgraded(dir.path(), &before).await;
        let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
        assert!(
            txn.open_table(migrate::v3::EVENT_TIMES).is_err()
                && txn.open_table(migrate::v3::LOG).is_err(),
            "the old log and time index are gone"
        );
        let log = txn.open_table(tables::LOG).expect("log");
        for entry in redb::ReadableTable::iter(&log).expect("iter") {
            let bytes = entry.expect("entry").1;
            assert_eq!(bytes.value()[0], codec::EVENT_FORMAT);
        }
    }
}

#[tokio::test]
async fn range_scans_agree_whichever_way_they_read() {
    use crate::model::time::DAY_MS;
    let (_dir, store) = open();
    // Ten days, arriving out of time order, plus another tenant's events in between.
    let mut events: Vec<Event> = (0..200u64)
        .map(|i| {
            let mut e = ev("token.issued", NOW - (i * 7919 % 200) * DAY_MS / 20);
            e.client_id = Some(format!("c{}", i % 3));
            e
        })
        .collect();
    events.reverse();
    store.ingest(1, NOW, events.clone()).await.expect("ok");
    store
        .ingest(2, NOW, events[..50].to_vec())
        .await
        .expect("ok");
    let snap = store.snapshot().expect("snap");
    // One day of ten goes through the time index; all ten read the log in seq order.
    for (from, to) in [
        (NOW - 3 * DAY_MS, NOW - 2 * DAY_MS),
        (0, u64::MAX),
        (NOW - 9 * DAY_MS + 5, NOW),
    ] {
        let mut want: Vec<u64> = events
            .iter()
            .map(|e| e.ts)
            .filter(|ts| (from..to).contains(ts))
            .collect();
        want.sort_unstable();
        let mut got = Vec::new();
        snap.for_each_event(1, from, to, |e| {
            got.push(e.event.ts);
            Ok(())
        })
        .expect("scans");
        got.sort_unstable();
        assert_eq!(got, want, "range {from}..{to}");
        let mut of_client = 0;
        snap.for_each_event_of_client(1, from, to, "c1", |e| {
            assert_eq!(e.event.client_id.as_deref(), Some("c1"));
            of_client += 1;
            Ok(())
        })
        .expect("scans");
        let want_client = events
            .iter()
            .filter(|e| (from..to).contains(&e.ts) && e.client_id.as_deref() == Some("c1"))
            .count();
        assert_eq!(of_client, want_client);
    }
}

#[tokio::test]
async fn a_tokens_events_are_found_by_its_number() {
    let (_dir, store) = open();
    let events: Vec<Event> = (0..60u64)
        .map(|i| {
            let mut e = ev("token.refreshed", NOW - i * 60_000);
            e.token = Some(format!("t{}", i % 4));
            e
        })
        .collect();
    store.ingest(1, NOW, events.clone()).await.expect("ok");
    let mut other = ev("token.refreshed", NOW);
    other.token = Some("t1".into());
    store.ingest(2, NOW, vec![other]).await.expect("ok");
    let snap = store.snapshot().expect("snap");
    for (from, to) in [(0, u64::MAX), (NOW - 10 * 60_000, NOW)] {
        let mut found = Vec::new();
        snap.for_each_event_of_token(1, from, to, "t1", |e| {
            found.push((e.event.ts, e.event.token));
            Ok(())
        })
        .expect("scans");
        found.sort_unstable();
        let mut want: Vec<_> = events
            .iter()
            .filter(|e| e.token.as_deref() == Some("t1") && (from..to).contains(&e.ts))
            .map(|e| (e.ts, e.token.clone()))
            .collect();
        want.sort_unstable();
        assert!(!want.is_empty());
        assert_eq!(found, want);
    }
    let mut none = 0;
    snap.for_each_event_of_token(1, 0, u64::MAX, "never", |_| {
        none += 1;
        Ok(())
    })
    .expect("scans");
    assert_eq!(none, 0);
}

/// Events of two tenants, interleaved, with users, IPs and tokens drawn from small pools
/// so that values repeat within and across blocks.
fn columned_events(n: u64) -> Vec<(u32, Event)> {
    (0..n)
        .map(|i| {
            let tenant = 1 + (i % 3 == 1) as u32;
            let mut e = ev(
                if i % 3 == 0 {
                    "token.validation_failed"
                } else {
                    "join.access"
                },
                NOW + (i * 7919 % 100) * crate::model::time::HOUR_MS / 2,
            );
            e.outcome = if i % 3 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            e.user_id = (i % 5 != 0).then(|| format!("user-{}", i * 31 % 97));
            e.ip = (i % 11 != 0).then(|| match i % 4 {
                0 => std::net::IpAddr::from([10, 0, (i % 3) as u8, (i % 13) as u8]),
                _ => std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, (i % 17) as u16]),
            });
            e.token = (i % 2 == 0).then(|| format!("tok-{}", i % 41));
            e.route = (i % 6 != 0).then(|| format!("/join/{}", i * 7 % 53));
            e.client_id = (i % 7 != 0).then(|| format!("client-{}", i % 5));
            (tenant, e)
        })
        .collect()
}

/// (key, count, failures) of `key_of` over `events` of `tenant` in hours `[from, to)`.
fn brute_force_counts(
    events: &[(u32, Event)],
    tenant: u32,
    from: u32,
    to: u32,
    key_of: impl Fn(&Event) -> Option<String>,
) -> Vec<(String, u64, u64)> {
    let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (t, e) in events {
        let hour = crate::model::time::hour_of(e.ts);
        if *t != tenant || !(from..to).contains(&hour) {
            continue;
        }
        if let Some(key) = key_of(e) {
            let c = counts.entry(key).or_default();
            c.0 += 1;
            c.1 += u64::from(e.outcome == Outcome::Failure);
        }
    }
    counts.into_iter().map(|(k, (c, f))| (k, c, f)).collect()
}

fn column_counts_named(
    snap: &Snapshot,
    tenant: u32,
    column: columns::Column,
    from: u32,
    to: u32,
) -> Vec<(String, u64, u64)> {
    let tally = snap
        .column_counts(tenant, column, from, to, None)
        .expect("counts");
    named_counts(snap, tenant, column, tally)
}

/// `tally`'s counts with their values named, sorted.
fn named_counts(
    snap: &Snapshot,
    tenant: u32,
    column: columns::Column,
    tally: tally::Tally,
) -> Vec<(String, u64, u64)> {
    let mut named: Vec<(String, u64, u64)> = tally
        .into_counts()
        .into_iter()
        .map(|(id, count, failures)| {
            let key = match column {
                columns::Column::User => snap.value_named(tenant, columns::KIND_USER, id as u32),
                columns::Column::Ip => snap.value_named(tenant, columns::KIND_IP, id as u32),
                columns::Column::Token => snap.token_named(tenant, id),
                columns::Column::Route => snap.value_named(tenant, columns::KIND_ROUTE, id as u32),
            };
            (key.expect("named"), count, failures)
        })
        .collect();
    named.sort();
    named
}

fn assert_columns_match(store: &Store, events: &[(u32, Event)]) {
    let snap = store.snapshot().expect("snap");
    let first = crate::model::time::hour_of(NOW);
    for tenant in [1, 2] {
        for (from, to) in [
            (0, u32::MAX),
            (first + 3, first + 17),
            (first + 49, first + 50),
            (first + 2, first + 48),
        ] {
            let users = brute_force_counts(events, tenant, from, to, |e| e.user_id.clone());
            let ips = brute_force_counts(events, tenant, from, to, |e| e.ip.map(|i| i.to_string()));
            let tokens = brute_force_counts(events, tenant, from, to, |e| e.token.clone());
            let routes = brute_force_counts(events, tenant, from, to, |e| e.route.clone());
            use columns::Column::*;
            assert_eq!(column_counts_named(&snap, tenant, User, from, to), users);
            assert_eq!(column_counts_named(&snap, tenant, Ip, from, to), ips);
            assert_eq!(column_counts_named(&snap, tenant, Token, from, to), tokens);
            assert_eq!(column_counts_named(&snap, tenant, Route, from, to), routes);
        }
    }
}

/// Ingests `events` in requests of up to `chunk` events, each tenant's part of a chunk
/// in its own request.
async fn ingest_by_tenant(store: &Store, events: &[(u32, Event)], chunk: usize) {
    for chunk in events.chunks(chunk) {
        for tenant in [1, 2] {
            let mine: Vec<Event> = chunk
                .iter()
                .filter(|(t, _)| *t == tenant)
                .map(|(_, e)| e.clone())
                .collect();
            store.ingest(tenant, NOW, mine).await.expect("ingests");
        }
    }
}

#[tokio::test]
async fn column_blocks_count_users_ips_and_tokens_like_the_log() {
    let (dir, store) = open();
    let events = columned_events(3 * columns::BLOCK as u64 + 123);
    ingest_by_tenant(&store, &events, 101).await;
    let snap = store.snapshot().expect("snap");
    let report = snap.verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    let blocks = snap
        .txn()
        .open_table(tables::COLUMN_BLOCKS)
        .expect("blocks");
    assert_eq!(redb::ReadableTableMetadata::len(&blocks).expect("len"), 3);
    drop((blocks, snap));
    assert_columns_match(&store, &events);

    // A lost block is found by verify and restored by rebuild.
    store
        .write(|txn| {
            let mut blocks = txn.open_table(tables::COLUMN_BLOCKS)?;
            let first = redb::ReadableTable::first(&blocks)?.map(|(key, _)| key.value());
            if let Some(key) = first {
                blocks.remove(key)?;
            }
            Ok(())
        })
        .await
        .expect("writes");
    let before = store.rebuild().await.expect("rebuilds");
    assert_eq!(before.column_mismatches, columns::BLOCK as u64);
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    assert_columns_match(&store, &events);

    // A store written before the columns existed gets them built at open.
    store.close();
    drop(store);
    downgrade_to_v3(&dir.path().join(DB_FILE), true);
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    assert_columns_match(&store, &events);
}

#[tokio::test]
async fn pages_of_one_users_or_tokens_events_walk_them_all_newest_first() {
    let (_dir, store) = open();
    let events = columned_events(3072);
    let mine: Vec<Event> = events
        .iter()
        .filter(|(t, _)| *t == 1)
        .map(|(_, e)| e.clone())
        .collect();
    store.ingest(1, NOW, mine.clone()).await.expect("ingests");
    let snap = store.snapshot().expect("snap");
    let window = EventFilter {
        from: NOW + crate::model::time::HOUR_MS,
        to: NOW + 45 * crate::model::time::HOUR_MS,
        ..EventFilter::default()
    };
    let selections = [
        EventFilter {
            user_id: Some("user-62".into()),
            ..window.clone()
        },
        EventFilter {
            token: Some("tok-8".into()),
            outcome: Some(Outcome::Failure),
            ..window.clone()
        },
        EventFilter {
            ip: Some("10.0.2.4/32".parse().expect("net")),
            ..window.clone()
        },
    ];
    for filter in selections {
        assert_pages_walk_all(&snap, &filter, 7);
    }
}

/// Paging through tenant 1's events that match `filter`, `limit` at a time, lists exactly
/// what a scan finds, newest first.
fn assert_pages_walk_all(snap: &Snapshot, filter: &EventFilter, limit: usize) {
    let mut expected: Vec<(u64, u64)> = Vec::new();
    snap.for_each_event(1, filter.from, filter.to, |e| {
        if filter.matches(&e.event) {
            expected.push((e.event.ts, e.seq));
        }
        Ok(())
    })
    .expect("scans");
    expected.sort_by(|a, b| b.cmp(a));
    assert!(expected.len() > limit, "{filter:?} selects too little");
    let (mut listed, mut cursor) = (Vec::new(), None);
    loop {
        let page = snap.events_page(1, filter, cursor, limit).expect("page");
        listed.extend(page.events.iter().map(|e| (e.event.ts, e.seq)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, expected, "{filter:?}");
}

#[tokio::test]
async fn a_lost_time_index_entry_is_found_by_verify_and_restored_by_rebuild() {
    let (_dir, store) = open();
    let events: Vec<Event> = (0..30u64)
        .map(|i| ev("join.access", NOW - i * 60_000))
        .collect();
    store.ingest(1, NOW, events).await.expect("ingests");
    let listed = |store: &Store| {
        let filter = EventFilter {
            from: 0,
            to: u64::MAX,
            ..EventFilter::default()
        };
        let snap = store.snapshot().expect("snap");
        let page = snap.events_page(1, &filter, None, 100).expect("lists");
        page.events.len()
    };
    assert_eq!(listed(&store), 30);
    store
        .write(|txn| {
            txn.open_table(tables::TIMES)?
                .remove(tables::time_key(1, NOW - 5 * 60_000, 6))?;
            Ok(())
        })
        .await
        .expect("writes");
    assert_eq!(listed(&store), 29);
    let before = store.rebuild().await.expect("rebuilds");
    assert!(before.index_mismatches > 0, "{before:?}");
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(listed(&store), 30);
}

#[tokio::test]
async fn a_large_tenant_is_ranked_on_two_threads_to_the_same_counts() {
    let (_dir, store) = open();
    // Enough blocks for the two-thread count, and a second tenant's events in between.
    let events = columned_events(70 * columns::BLOCK as u64 * 2);
    ingest_by_tenant(&store, &events, 2_000).await;
    assert_columns_match(&store, &events);
    // Finding one value's events splits the blocks the same way.
    let snap = store.snapshot().expect("snap");
    let all = EventFilter {
        from: 0,
        to: u64::MAX,
        ..EventFilter::default()
    };
    for filter in [
        EventFilter {
            user_id: Some("user-62".into()),
            ..all.clone()
        },
        EventFilter {
            token: Some("tok-8".into()),
            ..all.clone()
        },
    ] {
        assert_pages_walk_all(&snap, &filter, 50);
    }
}

/// Waits until the running totals serve readers (they are counted on a thread of their own).
fn wait_for_totals(store: &Store) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !store.totals().is_ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the totals were never counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Checks that the running totals answer ranges that hold most of each tenant's events
/// (and only those) with the log's counts, failures only too.
fn assert_totals_match(snap: &Snapshot, events: &[(u32, Event)]) {
    use columns::Column::*;
    let first = crate::model::time::hour_of(NOW);
    let failures: Vec<(u32, Event)> = events
        .iter()
        .filter(|(_, e)| e.outcome == Outcome::Failure)
        .cloned()
        .collect();
    for tenant in [1, 2] {
        // All events, then most of them (the rest is counted from the blocks and taken out).
        for (from, to) in [(0, u32::MAX), (first, first + 50), (first + 4, first + 47)] {
            for column in columns::Column::ALL {
                let key_of = |e: &Event| match column {
                    User => e.user_id.clone(),
                    Ip => e.ip.map(|i| i.to_string()),
                    Token => e.token.clone(),
                    Route => e.route.clone(),
                };
                for (failures_only, events) in [(false, events), (true, &failures[..])] {
                    let tally = snap
                        .counts_from_totals(tenant, column, from, to, failures_only)
                        .expect("reads")
                        .expect("the totals serve a range of most events");
                    let mut want = brute_force_counts(events, tenant, from, to, key_of);
                    if failures_only {
                        for (_, count, failures) in &mut want {
                            *failures = *count;
                        }
                    }
                    let got = named_counts(snap, tenant, column, tally);
                    assert_eq!(
                        got, want,
                        "{column:?} {from}..{to} failures {failures_only}"
                    );
                }
            }
        }
        // A range of few events is left to the blocks.
        let narrow = snap
            .counts_from_totals(tenant, User, first + 3, first + 5, false)
            .expect("reads");
        assert!(narrow.is_none());
    }
}

#[tokio::test]
async fn running_totals_count_like_the_log_through_rebuilds_and_restarts() {
    let (dir, store) = open();
    let events = columned_events(6 * columns::BLOCK as u64 + 77);
    ingest_by_tenant(&store, &events, 101).await;
    wait_for_totals(&store);
    assert_totals_match(&store.snapshot().expect("snap"), &events);

    // A snapshot taken before later events is answered as of itself: the totals take the
    // newer entries back out.
    let before = store.snapshot().expect("snap");
    let more = columned_events(300);
    ingest_by_tenant(&store, &more, 64).await;
    assert_totals_match(&before, &events);
    let all: Vec<(u32, Event)> = events.iter().chain(&more).cloned().collect();
    assert_totals_match(&store.snapshot().expect("snap"), &all);
    assert_columns_match(&store, &all);
    drop(before);

    // A rebuild rewrites the blocks: the totals are counted again.
    store.rebuild().await.expect("rebuilds");
    wait_for_totals(&store);
    assert_totals_match(&store.snapshot().expect("snap"), &all);

    // At start-up they are counted from the blocks.
    store.close();
    drop(store);
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    wait_for_totals(&store);
    assert_totals_match(&store.snapshot().expect("snap"), &all);
    assert_columns_match(&store, &all);
}

#[tokio::test]
async fn routes_are_numbered_by_text_whether_the_log_names_them_or_holds_them_inline() {
    use crate::model::time::HOUR_MS;
    let (_dir, store) = open();
    let mut events = columned_events(70 * columns::BLOCK as u64 * 2);
    for (i, (_, e)) in events.iter_mut().enumerate() {
        e.route = (i % 7 != 0).then(|| format!("/r/{}", i % 23));
    }
    ingest_by_tenant(&store, &events, 2_000).await;
    // Records whose route is stored inline, as once the names table is full: one of them
    // repeats a named route. They are written to the log alone, so the column tables
    // miss them until a rebuild.
    let inline = vec![
        (1, ev("join.access", NOW), "/r/5"),
        (1, ev("join.access", NOW + 3 * HOUR_MS), "/only/inline"),
    ];
    let names = store.snapshot().expect("snap").names().clone();
    let injected = inline.clone();
    store
        .write(move |txn| {
            let mut log = txn.open_table(tables::LOG)?;
            let mut times = txn.open_table(tables::TIMES)?;
            for (i, (tenant, e, route)) in injected.iter().enumerate() {
                let mut record = records::EventRecord::with_names(e, e.ts, true, |text, free| {
                    (!free).then(|| names.id(text)).flatten()
                })
                .expect("the type is named");
                record.route = Some(records::RouteRef::Text(records::Text::Inline(
                    (*route).to_owned(),
                )));
                let seq = 1_000_000 + i as u64;
                log.insert((*tenant, seq), record.encode()?.as_slice())?;
                let head = tables::time_head(record.type_id, record.outcome, record.client);
                times.insert(tables::time_key(*tenant, e.ts, seq), head)?;
            }
            Ok(())
        })
        .await
        .expect("writes");
    assert!(!consistent(&store));
    let before = store.rebuild().await.expect("rebuilds");
    assert!(before.column_mismatches >= 2, "{before:?}");
    let mut all = events.clone();
    all.extend(inline.into_iter().map(|(tenant, mut e, route)| {
        e.route = Some(route.to_owned());
        (tenant, e)
    }));
    let snap = store.snapshot().expect("snap");
    assert!(snap.verify().expect("verifies").is_consistent());
    let first = crate::model::time::hour_of(NOW);
    for (from, to) in [(0, u32::MAX), (first + 2, first + 5), (first, first + 1)] {
        let want = brute_force_counts(&all, 1, from, to, |e| e.route.clone());
        let got = column_counts_named(&snap, 1, columns::Column::Route, from, to);
        assert_eq!(got, want, "{from}..{to}");
    }
}

/// Whether `verify` finds the store consistent.
fn consistent(store: &Store) -> bool {
    let snap = store.snapshot().expect("snap");
    snap.verify().expect("verifies").is_consistent()
}

/// The posted spans of `tenant` (first seq of each).
fn posted_spans(store: &Store, tenant: u32) -> Vec<u64> {
    posted_spans_of(&store.snapshot().expect("snap"), tenant)
}

/// The first seqs of `tenant`'s posted spans, as `snap` sees them.
fn posted_spans_of(snap: &Snapshot, tenant: u32) -> Vec<u64> {
    let spans = snap.txn().open_table(tables::POSTING_SPANS).expect("spans");
    redb::ReadableTable::range(&spans, (tenant, 0)..=(tenant, u64::MAX))
        .expect("range")
        .map(|row| row.expect("row").0.value().1)
        .collect()
}

#[tokio::test]
async fn postings_follow_the_blocks_through_groups_rebuilds_and_upgrades() {
    let (dir, store) = open();
    let span = (postings::SPAN_BLOCKS * columns::BLOCK) as u64;
    // Tenant 1 gets two thirds of the events: 5 spans and a part, tenant 2 2 and a part.
    let events = columned_events(8 * span + 77);
    ingest_by_tenant(&store, &events, 61).await;
    let pages = |store: &Store| {
        let snap = store.snapshot().expect("snap");
        let all = EventFilter {
            from: NOW,
            to: NOW + 100 * crate::model::time::HOUR_MS,
            ..EventFilter::default()
        };
        for filter in [
            EventFilter {
                user_id: Some("user-62".into()),
                ..all.clone()
            },
            EventFilter {
                token: Some("tok-8".into()),
                ..all.clone()
            },
            EventFilter {
                ip: Some("2001:db8::5/128".parse().expect("net")),
                from: NOW + 3 * crate::model::time::HOUR_MS,
                to: NOW + 30 * crate::model::time::HOUR_MS,
                ..EventFilter::default()
            },
        ] {
            assert_pages_walk_all(&snap, &filter, 13);
        }
    };
    // The writer posted each span in the group that sealed its last block.
    assert_eq!(posted_spans(&store, 1).len(), 5);
    assert_eq!(posted_spans(&store, 2).len(), 2);
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    pages(&store);

    assert_columns_match(&store, &events);

    // A lost chunk and a lost hour piece are found by verify and restored by rebuild; so
    // is a lost time piece.
    store
        .write(|txn| {
            let mut times = txn.open_table(tables::SPAN_TIMES)?;
            let first = redb::ReadableTable::first(&times)?.map(|(key, _)| key.value());
            if let Some(key) = first {
                times.remove(key)?;
            }
            let mut chunks = txn.open_table(tables::POSTINGS)?;
            let last = redb::ReadableTable::last(&chunks)?.map(|(key, _)| key.value());
            if let Some(key) = last {
                chunks.remove(key)?;
            }
            let mut pieces = txn.open_table(tables::SPAN_HOURS)?;
            let first = redb::ReadableTable::first(&pieces)?.map(|(key, _)| key.value());
            if let Some(key) = first {
                pieces.remove(key)?;
            }
            Ok(())
        })
        .await
        .expect("writes");
    let before = store.rebuild().await.expect("rebuilds");
    assert_eq!(before.column_mismatches, 2);
    assert!(before.index_mismatches > 0, "{before:?}");
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(posted_spans(&store, 1).len(), 5);
    pages(&store);
    assert_time_index_lists(&store, &events);

    // A version 4 store gets its postings at open, a version 5 store its hour pieces,
    // and a version 6 store its route column: all three get their column tables again.
    // A version 7 store gets its posted spans' time index packed, a version 8 store its
    // time pieces packed again with their heads, a version 9 store heads in the newest
    // events' time index.
    let mut store = store;
    for (version, drop_tables) in [
        (4, drop_postings as fn(&redb::WriteTransaction)),
        (5, drop_hour_pieces),
        (6, drop_route_column),
        (7, unpack_times),
        (8, headless_times),
        (9, legacy_times),
    ] {
        store.close();
        drop(store);
        {
            let db = redb::Database::open(dir.path().join(DB_FILE)).expect("opens");
            let txn = db.begin_write().expect("write");
            drop_tables(&txn);
            txn.open_table(tables::META)
                .expect("meta")
                .insert(tables::META_SCHEMA_VERSION, version)
                .expect("version");
            txn.commit().expect("commit");
        }
        store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
        assert_eq!(posted_spans(&store, 1).len(), 5);
        let report = store.snapshot().expect("snap").verify().expect("verifies");
        assert!(report.is_consistent(), "{report:?}");
        pages(&store);
        assert_columns_match(&store, &events);
        assert_time_index_lists(&store, &events);
    }
}

/// Listings and range scans of tenant 1 through the time index (no user, token or
/// address filter) give exactly its events of the range, newest first, page by page.
fn assert_time_index_lists(store: &Store, events: &[(u32, Event)]) {
    use crate::model::time::HOUR_MS;
    let snap = store.snapshot().expect("snap");
    // Packed spans, and the newest events still in `times`.
    let packed = redb::ReadableTableMetadata::len(
        &snap.txn().open_table(tables::SPAN_TIMES).expect("pieces"),
    )
    .expect("len");
    assert!(packed > 0, "no span is packed");
    let success = Some(Outcome::Success);
    for (from, to, event_type, outcome, client) in [
        (0, u64::MAX, None, None, None),
        (
            NOW,
            NOW + 100 * HOUR_MS,
            Some("token.validation_failed"),
            None,
            None,
        ),
        (NOW + 3 * HOUR_MS + 1, NOW + 30 * HOUR_MS, None, None, None),
        (
            NOW + 3 * HOUR_MS + 1,
            NOW + 30 * HOUR_MS,
            Some("join.access"),
            None,
            None,
        ),
        (0, u64::MAX, None, None, Some("client-3")),
        (NOW, NOW + 40 * HOUR_MS, None, success, Some("client-1")),
        (0, u64::MAX, Some("join.access"), success, Some("client-4")),
        (0, u64::MAX, None, Some(Outcome::Failure), None),
        (
            0,
            u64::MAX,
            Some("join.access"),
            Some(Outcome::Failure),
            None,
        ),
    ] {
        let filter = EventFilter {
            from,
            to,
            event_type: event_type.map(str::to_owned),
            outcome,
            client_id: client.map(str::to_owned),
            ..EventFilter::default()
        };
        let mut want: Vec<u64> = events
            .iter()
            .filter(|(tenant, e)| *tenant == 1 && (from..to).contains(&e.ts) && filter.matches(e))
            .map(|(_, e)| e.ts)
            .collect();
        want.sort_unstable_by(|a, b| b.cmp(a));
        let (mut listed, mut cursor) = (Vec::new(), None);
        loop {
            let page = snap.events_page(1, &filter, cursor, 37).expect("page");
            listed.extend(page.events.iter().map(|e| (e.event.ts, e.seq)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(
            listed.windows(2).all(|w| w[0] > w[1]),
            "newest first, none twice: {filter:?}"
        );
        let times: Vec<u64> = listed.iter().map(|&(ts, _)| ts).collect();
        assert_eq!(times, want, "{filter:?}");
        let mut scanned = 0;
        snap.for_each_event(1, from, to, |e| {
            assert!((from..to).contains(&e.event.ts));
            scanned += usize::from(filter.matches(&e.event));
            Ok(())
        })
        .expect("scans");
        assert_eq!(scanned, want.len(), "{filter:?}");
    }
}

#[tokio::test]
async fn compaction_copies_every_event_and_aggregate_and_refuses_unknown_tables() {
    let (dir, store) = open();
    let events = columned_events(5 * (postings::SPAN_BLOCKS * columns::BLOCK) as u64 + 33);
    ingest_by_tenant(&store, &events, 97).await;
    let before = every_event(&store, &[1, 2]);
    store.close();
    drop(store);

    use std::os::unix::fs::PermissionsExt;
    let file = dir.path().join(DB_FILE);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_, after) = compact(dir.path()).expect("compacts");
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the copy keeps the store's permissions"
    );
    assert_eq!(
        after,
        std::fs::metadata(dir.path().join(DB_FILE))
            .expect("file")
            .len()
    );
    assert!(!dir.path().join("gatewatch.redb.compacting").exists());
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    assert_eq!(every_event(&store, &[1, 2]), before);
    let report = store.snapshot().expect("snap").verify().expect("verifies");
    assert!(report.is_consistent(), "{report:?}");
    assert!(!posted_spans(&store, 1).is_empty());
    assert_columns_match(&store, &events);
    // The compacted store takes writes as before.
    store
        .ingest(1, NOW, vec![ev("token.refreshed", NOW)])
        .await
        .expect("ingests");
    store.close();
    drop(store);

    // A table the copy would not know makes it refuse, and leaves the store as it was.
    {
        let db = redb::Database::open(dir.path().join(DB_FILE)).expect("opens");
        let txn = db.begin_write().expect("write");
        let future: redb::TableDefinition<u64, u64> =
            redb::TableDefinition::new("from_a_newer_build");
        txn.open_table(future)
            .expect("table")
            .insert(1, 2)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let size = std::fs::metadata(dir.path().join(DB_FILE))
        .expect("file")
        .len();
    assert!(compact(dir.path()).is_err());
    assert_eq!(
        std::fs::metadata(dir.path().join(DB_FILE))
            .expect("file")
            .len(),
        size
    );
    assert!(!dir.path().join("gatewatch.redb.compacting").exists());
    let store = Store::open(dir.path(), WriterConfig::default()).expect("reopens");
    assert_eq!(every_event(&store, &[1, 2]).len(), before.len() + 1);
}

/// Counts of `column` by `count_column` (the pieces, blocks and tail; whole days from the
/// day tallies), named, for each column, tenant and range: as the log gives them.
fn assert_counted_like_the_log(snap: &Snapshot, events: &[(u32, Event)], ranges: &[(u32, u32)]) {
    use columns::Column::*;
    for tenant in [1, 2] {
        for &(from, to) in ranges {
            for column in columns::Column::ALL {
                let key_of = |e: &Event| match column {
                    User => e.user_id.clone(),
                    Ip => e.ip.map(|i| i.to_string()),
                    Token => e.token.clone(),
                    Route => e.route.clone(),
                };
                let hours = columns::Hours::inside(from, to);
                let tally = snap
                    .count_column(tenant, column, hours, None)
                    .expect("counts");
                let want = brute_force_counts(events, tenant, from, to, key_of);
                let got = named_counts(snap, tenant, column, tally);
                assert_eq!(got, want, "{column:?} {from}..{to} of tenant {tenant}");
            }
        }
    }
}

#[tokio::test]
async fn whole_days_are_counted_from_day_tallies_like_the_log() {
    let (_dir, store) = open();
    let span = (postings::SPAN_BLOCKS * columns::BLOCK) as u64;
    let events = columned_events(9 * span + 55);
    let (early, late) = events.split_at(4 * span as usize + 10);
    let first = crate::model::time::hour_of(NOW);
    // NOW's day ends 13 hours after its hour: ranges with no whole day, one (exactly, or
    // with partial days around it) and every day.
    let ranges = [
        (first, first + 50),
        (first + 13, first + 37),
        (first + 2, first + 48),
        (first + 13, first + 14),
        (0, u32::MAX),
    ];
    ingest_by_tenant(&store, early, 61).await;
    let before = store.snapshot().expect("snap");
    assert!(!posted_spans(&store, 1).is_empty());
    // Counted, then answered from the day tallies kept.
    assert_counted_like_the_log(&before, early, &ranges);
    let kept = before.days().len();
    assert!(
        kept >= 3 * 4,
        "the whole days of each tenant and column are kept: {kept}"
    );
    assert_counted_like_the_log(&before, early, &ranges);
    assert_eq!(before.days().len(), kept);

    // More spans posted: the kept tallies count only those. A snapshot from before them
    // counts its own spans from the pieces.
    ingest_by_tenant(&store, late, 61).await;
    assert!(posted_spans(&store, 1).len() > posted_spans_of(&before, 1).len());
    assert_counted_like_the_log(&store.snapshot().expect("snap"), &events, &ranges);
    assert_counted_like_the_log(&before, early, &ranges);
    assert_counted_like_the_log(&store.snapshot().expect("snap"), &events, &ranges);
    drop(before);

    // A rebuild starts a new generation: tallies kept before are not used again. Here
    // they were counted with an hour piece lost, which the rebuild restores.
    let (_dir, store) = open();
    ingest_by_tenant(&store, &events, 61).await;
    store
        .write(|txn| {
            let mut pieces = txn.open_table(tables::SPAN_HOURS)?;
            let first = redb::ReadableTable::first(&pieces)?.map(|(key, _)| key.value());
            if let Some(key) = first {
                pieces.remove(key)?;
            }
            Ok(())
        })
        .await
        .expect("writes");
    let snap = store.snapshot().expect("snap");
    for column in columns::Column::ALL {
        snap.count_column(1, column, columns::Hours::inside(0, u32::MAX), None)
            .expect("counts");
    }
    assert!(snap.days().len() > 0);
    drop(snap);
    store.rebuild().await.expect("rebuilds");
    assert_counted_like_the_log(&store.snapshot().expect("snap"), &events, &ranges);
}

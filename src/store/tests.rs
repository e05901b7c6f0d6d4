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
        assert!(!store
            .snapshot()
            .expect("snap")
            .verify()
            .expect("verifies")
            .is_consistent());
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

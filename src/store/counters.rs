//! Counter buckets: folding a group's deltas in memory so each touched bucket is written
//! once per commit, and reading them back.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table};

use super::records::CounterFields;
use super::tables::{CounterKey, Dim, Granularity};
use super::StoreError;
use crate::model::time::{day_of, hour_of};

/// One counter bucket as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRow {
    /// The dimension value's name id (0 for [`Dim::Type`]).
    pub value: u32,
    pub bucket: u32,
    pub type_id: u32,
    pub outcome: u8,
    pub count: u64,
}

impl CounterRow {
    pub fn from_key(key: CounterKey, count: u64) -> CounterRow {
        CounterRow {
            value: key.3,
            bucket: key.4,
            type_id: key.5,
            outcome: key.6,
            count,
        }
    }
}

/// Counter increments accumulated over one group, sorted by key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CounterDeltas(BTreeMap<CounterKey, u64>);

impl CounterDeltas {
    /// Counts one stored event in every bucket it belongs to. `issued_type` is the name id
    /// of `token.issued`, when interned.
    pub fn add(&mut self, tenant: u32, ts: u64, record: CounterFields, issued_type: Option<u32>) {
        for (granularity, bucket) in [
            (Granularity::Hour, hour_of(ts)),
            (Granularity::Day, day_of(ts)),
        ] {
            let mut bump = |dim: Dim, value: u32, type_slot: u32| {
                let key = (
                    tenant,
                    granularity as u8,
                    dim as u8,
                    value,
                    bucket,
                    type_slot,
                    record.outcome,
                );
                *self.0.entry(key).or_default() += 1;
            };
            bump(Dim::Type, 0, record.type_id);
            if let Some(client) = record.client {
                bump(Dim::Client, client, record.type_id);
            }
            if let Some(grant) = record.grant {
                bump(Dim::GrantType, grant, record.type_id);
                if let (Some(client), true) = (record.client, issued_type == Some(record.type_id)) {
                    bump(Dim::ClientGrant, client, grant);
                }
            }
        }
    }

    /// Adds every delta to its stored bucket.
    pub fn write(&self, table: &mut Table<CounterKey, u64>) -> Result<(), StoreError> {
        for (key, delta) in &self.0 {
            let current = table.get(*key)?.map_or(0, |v| v.value());
            table.insert(*key, current + delta)?;
        }
        Ok(())
    }

    pub fn into_map(self) -> BTreeMap<CounterKey, u64> {
        self.0
    }
}

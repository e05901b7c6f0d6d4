//! Token summaries (`/tokens/{token}`) and stale tokens (`/tokens?inactive_days`).

use std::collections::HashSet;

use crate::model::time::DAY_MS;
use crate::model::TokenState;
use crate::store::{Snapshot, StoreError};

/// Everything `/tokens/{token}` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    pub token: String,
    pub state: TokenState,
    /// Events of the token in the 24 hours before `now`.
    pub last_24h: u64,
    pub distinct_ips: u64,
    pub distinct_devices: u64,
}

/// The summary of one token, or `None` if no stored event carries it.
///
/// Counts and landmarks come from the token's state; the last-24-hours volume and the
/// distinct IPs and devices from a scan of the log between its first and last event.
pub fn summary(
    snap: &Snapshot,
    tenant: u32,
    token: &str,
    now: u64,
) -> Result<Option<TokenSummary>, StoreError> {
    let Some(state) = snap.token_state(tenant, token)? else {
        return Ok(None);
    };
    // Every event of the token lies between its first and last.
    let (from, to) = (state.first_seen, state.last_seen.saturating_add(1));
    let since = now.saturating_sub(DAY_MS);
    let mut ips = HashSet::new();
    let mut devices = HashSet::new();
    let mut last_24h = 0;
    snap.for_each_event_of_token(tenant, from, to, token, |stored| {
        let e = stored.event;
        if e.ts >= since && e.ts <= now {
            last_24h += 1;
        }
        ips.extend(e.ip);
        devices.extend(e.device_id);
        Ok(())
    })?;
    Ok(Some(TokenSummary {
        token: token.to_owned(),
        state,
        last_24h,
        distinct_ips: ips.len() as u64,
        distinct_devices: devices.len() as u64,
    }))
}

/// A page of tokens with their states, and the last token of the page when more follow.
pub type TokenPage = (Vec<(String, TokenState)>, Option<String>);

/// A page of tokens of `tenant` not seen since `cutoff`, in token order after `after`.
pub fn inactive(
    snap: &Snapshot,
    tenant: u32,
    cutoff: u64,
    after: Option<&str>,
    limit: usize,
) -> Result<TokenPage, StoreError> {
    let mut page = Vec::new();
    let mut more = false;
    snap.for_each_token_after(tenant, after, |token, state| {
        if state.last_seen >= cutoff {
            return Ok(true);
        }
        if page.len() == limit {
            more = true;
            return Ok(false);
        }
        page.push((token.to_owned(), state));
        Ok(true)
    })?;
    let next = if more {
        page.last().map(|(token, _)| token.clone())
    } else {
        None
    };
    Ok((page, next))
}

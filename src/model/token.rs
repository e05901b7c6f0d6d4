//! Per-token state: what gatewatch knows about one token identifier, folded from its events.

use serde::{Deserialize, Serialize};

use super::{Event, Outcome};

/// Running totals and landmarks of one token within one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    /// The client of the latest event (by time) that named one.
    pub client_id: Option<String>,
    /// When that event happened.
    pub client_seen_at: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    pub events: u64,
    pub successes: u64,
    pub failures: u64,
    pub rate_limited: u64,
    pub uploads: u64,
    pub downloads: u64,
    /// Earliest `token.issued`.
    pub issued_at: Option<u64>,
    /// Earliest `token.revoked` or `token.expired`.
    pub ended_at: Option<u64>,
    /// Planned expiry from the latest `token.issued` (by time) that named one.
    pub expires_at: Option<u64>,
    /// When that `token.issued` happened.
    pub expiry_set_at: u64,
}

impl TokenState {
    /// When the token's life ends — revoked or expired by an event, else its planned
    /// expiry — with when it was issued; `None` until both are known.
    pub fn life(&self) -> Option<(u64, u64)> {
        let issued = self.issued_at?;
        let end = self.ended_at.or(self.expires_at)?;
        Some((end, issued))
    }

    /// Folds one event of this token into the state. Order-independent except between
    /// events with equal timestamps naming different clients or expiries.
    pub fn apply(&mut self, event: &Event) {
        if self.events == 0 {
            self.first_seen = event.ts;
            self.last_seen = event.ts;
        }
        self.first_seen = self.first_seen.min(event.ts);
        self.last_seen = self.last_seen.max(event.ts);
        self.events += 1;
        match event.outcome {
            Outcome::Success => self.successes += 1,
            Outcome::Failure => self.failures += 1,
            Outcome::RateLimited => self.rate_limited += 1,
            Outcome::Blocked | Outcome::Info => {}
        }
        match event.event_type.as_str() {
            "join.upload" => self.uploads += 1,
            "join.download" => self.downloads += 1,
            "token.issued" => {
                self.issued_at = Some(self.issued_at.map_or(event.ts, |t| t.min(event.ts)));
                if event.expires_at.is_some()
                    && (self.expires_at.is_none() || event.ts >= self.expiry_set_at)
                {
                    self.expires_at = event.expires_at;
                    self.expiry_set_at = event.ts;
                }
            }
            "token.revoked" | "token.expired" => {
                self.ended_at = Some(self.ended_at.map_or(event.ts, |t| t.min(event.ts)));
            }
            _ => {}
        }
        if event.client_id.is_some()
            && (self.client_id.is_none() || event.ts >= self.client_seen_at)
        {
            self.client_id.clone_from(&event.client_id);
            self.client_seen_at = event.ts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;

    fn ev(t: &str, ts: u64) -> Event {
        Event::new(EventType::parse(t).expect("valid"), ts)
    }

    #[test]
    fn folds_counts_and_landmarks() {
        let mut s = TokenState::default();
        let mut issued = ev("token.issued", 100);
        issued.client_id = Some("web".into());
        s.apply(&ev("join.upload", 300));
        s.apply(&issued);
        s.apply(&ev("join.invalid_token", 200));
        s.apply(&ev("token.revoked", 400));
        assert_eq!((s.first_seen, s.last_seen, s.events), (100, 400, 4));
        assert_eq!((s.successes, s.failures, s.uploads), (2, 1, 1));
        assert_eq!((s.issued_at, s.ended_at), (Some(100), Some(400)));
        assert_eq!(s.client_id.as_deref(), Some("web"));
    }
}

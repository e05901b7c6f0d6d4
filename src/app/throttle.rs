//! Login throttling: repeated failed logins from one IP address, or for one user name,
//! first slow down (each further attempt must wait longer after the last failure), then
//! block for a while. Pure: the caller passes `now`; nothing here reads a clock.
//!
//! Both keys are checked: an attacker spraying one password over many user names is slowed
//! by the IP key, a distributed guess at one account by the user key.

use std::collections::HashMap;
use std::net::IpAddr;

/// How failures are punished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures are forgotten this long after the last one.
    pub window_ms: u64,
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// After this many failures, every attempt is refused until `block_ms` after the last.
    pub block_after: u32,
    pub block_ms: u64,
    /// Delay after the first punished failure; it doubles with each further one.
    pub base_delay_ms: u64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            window_ms: 15 * 60 * 1000,
            free_failures: 3,
            block_after: 10,
            block_ms: 15 * 60 * 1000,
            base_delay_ms: 1000,
        }
    }
}

/// What one key (an IP or a user name) has done lately.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: u64,
}

/// A throttled key: whom it was, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_ms: u64,
    pub blocked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

/// Entries kept at most; past it, forgotten (expired) entries are swept on the next failure.
const SWEEP_AT: usize = 50_000;

/// Recent login failures per IP and per user name.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    failures: HashMap<Key, Failures>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle {
            policy,
            failures: HashMap::new(),
        }
    }

    /// Whether an attempt for `user` from `ip` may be tried at `now`; the longest wait of
    /// the two keys when not.
    pub fn check(&self, ip: Option<IpAddr>, user: &str, now: u64) -> Option<Throttled> {
        keys(ip, user)
            .filter_map(|key| self.failures.get(&key))
            .filter_map(|f| self.wait(f, now))
            .max_by_key(|t| t.retry_after_ms)
    }

    /// Counts a failed attempt against both keys.
    pub fn record_failure(&mut self, ip: Option<IpAddr>, user: &str, now: u64) {
        if self.failures.len() >= SWEEP_AT {
            let window = self.policy.window_ms.max(self.policy.block_ms);
            self.failures
                .retain(|_, f| now.saturating_sub(f.last) < window);
            // Still full (a distributed spray): forget the oldest half, so memory stays
            // bounded whatever the attacker sends.
            if self.failures.len() >= SWEEP_AT {
                let mut lasts: Vec<u64> = self.failures.values().map(|f| f.last).collect();
                let middle = lasts.len() / 2;
                let (_, &mut median, _) = lasts.select_nth_unstable(middle);
                self.failures.retain(|_, f| f.last > median);
            }
        }
        let window = self.policy.window_ms;
        for key in keys(ip, user) {
            let entry = self.failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.saturating_sub(entry.last) >= window {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    /// A successful login clears the user's failures (not the IP's: one good password does
    /// not excuse a spray from the same address).
    pub fn record_success(&mut self, user: &str) {
        self.failures.remove(&Key::User(user.to_owned()));
    }

    fn wait(&self, f: &Failures, now: u64) -> Option<Throttled> {
        let p = &self.policy;
        let since = now.saturating_sub(f.last);
        if f.count >= p.block_after {
            return (since < p.block_ms).then(|| Throttled {
                retry_after_ms: p.block_ms - since,
                blocked: true,
            });
        }
        if since >= p.window_ms || f.count < p.free_failures {
            return None;
        }
        let doublings = (f.count - p.free_failures).min(20);
        let delay = p.base_delay_ms.saturating_mul(1 << doublings);
        (since < delay).then(|| Throttled {
            retry_after_ms: delay - since,
            blocked: false,
        })
    }
}

fn keys(ip: Option<IpAddr>, user: &str) -> impl Iterator<Item = Key> {
    ip.map(Key::Ip)
        .into_iter()
        .chain(std::iter::once(Key::User(user.to_lowercase())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7)));

    fn fail(t: &mut LoginThrottle, ip: Option<IpAddr>, user: &str, n: u32, now: u64) {
        for _ in 0..n {
            t.record_failure(ip, user, now);
        }
    }

    #[test]
    fn a_few_failures_are_free() {
        let mut t = LoginThrottle::default();
        fail(&mut t, IP, "alice", 2, 1_000);
        assert_eq!(t.check(IP, "alice", 1_000), None);
    }

    #[test]
    fn delays_double_then_block() {
        let mut t = LoginThrottle::default();
        fail(&mut t, IP, "alice", 3, 1_000);
        assert_eq!(
            t.check(IP, "alice", 1_000),
            Some(Throttled {
                retry_after_ms: 1_000,
                blocked: false
            })
        );
        assert_eq!(t.check(IP, "alice", 2_000), None, "the delay has passed");
        t.record_failure(IP, "alice", 2_000);
        assert_eq!(
            t.check(IP, "alice", 2_500).map(|w| w.retry_after_ms),
            Some(1_500),
            "the fourth failure waits 2 s"
        );
        fail(&mut t, IP, "alice", 6, 10_000);
        let blocked = t.check(IP, "alice", 10_000).expect("blocked");
        assert!(blocked.blocked);
        assert_eq!(blocked.retry_after_ms, 15 * 60 * 1000);
        assert!(t.check(IP, "alice", 10_000 + 15 * 60 * 1000).is_none());
    }

    #[test]
    fn both_keys_count_and_the_window_forgets() {
        let mut t = LoginThrottle::default();
        // A spray over many users from one IP is slowed by the IP key.
        for i in 0..5 {
            t.record_failure(IP, &format!("user{i}"), 1_000);
        }
        assert!(t.check(IP, "someone-else", 1_000).is_some());
        assert!(t.check(None, "someone-else", 1_000).is_none());
        // Guesses at one account from many IPs are slowed by the user key.
        for i in 0..5u8 {
            let ip = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)));
            t.record_failure(ip, "Bob", 1_000);
        }
        assert!(
            t.check(None, "bob", 1_000).is_some(),
            "user names fold case"
        );
        let later = 1_000 + ThrottlePolicy::default().window_ms;
        assert!(t.check(IP, "bob", later).is_none());
    }

    #[test]
    fn memory_stays_bounded_under_a_spray() {
        let mut t = LoginThrottle::default();
        for i in 0..(SWEEP_AT as u64 * 3) {
            let ip = Some(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i))));
            t.record_failure(ip, &format!("user{i}"), 1_000 + i);
        }
        assert!(t.failures.len() <= SWEEP_AT + 2);
        // The most recent attackers are still remembered.
        let last = SWEEP_AT as u64 * 3 - 1;
        let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(last)));
        assert!(t.failures.contains_key(&Key::Ip(ip)));
    }

    #[test]
    fn success_clears_the_user_but_not_the_ip() {
        let mut t = LoginThrottle::default();
        fail(&mut t, IP, "carol", 4, 1_000);
        t.record_success("carol");
        assert!(t.check(None, "carol", 1_000).is_none());
        assert!(t.check(IP, "dave", 1_000).is_some());
    }
}

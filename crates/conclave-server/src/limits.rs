//! In-memory throttles: login backoff and per-key request budgets.
//!
//! Both are deliberately per process: they slow down guessing, they are not the
//! access control (that is the session and the policy engine). Multi-node
//! deployments get one budget per node, which only loosens a limit by the node count.
//! Time comes in as an argument so the arithmetic is unit-tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are swept, so a flood of distinct keys cannot
/// grow memory without bound.
const SWEEP_AT: usize = 50_000;

/// Exponential backoff after repeated failures, per key (account name, client address).
#[derive(Debug)]
pub struct Backoff<K> {
    free: u32,
    base: Duration,
    max: Duration,
    state: Mutex<HashMap<K, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// `free` failures are allowed; then each failure blocks for `base * 2^k`, at most `max`.
    pub fn new(free: u32, base: Duration, max: Duration) -> Self {
        Self {
            free,
            base,
            max,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait, if it is blocked.
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = state.get(key)?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Records a failure; returns the block it starts, if any.
    pub fn fail(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= SWEEP_AT {
            let horizon = self.max;
            state.retain(|_, f| now.saturating_duration_since(f.last) < horizon);
        }
        let f = state.entry(key.clone()).or_insert(Failures {
            count: 0,
            blocked_until: None,
            last: now,
        });
        // A key quiet for longer than the longest backoff starts afresh, so old
        // failures do not make a single new one costly forever.
        if now.saturating_duration_since(f.last) > self.max {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let over = f.count.checked_sub(self.free).filter(|n| *n > 0)?;
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        let wait = self.base.saturating_mul(factor).min(self.max);
        f.blocked_until = Some(now + wait);
        Some(wait)
    }

    /// Forgets a key's failures (after a successful sign-in).
    pub fn clear(&self, key: &K) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// A token bucket per key: `per_minute` requests, refilled continuously.
#[derive(Debug)]
pub struct RateLimit<K> {
    per_minute: u32,
    state: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// A budget of `per_minute` requests per key.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s budget; `Err(wait)` when it is spent.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= SWEEP_AT {
            state.retain(|_, (_, t)| now.saturating_duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = state.entry(key.clone()).or_insert((capacity, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * rate;
        *tokens = (*tokens + refill).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_free_attempts_and_doubles_up_to_the_cap() {
        let b = Backoff::new(3, Duration::from_secs(1), Duration::from_secs(5));
        let t = Instant::now();
        let waits: Vec<_> = (0..7).map(|_| b.fail(&"alice", t)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            waits,
            [None, None, None, secs(1), secs(2), secs(4), secs(5)]
        );
        assert_eq!(b.blocked(&"alice", t), secs(5));
        assert_eq!(b.blocked(&"alice", t + Duration::from_secs(5)), None);
        assert_eq!(b.blocked(&"bob", t), None);
        b.clear(&"alice");
        assert_eq!(b.blocked(&"alice", t), None);
        for _ in 0..3 {
            b.fail(&"carol", t);
        }
        let later = t + Duration::from_secs(6);
        assert_eq!(
            b.fail(&"carol", later),
            None,
            "failures older than the cap are forgotten"
        );
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let r = RateLimit::new(60);
        let t = Instant::now();
        for _ in 0..60 {
            assert!(r.check(&1, t).is_ok());
        }
        let wait = r.check(&1, t).expect_err("budget spent");
        assert!(wait <= Duration::from_secs(1));
        assert!(r.check(&2, t).is_ok(), "other keys have their own budget");
        assert!(r.check(&1, t + Duration::from_secs(1)).is_ok());
    }
}

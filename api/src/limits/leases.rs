//! Leases: an instance takes a few tokens of a busy key from the shared store at once.
//!
//! Asking the shared store for every message costs one statement per request on a row that
//! every request from the same address updates (its lock queues them): ~690 µs of Postgres
//! CPU and ~350 µs of the server's per send at 8 clients. A key that this instance asks for
//! again and again gets its tokens in leases instead: the first request takes one token as
//! before, and each time a lease is used up within its lifetime the next one is twice as big,
//! up to `cap`. The tokens come out of the shared quota when leased, so the instances together
//! never allow more than the configured total; tokens a lease does not use within its lifetime
//! lapse, which can only make the total stricter (by at most `cap` per instance and key).
//!
//! `cap` is an eighth of the quota (at most 64), and 1 (no leases) for quotas under 16: a
//! visitor sending 30 messages a minute through two instances loses at most 3 each way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long leased tokens stay usable.
pub(super) const LIFETIME: Duration = Duration::from_secs(1);
/// The largest lease, for the quotas a benchmark sets (millions a minute).
const MOST: u32 = 64;

pub(super) struct Leases {
    cap: u32,
    held: Mutex<HashMap<String, Lease>>,
}

#[derive(Debug)]
struct Lease {
    /// Tokens left, already taken from the shared quota.
    tokens: u32,
    /// How many tokens the last lease held.
    size: u32,
    expires: Instant,
}

/// What a request still needs after its leases.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Keys served by a leased token (taken; `give_back` returns them if the request is refused).
    pub(super) taken: Vec<String>,
    /// Keys to ask the store for, with how many tokens to ask for each.
    pub(super) ask: Vec<(String, u32)>,
}

impl Leases {
    /// Leases for a quota of `per_period` requests.
    pub(super) fn for_quota(per_period: u32) -> Self {
        Self {
            cap: (per_period / 8).clamp(1, MOST),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// No leases: every request asks the store (sign-ins must count exactly).
    pub(super) fn none() -> Self {
        Self::for_quota(0)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A panic while holding the lock cannot leave a lease half-written: use it as it is.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a leased token for each key that has one; the others are to be asked for.
    pub(super) fn take(&self, keys: &[String], now: Instant) -> Plan {
        if self.cap == 1 {
            return Plan {
                taken: Vec::new(),
                ask: keys.iter().map(|key| (key.clone(), 1)).collect(),
            };
        }
        let mut held = self.held();
        let mut plan = Plan::default();
        for key in keys {
            match held.get_mut(key) {
                Some(lease) if lease.tokens > 0 && lease.expires > now => {
                    lease.tokens -= 1;
                    plan.taken.push(key.clone());
                }
                // Used up within its lifetime: a busy key, so a bigger lease.
                Some(lease) if lease.expires > now => {
                    plan.ask.push((key.clone(), (lease.size * 2).min(self.cap)));
                }
                // Lapsed: the key has quietened down.
                Some(lease) => plan.ask.push((key.clone(), (lease.size / 2).max(1))),
                None => plan.ask.push((key.clone(), 1)),
            }
        }
        plan
    }

    /// Returns the tokens a refused request took.
    pub(super) fn give_back(&self, taken: &[String]) {
        let mut held = self.held();
        for key in taken {
            if let Some(lease) = held.get_mut(key) {
                lease.tokens += 1;
            }
        }
    }

    /// The store granted `granted` tokens of `key`, of which the request used `used`.
    pub(super) fn granted(&self, key: &str, granted: u32, used: u32, now: Instant) {
        if self.cap == 1 {
            return;
        }
        let left = granted.saturating_sub(used);
        let mut held = self.held();
        let lease = held.entry(key.to_owned()).or_insert(Lease {
            tokens: 0,
            size: granted,
            expires: now,
        });
        // Tokens still live from a lease granted beside this one stay usable.
        let live = if lease.expires > now { lease.tokens } else { 0 };
        *lease = Lease {
            tokens: live + left,
            size: granted,
            expires: now + LIFETIME,
        };
    }

    /// Forgets lapsed leases; they hold nothing but their size.
    pub(super) fn prune(&self, now: Instant) {
        self.held().retain(|_, lease| lease.expires > now);
    }

    /// Keys with a lease, for the tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn small_quotas_are_never_leased() {
        let leases = Leases::for_quota(10);
        let now = Instant::now();
        for _ in 0..5 {
            let plan = leases.take(&keys(&["a"]), now);
            assert_eq!(plan.ask, vec![("a".to_owned(), 1)]);
            leases.granted("a", 1, 1, now);
        }
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_busy_key_gets_bigger_leases_up_to_the_cap_and_a_quiet_one_smaller() {
        // 160 a minute: leases of up to 20.
        let leases = Leases::for_quota(160);
        let now = Instant::now();
        let mut asked = Vec::new();
        let mut served_locally = 0;
        for _ in 0..100 {
            let plan = leases.take(&keys(&["a"]), now);
            match plan.ask.first() {
                Some((_, size)) => {
                    asked.push(*size);
                    leases.granted("a", *size, 1, now);
                }
                None => served_locally += 1,
            }
        }
        assert_eq!(asked[..6], [1, 2, 4, 8, 16, 20]);
        assert!(asked[6..].iter().all(|size| *size == 20), "{asked:?}");
        assert_eq!(asked.len() + served_locally, 100);
        // 1 + 2 + 4 + 8 + 16 + 4 × 20 tokens: 100 used, 11 still leased.
        assert_eq!(asked.iter().sum::<u32>(), 111);

        // After its lease lapsed the key asks for half as many.
        let later = now + LIFETIME + Duration::from_millis(1);
        let plan = leases.take(&keys(&["a"]), later);
        assert_eq!(plan.ask, vec![("a".to_owned(), 10)]);
        leases.prune(later);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_refused_request_gives_its_tokens_back_and_keeps_what_it_was_granted() {
        let leases = Leases::for_quota(800);
        let now = Instant::now();
        leases.granted("chat", 4, 1, now);
        // "chat" has 3 leased tokens; "address" has none.
        let plan = leases.take(&keys(&["address", "chat"]), now);
        assert_eq!(plan.taken, keys(&["chat"]));
        assert_eq!(plan.ask, vec![("address".to_owned(), 1)]);
        // The store refused "address": the request is refused and "chat" keeps its 3.
        leases.give_back(&plan.taken);
        for _ in 0..3 {
            assert_eq!(leases.take(&keys(&["chat"]), now).taken, keys(&["chat"]));
        }
        assert_eq!(
            leases.take(&keys(&["chat"]), now).ask,
            vec![("chat".to_owned(), 8)]
        );
        // Granted while refused for another key: all of it is kept for later.
        leases.granted("chat", 8, 0, now);
        for _ in 0..8 {
            assert!(leases.take(&keys(&["chat"]), now).ask.is_empty());
        }
    }
}

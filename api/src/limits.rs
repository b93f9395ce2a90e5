//! Rate limits (governor), per client address and per visitor token. Keyed stores grow with
//! every new key, so a timer prunes keys whose quota has fully recovered.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::config::Settings;
use crate::error::{Error, Result};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// What a limit is keyed on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Address(IpAddr),
    Chat(Uuid),
}

pub struct RateLimits {
    start_chat: Keyed<Key>,
    send_message: Keyed<Key>,
    login: Keyed<Key>,
    typing: Keyed<Key>,
    clock: DefaultClock,
}

fn quota(per_period: u32, period: Duration) -> Quota {
    let count = NonZeroU32::new(per_period.max(1)).unwrap_or(NonZeroU32::MIN);
    // `per_period` requests per `period`, all of them available at once as a burst.
    Quota::with_period(period / count.get())
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

impl RateLimits {
    pub fn new(settings: &Settings) -> Arc<Self> {
        let minute = Duration::from_secs(60);
        Arc::new(Self {
            start_chat: RateLimiter::keyed(quota(
                settings.rate_start_per_hour,
                Duration::from_secs(3600),
            )),
            send_message: RateLimiter::keyed(quota(settings.rate_send_per_min, minute)),
            login: RateLimiter::keyed(quota(settings.rate_login_per_min, minute)),
            typing: RateLimiter::keyed(quota(120, minute)),
            clock: DefaultClock::default(),
        })
    }

    fn check(&self, limiter: &Keyed<Key>, key: Key) -> Result<()> {
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    pub fn start_chat(&self, address: IpAddr) -> Result<()> {
        self.check(&self.start_chat, Key::Address(address))
    }

    /// Visitors are limited per token and per address; admins are not limited.
    pub fn send_message(&self, address: IpAddr, chat_id: Uuid) -> Result<()> {
        self.check(&self.send_message, Key::Chat(chat_id))?;
        self.check(&self.send_message, Key::Address(address))
    }

    pub fn login(&self, address: IpAddr) -> Result<()> {
        self.check(&self.login, Key::Address(address))
    }

    pub fn typing(&self, chat_id: Uuid) -> Result<()> {
        self.check(&self.typing, Key::Chat(chat_id))
    }

    /// Drops keys whose quota is whole again; they hold no information.
    pub fn prune(&self) {
        for limiter in [
            &self.start_chat,
            &self.send_message,
            &self.login,
            &self.typing,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    pub fn tracked_keys(&self) -> usize {
        [
            &self.start_chat,
            &self.send_message,
            &self.login,
            &self.typing,
        ]
        .iter()
        .map(|limiter| limiter.len())
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_trip_with_a_retry_hint_and_keys_are_separate() {
        let settings = Settings::from_lookup(|name| {
            (name == "CHATDESK_RATE_LOGIN_PER_MIN").then(|| "2".to_owned())
        })
        .unwrap();
        let limits = RateLimits::new(&settings);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        limits.login(a).unwrap();
        limits.login(a).unwrap();
        match limits.login(a) {
            Err(Error::RateLimited {
                retry_after_seconds,
            }) => {
                assert!(
                    (1..=30).contains(&retry_after_seconds),
                    "{retry_after_seconds}"
                )
            }
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        limits.login(b).unwrap();
        assert_eq!(limits.tracked_keys(), 2);
    }
}

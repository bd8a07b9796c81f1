//! Failed-login throttling, in memory (each replica counts its own): failures are counted per
//! login name and per source address over a sliding window, and a name or source with too many
//! is refused until enough of them have aged out of the window.
//!
//! [`Throttle::check`] also reserves the attempt it allows until [`Throttle::failure`] or
//! [`Throttle::success`] settles it, so attempts made in parallel cannot all pass before the
//! first failure is recorded. Memory is bounded: at most [`ThrottleSettings::capacity`] names and
//! as many sources are tracked, entries that no longer count are pruned, and when every slot is
//! busy the least recently active entry makes room.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::{IpAddr, Ipv6Addr},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Longest login name kept as a key (longer ones share the key of their first characters: no
/// username or email is that long).
const MAX_KEY_CHARS: usize = 256;

/// The limits a [`Throttle`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed per login name within [`ThrottleSettings::window`] (default 5).
    pub per_login: usize,
    /// Failures allowed per source address within the window (default 20).
    pub per_source: usize,
    /// How long a failure counts (default 15 minutes).
    pub window: Duration,
    /// How long a reservation by [`Throttle::check`] counts when neither [`Throttle::failure`]
    /// nor [`Throttle::success`] settles it (default 1 minute, longer than any directory call).
    pub reservation: Duration,
    /// Most login names, and most sources, tracked at once (default 10 000 each).
    pub capacity: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            per_login: 5,
            per_source: 20,
            window: Duration::from_secs(15 * 60),
            reservation: Duration::from_secs(60),
            capacity: 10_000,
        }
    }
}

/// Failed logins per login name (lowercased) and per source address. `Send + Sync`: one per
/// process, shared by every request.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    logins: HashMap<String, Entry>,
    sources: HashMap<IpAddr, Entry>,
}

/// Recent failures and unsettled reservations of one name or source, oldest first.
#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
    reserved: VecDeque<Instant>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(ThrottleSettings::default())
    }
}

impl Throttle {
    /// A throttle enforcing `settings`, with nothing counted yet.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether `login` may be tried from `ip` now: `Err(retry after)` when the name or the
    /// source has had too many failures. An allowed attempt is reserved until
    /// [`Throttle::failure`] or [`Throttle::success`] settles it (or it lapses).
    pub fn check(&self, login: &str, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(login, ip, Instant::now())
    }

    /// Records a failed attempt of `login` from `ip`, settling its reservation.
    pub fn failure(&self, login: &str, ip: IpAddr) {
        self.failure_at(login, ip, Instant::now());
    }

    /// Records a successful login of `login` from `ip`: the name's failures are forgotten (the
    /// source's stay: a valid account must not lift the block of an address guessing others).
    pub fn success(&self, login: &str, ip: IpAddr) {
        self.success_at(login, ip, Instant::now());
    }

    fn check_at(&self, login: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (login, source) = (login_key(login), source_key(ip));
        let settings = &self.settings;
        let mut state = self.lock();
        let by_login = state
            .logins
            .get_mut(&login)
            .and_then(|entry| entry.retry_after(settings, settings.per_login, now));
        let by_source = state
            .sources
            .get_mut(&source)
            .and_then(|entry| entry.retry_after(settings, settings.per_source, now));
        if let Some(wait) = by_login.max(by_source) {
            return Err(wait);
        }
        slot(&mut state.logins, login, settings, now)
            .reserved
            .push_back(now);
        slot(&mut state.sources, source, settings, now)
            .reserved
            .push_back(now);
        Ok(())
    }

    fn failure_at(&self, login: &str, ip: IpAddr, now: Instant) {
        let (login, source) = (login_key(login), source_key(ip));
        let settings = &self.settings;
        let mut state = self.lock();
        slot(&mut state.logins, login, settings, now).fail(settings.per_login, now);
        slot(&mut state.sources, source, settings, now).fail(settings.per_source, now);
    }

    fn success_at(&self, login: &str, ip: IpAddr, now: Instant) {
        let mut state = self.lock();
        state.logins.remove(&login_key(login));
        if let Some(entry) = state.sources.get_mut(&source_key(ip)) {
            entry.reserved.pop_front();
            entry.expire(&self.settings, now);
            if entry.is_empty() {
                state.sources.remove(&source_key(ip));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every change is one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entry {
    /// Forgets failures older than the window and reservations that lapsed.
    fn expire(&mut self, settings: &ThrottleSettings, now: Instant) {
        expire(&mut self.failures, settings.window, now);
        expire(&mut self.reserved, settings.reservation, now);
    }

    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.reserved.is_empty()
    }

    /// When another attempt will be allowed, if not now: when enough failures and reservations
    /// have lapsed to leave fewer than `limit`.
    fn retry_after(
        &mut self,
        settings: &ThrottleSettings,
        limit: usize,
        now: Instant,
    ) -> Option<Duration> {
        self.expire(settings, now);
        let counted = self.failures.len() + self.reserved.len();
        if counted < limit {
            return None;
        }
        let mut lapses: Vec<Instant> = self
            .failures
            .iter()
            .map(|at| *at + settings.window)
            .chain(self.reserved.iter().map(|at| *at + settings.reservation))
            .collect();
        lapses.sort_unstable();
        // After `counted - limit + 1` lapses, `limit - 1` remain.
        let free_at = lapses.get(counted - limit).copied().unwrap_or(now);
        Some(
            free_at
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)),
        )
    }

    /// Records a failure in place of the oldest reservation, keeping the newest `limit`.
    fn fail(&mut self, limit: usize, now: Instant) {
        self.reserved.pop_front();
        self.failures.push_back(now);
        while self.failures.len() > limit {
            self.failures.pop_front();
        }
    }

    /// The last time this entry changed.
    fn last_active(&self) -> Option<Instant> {
        self.failures.back().max(self.reserved.back()).copied()
    }
}

fn expire(times: &mut VecDeque<Instant>, lifetime: Duration, now: Instant) {
    while times
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= lifetime)
    {
        times.pop_front();
    }
}

/// The entry of `key`, made room for if new: lapsed entries are pruned first, then, if every
/// slot still counts, the least recently active one goes.
fn slot<'a, K: Eq + Hash + Clone>(
    entries: &'a mut HashMap<K, Entry>,
    key: K,
    settings: &ThrottleSettings,
    now: Instant,
) -> &'a mut Entry {
    if !entries.contains_key(&key) && entries.len() >= settings.capacity.max(1) {
        entries.retain(|_, entry| {
            entry.expire(settings, now);
            !entry.is_empty()
        });
        if entries.len() >= settings.capacity.max(1) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_active())
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
    }
    let entry = entries.entry(key).or_default();
    entry.expire(settings, now);
    entry
}

/// A login name as counted: lowercased (the directory matches names without case), and cut
/// to [`MAX_KEY_CHARS`] so a huge name cannot take much memory.
fn login_key(login: &str) -> String {
    login.to_lowercase().chars().take(MAX_KEY_CHARS).collect()
}

/// A source as counted: an IPv4 address (also when mapped into IPv6), or an IPv6 address's
/// /64, since one client usually holds a whole /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = v6.to_bits() & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from_bits(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Checks then fails `login` from `source` at `now`, as a wrong password does.
    fn fail(throttle: &Throttle, login: &str, source: IpAddr, now: Instant) {
        assert_eq!(throttle.check_at(login, source, now), Ok(()), "{login}");
        throttle.failure_at(login, source, now);
    }

    #[test]
    fn the_sixth_attempt_at_one_user_is_refused_until_the_window_passes() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let source = ip("192.0.2.1");
        for n in 0..5 {
            fail(&throttle, "Alice", source, start + MINUTE * n);
        }
        let refused = throttle.check_at("alice", source, start + MINUTE * 5);
        assert_eq!(refused, Err(MINUTE * 10));
        // Any case of the name, and from any source.
        let elsewhere = ip("198.51.100.7");
        let refused = throttle.check_at("ALICE", elsewhere, start + MINUTE * 6);
        assert_eq!(refused, Err(MINUTE * 9));
        // Another user from another source is unaffected.
        assert_eq!(
            throttle.check_at("bob", elsewhere, start + MINUTE * 6),
            Ok(())
        );
        // The oldest failure leaves the window: one more attempt.
        assert_eq!(
            throttle.check_at("alice", source, start + MINUTE * 15),
            Ok(())
        );
        throttle.failure_at("alice", source, start + MINUTE * 15);
        assert_eq!(
            throttle.check_at("alice", source, start + MINUTE * 15),
            Err(MINUTE)
        );
        // All of them leave the window: unblocked.
        for n in 0..5 {
            assert_eq!(
                throttle.check_at("alice", source, start + MINUTE * (31 + n)),
                Ok(()),
                "{n}"
            );
        }
    }

    #[test]
    fn twenty_failures_from_one_source_block_it_for_every_user() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let attacker = ip("203.0.113.9");
        for n in 0..20 {
            fail(&throttle, &format!("user{n}"), attacker, start);
        }
        let refused = throttle.check_at("someone-new", attacker, start + MINUTE);
        assert_eq!(refused, Err(MINUTE * 14));
        // Successful logins from it do not lift the block.
        throttle.success_at("user0", attacker, start + MINUTE);
        assert!(
            throttle
                .check_at("user0", attacker, start + MINUTE)
                .is_err()
        );
        // Other sources are unaffected, and so are those names from them.
        assert_eq!(throttle.check_at("user1", ip("192.0.2.1"), start), Ok(()));
        // The window passes.
        let later = start + MINUTE * 15;
        assert_eq!(throttle.check_at("someone-new", attacker, later), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_mapped_ipv4_as_ipv4() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..20 {
            let address = ip(&format!("2001:db8:1:2::{n:x}"));
            fail(&throttle, &format!("user{n}"), address, start);
        }
        let same_64 = ip("2001:db8:1:2:ffff::1");
        assert!(throttle.check_at("other", same_64, start).is_err());
        assert_eq!(
            throttle.check_at("other", ip("2001:db8:1:3::1"), start),
            Ok(())
        );
        assert_eq!(
            source_key(ip("::ffff:192.0.2.1")),
            source_key(ip("192.0.2.1"))
        );
    }

    #[test]
    fn success_clears_the_users_count() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let source = ip("192.0.2.1");
        for _ in 0..4 {
            fail(&throttle, "carol", source, start);
        }
        assert_eq!(throttle.check_at("Carol", source, start), Ok(()));
        throttle.success_at("Carol", source, start);
        for _ in 0..5 {
            fail(&throttle, "carol", source, start);
        }
        assert!(throttle.check_at("carol", source, start).is_err());
    }

    #[test]
    fn parallel_attempts_cannot_pass_before_their_failures_count() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let source = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(throttle.check_at("dave", source, start), Ok(()));
        }
        // Five are in flight: a sixth waits, for as long as a reservation lasts at most.
        assert_eq!(throttle.check_at("dave", source, start), Err(MINUTE));
        // One settles as a success: the others may still fail, the name is free again.
        throttle.success_at("dave", source, start);
        assert_eq!(throttle.check_at("dave", source, start), Ok(()));
        // Unsettled reservations lapse.
        let mut throttle = Throttle::default();
        throttle.settings.per_login = 1;
        assert_eq!(throttle.check_at("erin", source, start), Ok(()));
        assert!(throttle.check_at("erin", source, start).is_err());
        assert_eq!(throttle.check_at("erin", source, start + MINUTE), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_under_many_distinct_names_and_sources() {
        let throttle = Throttle::new(ThrottleSettings {
            capacity: 100,
            ..ThrottleSettings::default()
        });
        let start = Instant::now();
        let victim = ip("192.0.2.200");
        for _ in 0..4 {
            fail(&throttle, "victim", victim, start);
        }
        for n in 0..10_000u32 {
            let source = IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + n / 10));
            let name = format!("{n}{}", "x".repeat(1000));
            throttle.failure_at(&name, source, start + Duration::from_millis(u64::from(n)));
        }
        let state = throttle.lock();
        assert!(state.logins.len() <= 100, "{}", state.logins.len());
        assert!(state.sources.len() <= 100, "{}", state.sources.len());
        assert!(
            state
                .logins
                .keys()
                .all(|key| key.chars().count() <= MAX_KEY_CHARS)
        );
        let stored: usize = state
            .logins
            .values()
            .chain(state.sources.values())
            .map(|entry| entry.failures.len() + entry.reserved.len())
            .max()
            .unwrap_or(0);
        assert!(stored <= 20, "{stored}");
        drop(state);
        // Once the window has passed, new names prune the lapsed ones.
        let later = start + MINUTE * 30;
        for n in 0..10 {
            fail(&throttle, &format!("late{n}"), ip("192.0.2.1"), later);
        }
        assert_eq!(throttle.lock().logins.len(), 10);
    }
}

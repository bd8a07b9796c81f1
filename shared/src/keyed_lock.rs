//! Per-key async locks in one process: calls on one key (an app) run one at a time, calls on
//! different keys in parallel, and a key's entry lives only while someone holds or waits for
//! it, so the map does not grow with every app ever seen.
//!
//! Only within one process: replicas of a service need the backend to keep them apart.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::OwnedMutexGuard;

/// One key's lock and how many claims (holders and waiters) it has.
#[derive(Default)]
struct Entry {
    lock: Arc<tokio::sync::Mutex<()>>,
    claims: usize,
}

type Entries = Arc<Mutex<HashMap<String, Entry>>>;

/// A set of async locks by key.
#[derive(Default)]
pub struct KeyedLocks {
    entries: Entries,
}

/// Holds one key's lock until dropped; the last one out removes the key's entry.
#[must_use = "the lock is released when the guard is dropped"]
pub struct KeyedGuard {
    // Fields drop in order: the lock is released before the claim is given up.
    _held: OwnedMutexGuard<()>,
    _claim: Claim,
}

/// A holder's or waiter's share of a key's entry; dropping it (also when a waiting call is
/// cancelled) removes the entry once nobody else has one.
struct Claim {
    entries: Entries,
    key: String,
}

impl KeyedLocks {
    /// No locks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no one else holds `key`'s lock, then holds it until the guard is dropped.
    /// Waiters get the lock in the order they asked (tokio's mutex is fair).
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let lock = {
            let mut entries = lock_map(&self.entries);
            let entry = entries.entry(key.to_owned()).or_default();
            entry.claims += 1;
            Arc::clone(&entry.lock)
        };
        let claim = Claim {
            entries: Arc::clone(&self.entries),
            key: key.to_owned(),
        };
        KeyedGuard {
            _held: lock.lock_owned().await,
            _claim: claim,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut entries = lock_map(&self.entries);
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.claims -= 1;
            if entry.claims == 0 {
                entries.remove(&self.key);
            }
        }
    }
}

/// The map, also after a panic elsewhere while it was locked: every change to it is one step,
/// so it is never left half-changed.
fn lock_map(entries: &Mutex<HashMap<String, Entry>>) -> MutexGuard<'_, HashMap<String, Entry>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    fn keys(locks: &KeyedLocks) -> usize {
        lock_map(&locks.entries).len()
    }

    #[tokio::test]
    async fn the_same_key_is_serialized() {
        let locks = Arc::new(KeyedLocks::new());
        let first = locks.lock("app").await;
        let waiting = tokio::spawn({
            let locks = Arc::clone(&locks);
            async move {
                let _second = locks.lock("app").await;
            }
        });
        // The second caller cannot get the lock while the first holds it.
        assert!(
            timeout(Duration::from_millis(100), locks.lock("app"))
                .await
                .is_err()
        );
        assert!(!waiting.is_finished());
        drop(first);
        let waited = timeout(Duration::from_secs(5), waiting).await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "the waiter gets the lock once it is released"
        );
        assert_eq!(keys(&locks), 0);
    }

    #[tokio::test]
    async fn different_keys_are_parallel() {
        let locks = KeyedLocks::new();
        let _a = locks.lock("a").await;
        let b = timeout(Duration::from_secs(5), locks.lock("b")).await;
        assert!(b.is_ok(), "another key's lock must not wait");
        assert_eq!(keys(&locks), 2);
    }

    #[tokio::test]
    async fn the_map_is_empty_once_every_guard_is_dropped() {
        let locks = Arc::new(KeyedLocks::new());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let locks = Arc::clone(&locks);
                tokio::spawn(async move {
                    let _guard = locks.lock(&format!("app{}", i % 5)).await;
                    tokio::task::yield_now().await;
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.is_ok(), "no task panics");
        }
        assert_eq!(keys(&locks), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_nothing_behind() {
        let locks = KeyedLocks::new();
        let held = locks.lock("app").await;
        assert!(
            timeout(Duration::from_millis(20), locks.lock("app"))
                .await
                .is_err()
        );
        assert_eq!(keys(&locks), 1);
        drop(held);
        assert_eq!(keys(&locks), 0);
    }
}

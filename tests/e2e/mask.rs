//! Secrets the test has seen (the API token, every password and secret of a bundle), and the
//! one way anything reaches the test's output: [`masked`], which replaces each of them by `***`.
//! Failure messages quote clients' output, which may echo a credential back.

use std::sync::Mutex;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers `secret` so that it never appears in the test's output.
pub fn remember(secret: &str) {
    // Short values (a port, "1") are no secrets and would mask half of every message.
    if secret.len() < 8 {
        return;
    }
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !secrets.iter().any(|known| known == secret) {
        secrets.push(secret.to_owned());
        // Longest first: a secret that contains another is masked whole.
        secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
    }
}

/// `text` with every remembered secret replaced by `***`.
pub fn masked(text: &str) -> String {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    secrets
        .iter()
        .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
}

/// Fails the test with `message`, secrets masked.
#[track_caller]
pub fn fail(message: &str) -> ! {
    let message = masked(message);
    #[allow(clippy::panic)]
    {
        panic!("{message}")
    }
}

/// Fails the test with `message()` (secrets masked) unless `condition` holds.
#[track_caller]
pub fn ensure(condition: bool, message: impl FnOnce() -> String) {
    if !condition {
        fail(&message());
    }
}

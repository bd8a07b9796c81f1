//! Timing for the services' benchmark binaries (`cargo bench`): samples and their summary.

use std::time::{Duration, Instant};

/// Durations of one measured operation.
#[derive(Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Runs `operation`, recording how long it took.
    pub async fn time<T>(&mut self, operation: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = operation.await;
        self.0.push(started.elapsed());
        result
    }

    /// The mean.
    pub fn mean(&self) -> Duration {
        let count = u32::try_from(self.0.len().max(1)).unwrap_or(u32::MAX);
        self.0.iter().sum::<Duration>() / count
    }

    /// The median.
    pub fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    /// One line: `what`, mean and median in milliseconds.
    pub fn report(&self, what: &str) -> String {
        format!(
            "  {what:<36} mean {:>8.2} ms   median {:>8.2} ms",
            self.mean().as_secs_f64() * 1e3,
            self.median().as_secs_f64() * 1e3
        )
    }

    /// `self`'s mean over `other`'s.
    pub fn ratio_to(&self, other: &Self) -> f64 {
        self.mean().as_secs_f64() / other.mean().as_secs_f64()
    }
}

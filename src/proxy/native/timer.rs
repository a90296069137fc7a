//! A per-connection timer that bounds waits without registering a new timer
//! per request: it is armed once and re-armed only when it fires before the
//! wait it bounds is really overdue (deadlines mostly move forward, so a timer
//! set for an earlier wait fires early, is checked, and is moved on).

use std::future::Future;
use std::pin::{pin, Pin};

use tokio::time::{Instant, Sleep};

/// One reusable timer; see the module docs.
#[derive(Debug)]
pub(super) struct Deadline {
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    /// A timer, not yet armed for any wait.
    pub(super) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }

    /// Runs `work` until it finishes (`Some`) or `due` passes (`None`).
    pub(super) async fn run<F: Future>(&mut self, due: Instant, work: F) -> Option<F::Output> {
        if self.sleep.deadline() > due || self.sleep.is_elapsed() {
            self.sleep.as_mut().reset(due);
        }
        let mut work = pin!(work);
        loop {
            tokio::select! {
                biased;
                done = &mut work => return Some(done),
                () = &mut self.sleep => {
                    if Instant::now() >= due {
                        return None;
                    }
                    self.sleep.as_mut().reset(due);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_end_at_their_own_deadline_whatever_the_timer_was_armed_for() {
        let mut timer = Deadline::new();
        let start = Instant::now();
        let first = timer
            .run(start + Duration::from_secs(10), async { 1 })
            .await;
        assert_eq!(first, Some(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        // Armed for start+10s; this wait is due at start+15s and must last that long.
        let never = std::future::pending::<()>();
        let second = timer
            .run(Instant::now() + Duration::from_secs(10), never)
            .await;
        assert_eq!(second, None);
        assert_eq!(Instant::now() - start, Duration::from_secs(15));
        let quick = timer
            .run(Instant::now() + Duration::from_secs(1), async { 2 })
            .await;
        assert_eq!(quick, Some(2));
    }
}

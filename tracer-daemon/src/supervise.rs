//! Supervision of the daemon's long-running stages (reader, processing, export lanes, store feed,
//! agent listeners, the uprobe scanner, servers): each runs as a named stage whose panic, error
//! or unexpected end is caught, logged with its cause and recorded, so that `/healthz` can tell
//! which stage is running and the daemon can exit non-zero when one dies.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tracer_daemon::supervise::{Stages, State};
//! let stages = Stages::new();
//! stages.spawn("worker", async { Err::<(), _>("disk full") });
//! let death = stages.first_death().await;
//! assert_eq!((death.stage.as_str(), death.cause.as_str()), ("worker", "failed: disk full"));
//! assert!(matches!(stages.snapshot()[0].state, State::Dead(_)));
//! # }
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Environment variable naming a stage that panics on purpose once it runs, to test that a
/// dying stage is reported by `/healthz` and ends the daemon with a non-zero status. For
/// testing only; unset in production.
pub const FAULT_ENV: &str = "TRACER_TEST_FAULT_STAGE";

/// Where a stage is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// Ended while the daemon was stopping (or was cancelled by it).
    Stopped,
    /// Panicked, returned an error, or ended while the daemon was not stopping; the cause.
    Dead(String),
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Dead(_) => "dead",
        }
    }
}

/// One stage as `/healthz` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageStatus {
    pub name: String,
    pub state: State,
}

/// The first stage that died and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Death {
    pub stage: String,
    pub cause: String,
}

/// What a stage's body returns: nothing, or a result whose error is the cause of its death.
pub trait Outcome {
    /// `Err(cause)` when the stage failed.
    fn into_cause(self) -> Result<(), String>;
}

impl Outcome for () {
    fn into_cause(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> Outcome for Result<(), E> {
    fn into_cause(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

#[derive(Default)]
struct Table {
    stages: Vec<StageStatus>,
    stopping: bool,
    first_death: Option<Death>,
}

/// The registry of supervised stages; cheap to clone (one shared table).
#[derive(Clone)]
pub struct Stages {
    table: Arc<Mutex<Table>>,
    deaths: watch::Sender<usize>,
    /// The stage told to fail on purpose ([`FAULT_ENV`]), if any.
    fault: Option<Arc<str>>,
}

impl Default for Stages {
    fn default() -> Self {
        Stages::new()
    }
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // The table is plain data: a panic elsewhere while it was held leaves it usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Stages {
    pub fn new() -> Self {
        Stages { table: Arc::default(), deaths: watch::Sender::new(0), fault: None }
    }

    /// A registry whose stage named by [`FAULT_ENV`] (when set) panics once it starts.
    pub fn from_env() -> Self {
        let fault = std::env::var(FAULT_ENV).ok().filter(|s| !s.is_empty()).map(Arc::from);
        if let Some(f) = &fault {
            tracing::warn!(stage = %f, env = FAULT_ENV, "fault injection on: this stage will panic (testing only)");
        }
        Stages { fault, ..Stages::new() }
    }

    /// Whether `stage` is the one told to fail on purpose.
    pub fn faulty(&self, stage: &str) -> bool {
        self.fault.as_deref() == Some(stage)
    }

    /// Registers `name` as running and returns its guard, which records how it ends.
    pub fn enter(&self, name: &str) -> StageGuard {
        let mut t = lock(&self.table);
        let index = t.stages.len();
        t.stages.push(StageStatus { name: name.to_owned(), state: State::Running });
        StageGuard { stages: self.clone(), index, done: false }
    }

    /// Runs `body` as the stage `name` on the tokio runtime. A panic, an `Err` or a return
    /// before [`Self::stopping`] marks the stage dead with its cause.
    pub fn spawn<F>(&self, name: &str, body: F) -> JoinHandle<()>
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        let guard = self.enter(name);
        let fault = self.faulty(name);
        tokio::spawn(Caught { body: Box::pin(body), guard: Some(guard), fault })
    }

    /// Runs `body` as the stage `name` on a thread of its own, supervised like [`Self::spawn`].
    pub fn thread<F, T>(&self, name: &str, body: F) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Outcome,
    {
        let guard = self.enter(name);
        let fault = self.faulty(name);
        std::thread::Builder::new().name(format!("tracer-{}", name.replace(' ', "-"))).spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                if fault {
                    panic!("fault injected by {FAULT_ENV}");
                }
                body()
            }));
            guard.finish(match result {
                Ok(out) => out.into_cause().map_err(|e| format!("failed: {e}")),
                Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
            });
        })
    }

    /// From now on a stage that ends is stopped, not dead (the daemon is shutting down).
    pub fn stopping(&self) {
        lock(&self.table).stopping = true;
    }

    /// Every stage and its state, in the order they started.
    pub fn snapshot(&self) -> Vec<StageStatus> {
        lock(&self.table).stages.clone()
    }

    /// The stages that died, with their causes.
    pub fn dead(&self) -> Vec<(String, String)> {
        lock(&self.table)
            .stages
            .iter()
            .filter_map(|s| match &s.state {
                State::Dead(cause) => Some((s.name.clone(), cause.clone())),
                _ => None,
            })
            .collect()
    }

    /// Waits until a stage dies; returns the first that did.
    pub async fn first_death(&self) -> Death {
        let mut rx = self.deaths.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
        // The sender lives in `self`, so the wait ends only once a death was recorded.
        lock(&self.table).first_death.clone().unwrap_or(Death { stage: String::new(), cause: String::new() })
    }

    fn record(&self, index: usize, outcome: Result<(), String>) {
        let mut t = lock(&self.table);
        let stopping = t.stopping;
        let Some(stage) = t.stages.get_mut(index) else { return };
        let state = match outcome {
            Err(cause) => State::Dead(cause),
            Ok(()) if stopping => State::Stopped,
            Ok(()) => State::Dead("ended while the daemon was running".to_owned()),
        };
        let name = stage.name.clone();
        stage.state = state.clone();
        if let State::Dead(cause) = state {
            tracing::error!(stage = %name, %cause, "stage died");
            if t.first_death.is_none() {
                t.first_death = Some(Death { stage: name, cause });
            }
            drop(t);
            self.deaths.send_modify(|n| *n += 1);
        }
    }
}

/// Records how one stage ends; dropped unfinished (a cancelled task) it counts as stopped.
pub struct StageGuard {
    stages: Stages,
    index: usize,
    done: bool,
}

impl StageGuard {
    /// Records the stage's end: `Err(cause)` marks it dead.
    pub fn finish(mut self, outcome: Result<(), String>) {
        self.done = true;
        self.stages.record(self.index, outcome);
    }
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut t = lock(&self.stages.table);
            if let Some(s) = t.stages.get_mut(self.index) {
                s.state = State::Stopped;
            }
        }
    }
}

/// A stage's future with its panics caught and its end recorded.
struct Caught<F> {
    body: Pin<Box<F>>,
    guard: Option<StageGuard>,
    fault: bool,
}

impl<F> Future for Caught<F>
where
    F: Future,
    F::Output: Outcome,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let body = this.body.as_mut();
        let fault = this.fault;
        let polled = catch_unwind(AssertUnwindSafe(|| {
            if fault {
                panic!("fault injected by {FAULT_ENV}");
            }
            body.poll(cx)
        }));
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => out.into_cause().map_err(|e| format!("failed: {e}")),
            Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
        };
        if let Some(guard) = this.guard.take() {
            guard.finish(outcome);
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panicking_stage_is_dead_with_its_message_and_others_keep_running() {
        let stages = Stages::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _alive = stages.spawn("alive", async move {
            let _ = rx.await;
        });
        fn boom() {
            panic!("index out of range");
        }
        stages.spawn("boom", async {
            tokio::task::yield_now().await;
            boom()
        });
        let death = tokio::time::timeout(Duration::from_secs(5), stages.first_death()).await.unwrap();
        assert_eq!(death, Death { stage: "boom".into(), cause: "panicked: index out of range".into() });
        let snap = stages.snapshot();
        assert_eq!(snap[0], StageStatus { name: "alive".into(), state: State::Running });
        assert_eq!(snap[1].state, State::Dead("panicked: index out of range".into()));
        assert_eq!(stages.dead().len(), 1);
        stages.stopping();
        drop(tx);
        _alive.await.unwrap();
        assert_eq!(stages.snapshot()[0].state, State::Stopped, "ended during shutdown: stopped, not dead");
    }

    #[tokio::test]
    async fn an_error_or_an_early_end_is_a_death_and_a_cancelled_stage_is_stopped() {
        let stages = Stages::new();
        stages.spawn("early", async {}).await.unwrap();
        assert_eq!(stages.snapshot()[0].state, State::Dead("ended while the daemon was running".into()));
        stages.spawn("err", async { Err::<(), _>(std::io::Error::other("EBADF")) }).await.unwrap();
        assert_eq!(stages.snapshot()[1].state, State::Dead("failed: EBADF".into()));
        assert_eq!(stages.first_death().await.stage, "early", "the first death is kept");
        let forever = stages.spawn("forever", std::future::pending::<()>());
        forever.abort();
        let _ = forever.await;
        assert_eq!(stages.snapshot()[2].state, State::Stopped);
    }

    #[test]
    fn a_thread_stage_is_supervised_and_fault_injection_names_one_stage() {
        let stages = Stages { fault: Some(Arc::from("scanner")), ..Stages::new() };
        assert!(stages.faulty("scanner") && !stages.faulty("reader"));
        stages.thread("scanner", || ()).unwrap().join().unwrap();
        assert_eq!(
            stages.snapshot()[0].state,
            State::Dead(format!("panicked: fault injected by {FAULT_ENV}")),
            "the thread's panic is caught and recorded"
        );
        stages.stopping();
        stages.thread("other", || Ok::<(), String>(())).unwrap().join().unwrap();
        assert_eq!(stages.snapshot()[1].state, State::Stopped);
    }
}

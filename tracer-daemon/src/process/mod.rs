//! Process metadata: for each traced pid, the Jaeger `Process` its spans carry — the service
//! name and the process tags (host, executable, container, Kubernetes pod).
//!
//! The service name is the first of: `OTEL_SERVICE_NAME`, `JAEGER_SERVICE_NAME` (from
//! `/proc/PID/environ`), the pod's `app.kubernetes.io/name` then `app` label, the executable's
//! name (`/proc/PID/exe`, else `comm`). Tags: `hostname`, `ip`, `tracer.version`,
//! `process.pid`, `process.executable.name`; `container.id` (and `container.runtime` when the
//! cgroup path says) for processes in a container; `k8s.namespace.name`, `k8s.pod.name`,
//! `k8s.pod.uid`, `k8s.container.name` for processes of a known pod, and `k8s.node.name` for
//! every process when pod lookup is on.
//!
//! pid → `/proc/PID/cgroup` → container id and pod uid ([`cgroup`]) → pod ([`pods`]), from a
//! pod list that [`sync`] keeps current in the background (an API server watch, or kubelet
//! polling). `resolve` is a cache read: an entry is re-checked against the process start time
//! at most once a second (a reused pid gets fresh metadata), and an entry whose pod was not
//! known yet is looked up again when the pod list changes.
//!
//! # Wiring it into the daemon
//!
//! ```no_run
//! use std::sync::Arc;
//! use tracer_daemon::{metrics::Registry, model::Process, process};
//!
//! # async fn run(cfg: process::KubernetesConfig, host: tracer_daemon::net::host::HostInfo) -> anyhow::Result<()> {
//! let registry = Registry::new();
//! // Inside the tokio runtime: starts the pod sync when running in Kubernetes (YAML key
//! // `kubernetes`); fails on unusable settings (bad URL, unreadable CA file).
//! let resolver = process::ProcessResolver::spawn(&cfg, host)?;
//! resolver.register_metrics(&registry);
//!
//! // Span assembly names processes through it (a cache read per call):
//! let resolve: Box<dyn Fn(u32) -> Arc<Process> + Send> = resolver.resolve_fn();
//! # let _ = resolve;
//! // When the kernel reports a process exit (sched_process_exit, pid = tgid):
//! resolver.forget(4242);
//! # Ok(()) }
//! ```

pub mod cgroup;
pub mod pods;
pub mod procfs;
pub mod sync;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use crate::config::kubernetes::{KubernetesConfig, PodSource, SourceSettings};
pub use cgroup::{ContainerRef, Runtime, parse_cgroup_file};
pub use pods::{PodList, PodMatch, PodMeta, PodStore};
pub use procfs::{ProcFs, service_from_environ};

use crate::metrics::{Kind, Registry, Sample};
use crate::model::{Process, Tag};

/// The value of the `tracer.version` process tag.
pub const TRACER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A cached entry is checked against the process's start time at most this often.
const REVALIDATE: Duration = Duration::from_secs(1);
/// An exited process's metadata is kept this long for its late spans.
const EXITED_KEEP: Duration = Duration::from_secs(60);
/// Exited entries are swept at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Process tag keys.
pub mod keys {
    pub const HOSTNAME: &str = "hostname";
    pub const IP: &str = "ip";
    pub const TRACER_VERSION: &str = "tracer.version";
    pub const PID: &str = "process.pid";
    pub const EXECUTABLE: &str = "process.executable.name";
    pub const CONTAINER_ID: &str = "container.id";
    pub const CONTAINER_RUNTIME: &str = "container.runtime";
    pub const NAMESPACE: &str = "k8s.namespace.name";
    pub const POD: &str = "k8s.pod.name";
    pub const POD_UID: &str = "k8s.pod.uid";
    pub const CONTAINER: &str = "k8s.container.name";
    pub const NODE: &str = "k8s.node.name";
}

/// The host every traced process runs on.
pub use crate::net::host::HostInfo;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("kubernetes pod source: {0}")]
    Http(#[from] crate::net::http::HttpError),
    #[error("kubernetes pod source: the sync needs a tokio runtime")]
    NoRuntime,
}

/// The service name by precedence: environment, pod label, executable, else `pid-N`.
pub fn service_name(env: Option<&str>, pod_label: Option<&str>, executable: Option<&str>, pid: u32) -> String {
    [env, pod_label, executable]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("pid-{pid}"))
}

/// What `/proc` said about a process when it was first seen.
#[derive(Clone, Debug, Default)]
struct Facts {
    env_service: Option<String>,
    executable: Option<String>,
    container: ContainerRef,
}

struct Entry {
    start_time: Option<u64>,
    checked: Instant,
    exited_at: Option<Instant>,
    facts: Facts,
    /// The pod store generation of the last lookup, while it can still improve (in a
    /// container whose container id was not matched).
    pod_retry_at: Option<u64>,
    process: Arc<Process>,
}

struct Cache {
    entries: HashMap<u32, Entry>,
    last_sweep: Instant,
}

struct Inner {
    procfs: ProcFs,
    host: HostInfo,
    node_name: String,
    pods: Option<Arc<PodStore>>,
    settings: Option<SourceSettings>,
    max_cached: usize,
    cache: Mutex<Cache>,
    sync_task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Reads of `/proc` for the background worker, when it runs (see [`ProcessResolver::start_worker`]).
    work: Mutex<Option<std::sync::mpsc::SyncSender<Work>>>,
    /// Reads the worker's full queue refused.
    work_dropped: crate::metrics::Counter,
}

/// A read of `/proc` for the background worker.
enum Work {
    /// A process opened a connection: read it while it is alive, named by `comm` if it is gone.
    Seen(u32, String),
    /// A span needs the process: read it, or revalidate its cached entry.
    Resolve(u32),
}

/// Reads waiting for the worker; past it a read is dropped (and counted) and the span keeps a
/// provisional name until a later span asks again.
const WORK_QUEUE: usize = 4096;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.sync_task.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// pid → Jaeger `Process`, cached. Clones share the cache and the pod store; the background
/// pod sync stops when the last clone is dropped.
#[derive(Clone)]
pub struct ProcessResolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessResolver")
            .field("proc_root", &self.inner.procfs.root())
            .field("pod_source", &self.inner.settings.as_ref().map(|s| &s.url))
            .finish()
    }
}

impl ProcessResolver {
    /// A resolver reading `cfg.proc_root`, with an (empty) pod store when pod lookup is on
    /// (see [`KubernetesConfig`]); nothing runs in the background until [`Self::start_sync`].
    pub fn new(cfg: &KubernetesConfig, host: HostInfo) -> Self {
        let env = crate::config::kubernetes::process_env;
        let settings = cfg.source_settings(&env, &host.hostname);
        let node_name = cfg.node_name_or(&env, &host.hostname);
        let pods = settings.as_ref().map(|s| Arc::new(PodStore::new(Some(s.node_name.clone()))));
        Self::build(cfg.proc_root.clone(), host, node_name, pods, settings, cfg.max_cached_processes)
    }

    /// [`Self::new`], then [`Self::start_sync`]. Call it inside the tokio runtime.
    pub fn spawn(cfg: &KubernetesConfig, host: HostInfo) -> Result<Self, ProcessError> {
        let r = Self::new(cfg, host);
        r.start_sync()?;
        Ok(r)
    }

    /// A resolver over an explicit proc root and pod store (`None`: no pod lookup). For tests
    /// and for callers that feed the store themselves.
    pub fn with_parts(
        proc_root: impl Into<PathBuf>,
        host: HostInfo,
        node_name: impl Into<String>,
        pods: Option<Arc<PodStore>>,
    ) -> Self {
        let max = KubernetesConfig::default().max_cached_processes;
        Self::build(proc_root.into(), host, node_name.into(), pods, None, max)
    }

    fn build(
        proc_root: PathBuf,
        host: HostInfo,
        node_name: String,
        pods: Option<Arc<PodStore>>,
        settings: Option<SourceSettings>,
        max_cached: usize,
    ) -> Self {
        ProcessResolver {
            inner: Arc::new(Inner {
                procfs: ProcFs::new(proc_root),
                host,
                node_name,
                pods,
                settings,
                max_cached: max_cached.max(1),
                cache: Mutex::new(Cache { entries: HashMap::new(), last_sweep: Instant::now() }),
                sync_task: Mutex::new(None),
                work: Mutex::new(None),
                work_dropped: crate::metrics::Counter::detached(),
            }),
        }
    }

    /// Starts the background pod sync on the current tokio runtime. `Ok(false)` when pod
    /// lookup is off or the sync already runs.
    pub fn start_sync(&self) -> Result<bool, ProcessError> {
        let (Some(settings), Some(store)) = (&self.inner.settings, &self.inner.pods) else { return Ok(false) };
        let mut task = self.inner.sync_task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_some() {
            return Ok(false);
        }
        let client = sync::client(settings)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| ProcessError::NoRuntime)?;
        let handle = rt.spawn(sync::run(settings.clone(), client, store.clone()));
        *task = Some(handle.abort_handle());
        Ok(true)
    }

    /// The pod store, when pod lookup is on.
    pub fn pods(&self) -> Option<&Arc<PodStore>> {
        self.inner.pods.as_ref()
    }

    /// The pod source settings, when pod lookup is on.
    pub fn pod_source(&self) -> Option<&SourceSettings> {
        self.inner.settings.as_ref()
    }

    /// Starts the thread that reads `/proc`: from then on [`Self::seen`] and [`Self::lookup`]
    /// never read it on the caller's thread. The thread (the stage `procfs worker`) ends when
    /// the resolver is dropped.
    pub fn start_worker(&self, stages: &crate::supervise::Stages) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(WORK_QUEUE);
        let weak = Arc::downgrade(&self.inner);
        stages.thread("procfs worker", move || {
            while let Ok(work) = rx.recv() {
                let Some(inner) = weak.upgrade() else { break };
                let r = ProcessResolver { inner };
                match work {
                    Work::Seen(pid, comm) => r.seen_now(pid, &comm),
                    Work::Resolve(pid) => {
                        let _ = r.resolve(pid);
                    }
                }
            }
        })?;
        *self.inner.work.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        Ok(())
    }

    /// Hands `work` to the worker; false when no worker runs. A full queue drops and counts.
    fn queue(&self, work: Work) -> bool {
        let guard = self.inner.work.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return false };
        if tx.try_send(work).is_err() {
            self.inner.work_dropped.inc();
        }
        true
    }

    /// The `Process` of `pid` without touching `/proc` when the worker runs: the cached entry
    /// (a stale one is revalidated in the background), or, for a process not read yet, a
    /// provisional `pid-N` while the worker reads it. Without the worker, [`Self::resolve`].
    pub fn lookup(&self, pid: u32) -> Arc<Process> {
        if self.inner.work.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return self.resolve(pid);
        }
        let now = Instant::now();
        let cached = {
            let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entries.get(&pid).map(|e| {
                let fresh = e.exited_at.is_none() && now.duration_since(e.checked) < REVALIDATE;
                (e.process.clone(), fresh && e.pod_retry_at.is_none())
            })
        };
        match cached {
            Some((process, true)) => process,
            Some((process, false)) => {
                self.queue(Work::Resolve(pid));
                process
            }
            None => {
                self.queue(Work::Resolve(pid));
                Arc::new(Process { service_name: service_name(None, None, None, pid), tags: Vec::new() })
            }
        }
    }

    /// The `Process` of `pid` (a thread group id), reading `/proc` when it is not cached or
    /// due for revalidation.
    pub fn resolve(&self, pid: u32) -> Arc<Process> {
        let inner = &*self.inner;
        let now = Instant::now();
        let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(cache.last_sweep) >= SWEEP_EVERY {
            cache.last_sweep = now;
            cache.entries.retain(|_, e| e.exited_at.is_none_or(|t| now.duration_since(t) < EXITED_KEEP));
        }
        if let Some(e) = cache.entries.get_mut(&pid) {
            let mut same = true;
            if e.exited_at.is_some() || now.duration_since(e.checked) >= REVALIDATE {
                match inner.procfs.start_time(pid) {
                    st if st == e.start_time => {
                        e.checked = now;
                        if st.is_some() {
                            e.exited_at = None;
                        }
                    }
                    // Gone: its late spans keep the metadata it had.
                    None => {
                        e.checked = now;
                        e.exited_at.get_or_insert(now);
                    }
                    Some(_) => same = false,
                }
            }
            if same {
                self.retry_pod(pid, e);
                return e.process.clone();
            }
        }
        let start_time = inner.procfs.start_time(pid);
        let facts = self.read_facts(pid);
        let mut entry = Entry {
            start_time,
            checked: now,
            exited_at: start_time.is_none().then_some(now),
            facts,
            pod_retry_at: None,
            process: Arc::new(Process { service_name: String::new(), tags: Vec::new() }),
        };
        self.describe(pid, &mut entry, true);
        let process = entry.process.clone();
        if cache.entries.len() >= inner.max_cached && !cache.entries.contains_key(&pid) {
            self.make_room(&mut cache);
        }
        cache.entries.insert(pid, entry);
        process
    }

    /// A process the kernel saw open a connection, with its command name: resolved now, while
    /// it is most likely alive. When `/proc` has no trace of it any more (a short-lived client
    /// that exited before its first event was read), it is named by the kernel's command name
    /// rather than `pid-N`.
    pub fn seen(&self, pid: u32, comm: &str) {
        if !self.queue(Work::Seen(pid, comm.to_owned())) {
            self.seen_now(pid, comm);
        }
    }

    fn seen_now(&self, pid: u32, comm: &str) {
        let _ = self.resolve(pid);
        if comm.is_empty() {
            return;
        }
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cache.entries.get_mut(&pid)
            && e.facts.executable.is_none()
        {
            e.facts.executable = Some(comm.to_owned());
            self.describe(pid, e, false);
        }
    }

    /// A boxed [`Self::lookup`] for span assembly.
    pub fn resolve_fn(&self) -> Box<dyn Fn(u32) -> Arc<Process> + Send> {
        let r = self.clone();
        Box::new(move |pid| r.lookup(pid))
    }

    /// The process exited: its metadata is kept a little longer for late spans, then dropped.
    pub fn forget(&self, pid: u32) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cache.entries.get_mut(&pid) {
            e.exited_at.get_or_insert_with(Instant::now);
        }
    }

    /// Processes cached.
    pub fn cached(&self) -> usize {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner()).entries.len()
    }

    /// Exports the cache size and the pod sync's state:
    /// `tracer_process_cache_entries`, `tracer_k8s_pods`, `tracer_k8s_synced`,
    /// `tracer_k8s_lists_total{result}`, `tracer_k8s_watch_events_total`,
    /// `tracer_k8s_watch_failures_total`.
    pub fn register_metrics(&self, registry: &Registry) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        registry.add_collector(move |out: &mut Vec<Sample>| {
            let Some(inner) = weak.upgrade() else { return };
            out.push(Sample::new(
                "tracer_process_dropped_total",
                "Reads of /proc the metadata worker's full queue refused, by reason (the span keeps a provisional name)",
                Kind::Counter,
                &[("reason", "queue_full")],
                inner.work_dropped.get() as f64,
            ));
            let resolver = ProcessResolver { inner };
            out.push(Sample::new(
                "tracer_process_cache_entries",
                "Processes whose metadata is cached.",
                Kind::Gauge,
                &[],
                resolver.cached() as f64,
            ));
            let Some(store) = resolver.pods() else { return };
            use std::sync::atomic::Ordering::Relaxed;
            let st = &store.stats;
            out.push(Sample::new(
                "tracer_k8s_pods",
                "Pods of this node known to the daemon.",
                Kind::Gauge,
                &[],
                store.len() as f64,
            ));
            out.push(Sample::new(
                "tracer_k8s_synced",
                "1 once the node's pod list has been received.",
                Kind::Gauge,
                &[],
                if store.synced() { 1.0 } else { 0.0 },
            ));
            for (result, v) in [("ok", &st.lists_ok), ("failed", &st.lists_failed)] {
                out.push(Sample::new(
                    "tracer_k8s_lists_total",
                    "Pod lists requested, by result.",
                    Kind::Counter,
                    &[("result", result)],
                    v.load(Relaxed) as f64,
                ));
            }
            out.push(Sample::new(
                "tracer_k8s_watch_events_total",
                "Pod watch events received.",
                Kind::Counter,
                &[],
                st.watch_events.load(Relaxed) as f64,
            ));
            out.push(Sample::new(
                "tracer_k8s_watch_failures_total",
                "Pod watches that failed.",
                Kind::Counter,
                &[],
                st.watch_failed.load(Relaxed) as f64,
            ));
        });
    }

    fn read_facts(&self, pid: u32) -> Facts {
        let fs = &self.inner.procfs;
        Facts {
            env_service: fs.environ(pid).and_then(|e| service_from_environ(&e)),
            executable: fs.executable_name(pid),
            container: fs.cgroup(pid).map(|t| parse_cgroup_file(&t)).unwrap_or_default(),
        }
    }

    /// Looks the pod up again when the pod list changed since the last lookup missed.
    fn retry_pod(&self, pid: u32, e: &mut Entry) {
        let (Some(at), Some(store)) = (e.pod_retry_at, &self.inner.pods) else { return };
        if store.generation() != at {
            self.describe(pid, e, false);
        }
    }

    /// Sets `e.process` from its facts and the current pod store. On a process's first miss
    /// the pod sync is asked to list again soon (kubelet source); later retries only wait for
    /// changes, so a container that belongs to no pod cannot keep the sync busy.
    fn describe(&self, pid: u32, e: &mut Entry, first: bool) {
        let inner = &*self.inner;
        let f = &e.facts;
        let mut pod = None;
        e.pod_retry_at = None;
        if let Some(store) = &inner.pods
            && !f.container.is_empty()
        {
            let generation = store.generation();
            pod = store.lookup(&f.container);
            let complete = pod.as_ref().is_some_and(|m| m.container_name.is_some());
            if !complete && f.container.container_id.is_some() {
                e.pod_retry_at = Some(generation);
                if first {
                    store.refresh.notify_one();
                }
            }
        }
        let service = service_name(
            f.env_service.as_deref(),
            pod.as_ref().and_then(|m| m.pod.service.as_deref()),
            f.executable.as_deref(),
            pid,
        );
        let mut tags = vec![
            Tag::str(keys::HOSTNAME, &inner.host.hostname),
            Tag::str(keys::IP, &inner.host.ip),
            Tag::str(keys::TRACER_VERSION, TRACER_VERSION),
            Tag::long(keys::PID, i64::from(pid)),
        ];
        if let Some(exe) = &f.executable {
            tags.push(Tag::str(keys::EXECUTABLE, exe));
        }
        if let Some(id) = &f.container.container_id {
            tags.push(Tag::str(keys::CONTAINER_ID, id));
        }
        if let Some(rt) = pod.as_ref().and_then(|m| m.runtime).or(f.container.runtime) {
            tags.push(Tag::str(keys::CONTAINER_RUNTIME, rt.as_str()));
        }
        if let Some(m) = &pod {
            tags.push(Tag::str(keys::NAMESPACE, &m.pod.namespace));
            tags.push(Tag::str(keys::POD, &m.pod.name));
            tags.push(Tag::str(keys::POD_UID, &m.pod.uid));
            if let Some(c) = &m.container_name {
                tags.push(Tag::str(keys::CONTAINER, c));
            }
        }
        // On a Kubernetes node every process runs on that node, pod or not.
        if inner.pods.is_some() {
            tags.push(Tag::str(keys::NODE, &inner.node_name));
        }
        e.process = Arc::new(Process { service_name: service, tags });
    }

    /// Frees cache space: exited processes first, then those no longer in `/proc`, else all.
    fn make_room(&self, cache: &mut Cache) {
        let fs = &self.inner.procfs;
        cache.entries.retain(|_, e| e.exited_at.is_none());
        if cache.entries.len() >= self.inner.max_cached {
            cache.entries.retain(|pid, _| fs.exists(*pid));
        }
        if cache.entries.len() >= self.inner.max_cached {
            tracing::debug!(entries = cache.entries.len(), "process cache full; cleared");
            cache.entries.clear();
        }
    }
}

//! The node's pods: the `PodList` / watch-event JSON of the kubelet and the API server, an
//! index from container id and pod uid to the few pod fields spans carry, and the shared store
//! the background sync writes and span assembly reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use super::cgroup::{ContainerRef, Runtime};

/// Labels that name a pod's service, strongest first.
pub const SERVICE_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// `v1.PodList`, the fields used here (others are ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodList {
    pub metadata: ListMeta,
    pub items: Vec<Pod>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    pub resource_version: Option<String>,
}

/// `v1.Pod`, the fields used here.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    pub node_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    pub container_statuses: Vec<ContainerStatus>,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    /// `<runtime>://<id>`, e.g. `containerd://3f1c…`; absent until the container is created.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
}

/// `v1.Status`, as an `ERROR` watch event carries it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// One line of a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// `ADDED` or `MODIFIED`.
    Upsert(Pod),
    Deleted(Pod),
    /// A progress marker carrying only a resource version.
    Bookmark(Option<String>),
    /// The watch failed; `410 Gone` means the resource version is too old: list again.
    Error(Status),
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// Parses one watch event (one JSON object per line).
pub fn parse_watch_event(line: &[u8]) -> Result<WatchEvent, serde_json::Error> {
    let raw: RawEvent = serde_json::from_slice(line)?;
    Ok(match raw.kind.as_str() {
        "ADDED" | "MODIFIED" => WatchEvent::Upsert(serde_json::from_value(raw.object)?),
        "DELETED" => WatchEvent::Deleted(serde_json::from_value(raw.object)?),
        "BOOKMARK" => WatchEvent::Bookmark(serde_json::from_value::<Pod>(raw.object)?.metadata.resource_version),
        _ => WatchEvent::Error(serde_json::from_value(raw.object).unwrap_or_default()),
    })
}

/// What spans carry about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The first of `SERVICE_LABELS` set on the pod.
    pub service: Option<String>,
}

/// A pod (and, when the container id matched, the container) a process belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMatch {
    pub pod: Arc<PodMeta>,
    pub container_name: Option<String>,
    pub runtime: Option<Runtime>,
}

/// Splits `containerd://ID` into the runtime and the id.
pub fn split_container_id(s: &str) -> (Option<Runtime>, &str) {
    match s.split_once("://") {
        Some((scheme, id)) => (Runtime::from_scheme(scheme), id),
        None => (None, s),
    }
}

/// Pods by uid and containers by id.
#[derive(Clone, Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, Arc<PodMeta>>,
    /// Container id → (pod uid, container name, runtime).
    containers: HashMap<String, (String, String, Option<Runtime>)>,
}

impl PodIndex {
    pub fn from_list(list: &PodList, node: Option<&str>) -> Self {
        let mut index = PodIndex::default();
        for pod in &list.items {
            if on_node(pod, node) {
                index.upsert(pod);
            }
        }
        index
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Adds or replaces a pod and its containers.
    pub fn upsert(&mut self, pod: &Pod) {
        let uid = &pod.metadata.uid;
        if uid.is_empty() {
            return;
        }
        self.remove(uid);
        let meta = PodMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: uid.clone(),
            service: SERVICE_LABELS.iter().find_map(|l| pod.metadata.labels.get(*l).filter(|v| !v.is_empty()).cloned()),
        };
        self.pods.insert(uid.clone(), Arc::new(meta));
        let s = &pod.status;
        for c in s.container_statuses.iter().chain(&s.init_container_statuses).chain(&s.ephemeral_container_statuses) {
            let Some(full) = c.container_id.as_deref() else { continue };
            let (runtime, id) = split_container_id(full);
            if !id.is_empty() {
                self.containers.insert(id.to_owned(), (uid.clone(), c.name.clone(), runtime));
            }
        }
    }

    pub fn remove(&mut self, uid: &str) {
        if self.pods.remove(uid).is_some() {
            self.containers.retain(|_, (pod, _, _)| pod != uid);
        }
    }

    /// The pod of a container: by container id, else by the pod uid from the cgroup path
    /// (then without a container name).
    pub fn lookup(&self, c: &ContainerRef) -> Option<PodMatch> {
        if let Some(id) = &c.container_id
            && let Some((uid, name, runtime)) = self.containers.get(id)
            && let Some(pod) = self.pods.get(uid)
        {
            return Some(PodMatch {
                pod: pod.clone(),
                container_name: Some(name.clone()),
                runtime: c.runtime.or(*runtime),
            });
        }
        let pod = self.pods.get(c.pod_uid.as_deref()?)?;
        Some(PodMatch { pod: pod.clone(), container_name: None, runtime: c.runtime })
    }
}

fn on_node(pod: &Pod, node: Option<&str>) -> bool {
    match (node, pod.spec.node_name.as_deref()) {
        (Some(want), Some(have)) if !have.is_empty() => want == have,
        _ => true,
    }
}

/// The pod index shared by the background sync (writer) and the resolver (readers), with a
/// generation that changes on every write so cached lookups that missed can be retried.
#[derive(Debug)]
pub struct PodStore {
    index: RwLock<PodIndex>,
    node: Option<String>,
    generation: AtomicU64,
    synced: AtomicBool,
    changed: tokio::sync::watch::Sender<u64>,
    /// Asks the sync to list again soon (an unknown container showed up).
    pub(crate) refresh: tokio::sync::Notify,
    pub(crate) stats: SyncStats,
}

/// Counters of the background sync, exported as metrics.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub lists_ok: AtomicU64,
    pub lists_failed: AtomicU64,
    pub watch_events: AtomicU64,
    pub watch_failed: AtomicU64,
}

impl PodStore {
    /// An empty store for the pods of `node` (`None`: pods are not filtered by node).
    pub fn new(node: Option<String>) -> Self {
        PodStore {
            index: RwLock::new(PodIndex::default()),
            node,
            generation: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            changed: tokio::sync::watch::channel(0).0,
            refresh: tokio::sync::Notify::new(),
            stats: SyncStats::default(),
        }
    }

    fn write(&self, f: impl FnOnce(&mut PodIndex)) {
        {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            f(&mut index);
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
    }

    /// Replaces everything with a fresh list.
    pub fn replace(&self, list: &PodList) {
        let fresh = PodIndex::from_list(list, self.node.as_deref());
        self.synced.store(true, Ordering::Release);
        self.write(|index| *index = fresh);
    }

    /// Applies one watch event.
    pub fn apply(&self, event: &WatchEvent) {
        match event {
            WatchEvent::Upsert(pod) if on_node(pod, self.node.as_deref()) => self.write(|i| i.upsert(pod)),
            WatchEvent::Upsert(pod) | WatchEvent::Deleted(pod) => self.write(|i| i.remove(&pod.metadata.uid)),
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => {}
        }
    }

    pub fn lookup(&self, c: &ContainerRef) -> Option<PodMatch> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).lookup(c)
    }

    /// Bumped by every change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a full list has been received at least once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receives the generation after each change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_WEB: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const ID_SIDECAR: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    const ID_INIT: &str = "3333333333333333333333333333333333333333333333333333333333333333";

    /// A kubelet `/pods` answer, trimmed to a realistic subset of fields.
    pub(crate) fn kubelet_pod_list() -> String {
        format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":[
  {{"metadata":{{"name":"web-7d9f8","generateName":"web-","namespace":"shop","uid":"aaaaaaaa-0000-4000-8000-000000000001",
     "labels":{{"app.kubernetes.io/name":"storefront","app":"web","pod-template-hash":"7d9f8"}},
     "annotations":{{"kubernetes.io/config.seen":"2024-01-01T00:00:00Z"}}}},
   "spec":{{"nodeName":"node-1","containers":[{{"name":"web","image":"web:1"}},{{"name":"envoy","image":"envoy:1"}}]}},
   "status":{{"phase":"Running","hostIP":"10.0.0.5","podIP":"10.244.1.7",
     "initContainerStatuses":[{{"name":"migrate","containerID":"containerd://{ID_INIT}","ready":false,"restartCount":0}}],
     "containerStatuses":[
       {{"name":"web","containerID":"containerd://{ID_WEB}","ready":true,"restartCount":0,"state":{{"running":{{}}}}}},
       {{"name":"envoy","containerID":"containerd://{ID_SIDECAR}","ready":true,"restartCount":1}}]}}}},
  {{"metadata":{{"name":"cache-0","namespace":"shop","uid":"aaaaaaaa-0000-4000-8000-000000000002","labels":{{"app":"redis"}}}},
   "spec":{{"nodeName":"node-1"}},
   "status":{{"phase":"Pending","containerStatuses":[{{"name":"redis","state":{{"waiting":{{"reason":"ContainerCreating"}}}}}}]}}}},
  {{"metadata":{{"name":"elsewhere","namespace":"x","uid":"aaaaaaaa-0000-4000-8000-000000000003"}},
   "spec":{{"nodeName":"node-2"}},"status":{{}}}}
]}}"#
        )
    }

    fn cref(id: Option<&str>, uid: Option<&str>) -> ContainerRef {
        ContainerRef { container_id: id.map(Into::into), pod_uid: uid.map(Into::into), runtime: None }
    }

    #[test]
    fn a_pod_list_indexes_containers_by_id_and_pods_by_uid() {
        let list: PodList = serde_json::from_str(&kubelet_pod_list()).unwrap();
        let index = PodIndex::from_list(&list, Some("node-1"));
        assert_eq!(index.len(), 2, "the pod of node-2 is left out");
        let web = index.lookup(&cref(Some(ID_WEB), None)).unwrap();
        assert_eq!((web.pod.name.as_str(), web.pod.namespace.as_str()), ("web-7d9f8", "shop"));
        assert_eq!(web.pod.service.as_deref(), Some("storefront"), "app.kubernetes.io/name wins over app");
        assert_eq!((web.container_name.as_deref(), web.runtime), (Some("web"), Some(Runtime::Containerd)));
        let sidecar = index.lookup(&cref(Some(ID_SIDECAR), None)).unwrap();
        assert_eq!(sidecar.container_name.as_deref(), Some("envoy"));
        assert_eq!(index.lookup(&cref(Some(ID_INIT), None)).unwrap().container_name.as_deref(), Some("migrate"));
        // A container not listed yet: found by the pod uid of its cgroup path, without a name.
        let pending = index.lookup(&cref(Some(&"9".repeat(64)), Some("aaaaaaaa-0000-4000-8000-000000000002"))).unwrap();
        assert_eq!((pending.pod.service.as_deref(), pending.container_name), (Some("redis"), None));
        assert_eq!(index.lookup(&cref(Some(&"9".repeat(64)), None)), None);
        assert_eq!(index.lookup(&cref(None, None)), None);
    }

    #[test]
    fn watch_events_add_modify_and_delete() {
        let store = PodStore::new(Some("node-1".into()));
        let mut seen = store.subscribe();
        store.replace(&serde_json::from_str(&kubelet_pod_list()).unwrap());
        assert!(store.synced() && seen.has_changed().unwrap());
        seen.mark_unchanged();
        let added = format!(
            r#"{{"type":"ADDED","object":{{"kind":"Pod","metadata":{{"name":"api-1","namespace":"shop","uid":"u-4","resourceVersion":"42"}},"spec":{{"nodeName":"node-1"}},"status":{{"containerStatuses":[{{"name":"api","containerID":"cri-o://{}"}}]}}}}}}"#,
            "4".repeat(64)
        );
        let ev = parse_watch_event(added.as_bytes()).unwrap();
        store.apply(&ev);
        assert!(seen.has_changed().unwrap());
        let m = store.lookup(&cref(Some(&"4".repeat(64)), None)).unwrap();
        assert_eq!((m.pod.name.as_str(), m.runtime, m.pod.service.as_deref()), ("api-1", Some(Runtime::CriO), None));

        // MODIFIED replaces the pod's containers (a restart gets a new id).
        let modified = format!(
            r#"{{"type":"MODIFIED","object":{{"metadata":{{"name":"api-1","namespace":"shop","uid":"u-4","labels":{{"app":"api"}}}},"spec":{{"nodeName":"node-1"}},"status":{{"containerStatuses":[{{"name":"api","containerID":"cri-o://{}"}}]}}}}}}"#,
            "5".repeat(64)
        );
        store.apply(&parse_watch_event(modified.as_bytes()).unwrap());
        assert_eq!(store.lookup(&cref(Some(&"4".repeat(64)), None)), None);
        assert_eq!(store.lookup(&cref(Some(&"5".repeat(64)), None)).unwrap().pod.service.as_deref(), Some("api"));

        let deleted = r#"{"type":"DELETED","object":{"metadata":{"name":"api-1","namespace":"shop","uid":"u-4"}}}"#;
        store.apply(&parse_watch_event(deleted.as_bytes()).unwrap());
        assert_eq!(store.lookup(&cref(Some(&"5".repeat(64)), None)), None);
        assert_eq!(store.len(), 2);

        // A pod moved off this node (or never on it) is dropped.
        let other = r#"{"type":"ADDED","object":{"metadata":{"name":"web-7d9f8","uid":"aaaaaaaa-0000-4000-8000-000000000001"},"spec":{"nodeName":"node-9"}}}"#;
        store.apply(&parse_watch_event(other.as_bytes()).unwrap());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn bookmarks_and_errors_parse() {
        let b =
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12345"}}}"#;
        assert_eq!(parse_watch_event(b.as_bytes()).unwrap(), WatchEvent::Bookmark(Some("12345".into())));
        let e = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"#;
        match parse_watch_event(e.as_bytes()).unwrap() {
            WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
            other => panic!("{other:?}"),
        }
        assert!(parse_watch_event(b"{not json").is_err());
        assert!(parse_watch_event(br#"{"type":"ADDED","object":{"metadata":{"name":7}}}"#).is_err());
    }
}

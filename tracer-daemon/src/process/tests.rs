//! Resolver tests over a proc tree built in a temporary directory, and the pod sync against
//! an API server and a kubelet served on 127.0.0.1 inside the test.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::model::TagValue;

const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID: &str = "5d1e0c2a-7b3f-4e9a-8c6d-2f4b1a0e9d8c";

/// A fake `/proc` under a temporary directory, removed on drop.
struct FakeProc {
    root: PathBuf,
}

impl FakeProc {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("tracer-proc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeProc { root }
    }

    /// Writes a process: start time, environment, command name, executable path, cgroup file.
    fn add(&self, pid: u32, start: u64, environ: &[&str], comm: &str, exe: Option<&str>, cgroup: &str) {
        let dir = self.root.join(pid.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let stat = format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10");
        std::fs::write(dir.join("stat"), stat).unwrap();
        let env: Vec<u8> = environ.iter().flat_map(|e| e.bytes().chain([0])).collect();
        std::fs::write(dir.join("environ"), env).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
    }

    fn remove(&self, pid: u32) {
        std::fs::remove_dir_all(self.root.join(pid.to_string())).unwrap();
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn containerd_cgroup(uid: &str, cid: &str) -> String {
    format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{cid}.scope\n",
        uid.replace('-', "_")
    )
}

fn pod_json(name: &str, uid: &str, labels: &str, container: &str, cid: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"shop","uid":"{uid}","resourceVersion":"7","labels":{{{labels}}}}},"spec":{{"nodeName":"node-1"}},"status":{{"containerStatuses":[{{"name":"{container}","containerID":"containerd://{cid}"}}]}}}}"#
    )
}

fn pod_list(items: &[String], rv: &str) -> String {
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn tag<'a>(p: &'a Process, key: &str) -> Option<&'a TagValue> {
    p.tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

fn tag_str<'a>(p: &'a Process, key: &str) -> Option<&'a str> {
    match tag(p, key) {
        Some(TagValue::Str(s)) => Some(s),
        _ => None,
    }
}

fn host() -> HostInfo {
    HostInfo::new("node-1.example", "10.0.0.5")
}

#[test]
fn service_name_precedence() {
    let cases = [
        ((Some("otel"), Some("label"), Some("exe")), "otel"),
        ((None, Some("label"), Some("exe")), "label"),
        ((None, None, Some("exe")), "exe"),
        ((Some(" "), Some(""), Some("exe")), "exe"),
        ((None, None, None), "pid-42"),
    ];
    for ((env, label, exe), want) in cases {
        assert_eq!(service_name(env, label, exe, 42), want, "{env:?} {label:?} {exe:?}");
    }
}

#[test]
fn host_detection() {
    let h = HostInfo::detect();
    assert!(!h.hostname.is_empty());
    assert!(h.ip.parse::<std::net::IpAddr>().is_ok(), "{}", h.ip);
}

#[test]
fn names_and_tags_from_proc_and_the_pod_list() {
    let fake = FakeProc::new("names");
    let other_cid = "f".repeat(64);
    let store = Arc::new(PodStore::new(Some("node-1".into())));
    let list = pod_list(
        &[
            pod_json("web-1", UID, r#""app.kubernetes.io/name":"storefront","app":"web""#, "web", CID),
            pod_json("worker-1", "5d1e0c2a-7b3f-4e9a-8c6d-000000000002", "", "worker", &other_cid),
        ],
        "9",
    );
    store.replace(&serde_json::from_str(&list).unwrap());
    let r = ProcessResolver::with_parts(&fake.root, host(), "node-1", Some(store));

    // Environment beats the pod label.
    fake.add(
        100,
        1,
        &["PATH=/bin", "JAEGER_SERVICE_NAME=checkout"],
        "web",
        Some("/app/web"),
        &containerd_cgroup(UID, CID),
    );
    // The pod label beats the executable.
    fake.add(101, 1, &["PATH=/bin"], "web", Some("/app/web"), &containerd_cgroup(UID, CID));
    // No label: the executable; its container still tagged.
    fake.add(
        102,
        1,
        &[],
        "worker",
        Some("/usr/bin/worker (deleted)"),
        &containerd_cgroup("5d1e0c2a-7b3f-4e9a-8c6d-000000000002", &other_cid),
    );
    // A host process: comm when exe is unreadable, no container or pod tags.
    fake.add(103, 1, &["OTEL_SERVICE_NAME="], "cron", None, "0::/system.slice/cron.service\n");

    let p = r.resolve(100);
    assert_eq!(p.service_name, "checkout");
    assert_eq!(tag_str(&p, keys::POD), Some("web-1"));
    assert_eq!(tag_str(&p, keys::NAMESPACE), Some("shop"));
    assert_eq!(tag_str(&p, keys::POD_UID), Some(UID));
    assert_eq!(tag_str(&p, keys::CONTAINER), Some("web"));
    assert_eq!(tag_str(&p, keys::NODE), Some("node-1"));
    assert_eq!(tag_str(&p, keys::CONTAINER_ID), Some(CID));
    assert_eq!(tag_str(&p, keys::CONTAINER_RUNTIME), Some("containerd"));
    assert_eq!(tag_str(&p, keys::HOSTNAME), Some("node-1.example"));
    assert_eq!(tag_str(&p, keys::IP), Some("10.0.0.5"));
    assert_eq!(tag_str(&p, keys::TRACER_VERSION), Some(TRACER_VERSION));
    assert_eq!(tag_str(&p, keys::EXECUTABLE), Some("web"));
    assert_eq!(tag(&p, keys::PID), Some(&TagValue::Long(100)));

    assert_eq!(r.resolve(101).service_name, "storefront");
    let worker = r.resolve(102);
    assert_eq!((worker.service_name.as_str(), tag_str(&worker, keys::CONTAINER)), ("worker", Some("worker")));
    let cron = r.resolve(103);
    assert_eq!(cron.service_name, "cron");
    for k in [keys::POD, keys::CONTAINER_ID] {
        assert_eq!(tag(&cron, k), None, "{k}");
    }
    // Host processes of a Kubernetes node carry the node.
    assert_eq!(tag_str(&cron, keys::NODE), Some("node-1"));
    // A pid that never existed.
    assert_eq!(r.resolve(999).service_name, "pid-999");
    // One gone before it was read is named by the kernel's command name.
    r.seen(998, "curl");
    assert_eq!(r.resolve(998).service_name, "curl");

    // Cached: the same allocation comes back.
    assert!(Arc::ptr_eq(&r.resolve(100), &p));
}

#[test]
fn without_pod_lookup_processes_are_named_from_proc_only() {
    let fake = FakeProc::new("nopods");
    fake.add(200, 5, &[], "api", Some("/srv/api"), &containerd_cgroup(UID, CID));
    let r = ProcessResolver::with_parts(&fake.root, host(), "node-1", None);
    let p = r.resolve(200);
    assert_eq!(p.service_name, "api");
    assert_eq!(tag_str(&p, keys::CONTAINER_ID), Some(CID));
    assert_eq!(tag(&p, keys::POD), None);
    assert_eq!(tag(&p, keys::NODE), None);
}

#[test]
fn pid_reuse_exit_and_late_spans() {
    let fake = FakeProc::new("reuse");
    let r = ProcessResolver::with_parts(&fake.root, host(), "n", None);
    fake.add(300, 10, &["OTEL_SERVICE_NAME=first"], "a", None, "0::/\n");
    assert_eq!(r.resolve(300).service_name, "first");
    // The process exits: its late spans keep its name.
    r.forget(300);
    fake.remove(300);
    assert_eq!(r.resolve(300).service_name, "first");
    // The pid is reused by a process started later: named afresh.
    fake.add(300, 20, &["OTEL_SERVICE_NAME=second"], "b", None, "0::/\n");
    assert_eq!(r.resolve(300).service_name, "second");
    // Forgetting a live process only marks it: still alive with the same start, kept.
    r.forget(300);
    assert_eq!(r.resolve(300).service_name, "second");
    assert_eq!(r.cached(), 1);
}

#[test]
fn reuse_is_noticed_without_an_exit_report_after_the_revalidation_period() {
    let fake = FakeProc::new("revalidate");
    let r = ProcessResolver::with_parts(&fake.root, host(), "n", None);
    fake.add(310, 10, &["OTEL_SERVICE_NAME=old"], "a", None, "0::/\n");
    assert_eq!(r.resolve(310).service_name, "old");
    fake.add(310, 11, &["OTEL_SERVICE_NAME=new"], "a", None, "0::/\n");
    // Within the period the cache answers without touching /proc.
    assert_eq!(r.resolve(310).service_name, "old");
    let deadline = std::time::Instant::now() + REVALIDATE * 5;
    while r.resolve(310).service_name != "new" {
        assert!(std::time::Instant::now() < deadline, "reuse not noticed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pod_listed_after_its_process_was_seen_is_picked_up() {
    let fake = FakeProc::new("late");
    let store = Arc::new(PodStore::new(Some("node-1".into())));
    let r = ProcessResolver::with_parts(&fake.root, host(), "node-1", Some(store.clone()));
    fake.add(400, 1, &[], "server", Some("/bin/server"), &containerd_cgroup(UID, CID));
    let before = r.resolve(400);
    assert_eq!((before.service_name.as_str(), tag(&before, keys::POD)), ("server", None));
    let watch = format!(r#"{{"type":"ADDED","object":{}}}"#, pod_json("late-1", UID, r#""app":"late""#, "main", CID));
    store.apply(&pods::parse_watch_event(watch.as_bytes()).unwrap());
    let after = r.resolve(400);
    assert_eq!(after.service_name, "late");
    assert_eq!(tag_str(&after, keys::CONTAINER), Some("main"));
    // Complete now: further calls are plain cache reads.
    assert!(Arc::ptr_eq(&after, &r.resolve(400)));
}

#[test]
fn a_full_cache_drops_exited_processes_first() {
    let fake = FakeProc::new("full");
    let cfg = KubernetesConfig {
        proc_root: fake.root.clone(),
        max_cached_processes: 3,
        enabled: Some(false),
        ..Default::default()
    };
    let r = ProcessResolver::new(&cfg, host());
    for pid in 1..=3 {
        fake.add(pid, 1, &[], "p", None, "0::/\n");
        r.resolve(pid);
    }
    r.forget(2);
    fake.add(4, 1, &[], "p", None, "0::/\n");
    r.resolve(4);
    assert_eq!(r.cached(), 3);
    fake.add(5, 1, &[], "p", None, "0::/\n");
    r.resolve(5);
    assert!(r.cached() <= 3);
}

#[test]
fn this_process_resolves_from_the_real_proc() {
    let r = ProcessResolver::new(&KubernetesConfig { enabled: Some(false), ..Default::default() }, host());
    assert!(r.pods().is_none());
    let p = r.resolve(std::process::id());
    assert!(!p.service_name.is_empty() && !p.service_name.starts_with("pid-"), "{}", p.service_name);
    let reg = Registry::new();
    r.register_metrics(&reg);
    assert!(reg.render().contains("tracer_process_cache_entries 1"), "{}", reg.render());
}

/// A fake API server / kubelet on 127.0.0.1: answers by path, records request heads.
struct FakeKube {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `answer(head, n)` returns the response for the n-th request (0-based) and whether to keep
/// the connection open afterwards (a watch that stays quiet).
async fn fake_kube(answer: impl Fn(&str, usize) -> (Vec<u8>, bool) + Send + Sync + 'static) -> FakeKube {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 4096];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let n = {
                let mut log = log.lock().unwrap();
                log.push(head.clone());
                log.len() - 1
            };
            let (reply, keep) = answer(&head, n);
            let _ = s.write_all(&reply).await;
            if keep {
                held.push(s);
            }
        }
    });
    FakeKube { url, requests, task }
}

fn json_reply(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// A chunked watch response carrying `events`, one per chunk, left open.
fn watch_reply(events: &[String]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for e in events {
        let line = format!("{e}\n");
        out.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
    }
    out
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool, store: &PodStore) {
    let mut changes = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        let _ = tokio::time::timeout(left, changes.changed()).await;
    }
}

fn token_file(name: &str) -> (PathBuf, impl Drop) {
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let p = std::env::temp_dir().join(format!("tracer-token-{name}-{}", std::process::id()));
    std::fs::write(&p, "tok-123\n").unwrap();
    (p.clone(), Cleanup(p))
}

#[tokio::test]
async fn api_server_list_then_watch_keeps_the_store_current() {
    let fake = FakeProc::new("apiwatch");
    fake.add(500, 1, &[], "server", Some("/bin/server"), &containerd_cgroup(UID, CID));
    let list = pod_list(&[pod_json("old-1", "5d1e0c2a-7b3f-4e9a-8c6d-000000000009", "", "x", &"e".repeat(64))], "100");
    let added = format!(r#"{{"type":"ADDED","object":{}}}"#, pod_json("web-1", UID, r#""app":"web""#, "web", CID));
    let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"150"}}}"#.to_owned();
    let kube = fake_kube(move |head, _| {
        if head.contains("watch=true") {
            (watch_reply(&[added.clone(), bookmark.clone()]), true)
        } else {
            (json_reply(&list), false)
        }
    })
    .await;
    let (token, _cleanup) = token_file("api");
    let cfg = KubernetesConfig {
        api_url: Some(kube.url.clone()),
        node_name: Some("node-1".into()),
        token_file: token,
        proc_root: fake.root.clone(),
        ..Default::default()
    };
    let r = ProcessResolver::spawn(&cfg, host()).unwrap();
    assert!(!r.start_sync().unwrap(), "already running");
    let store = r.pods().unwrap().clone();
    wait_until("the watched pod", || r.resolve(500).service_name == "web", &store).await;
    assert_eq!(store.len(), 2);
    let p = r.resolve(500);
    assert_eq!(tag_str(&p, keys::POD), Some("web-1"));

    let reqs = kube.requests.lock().unwrap().clone();
    assert!(reqs[0].starts_with("GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1 HTTP/1.1\r\n"), "{}", reqs[0]);
    assert!(reqs[0].contains("Authorization: Bearer tok-123\r\n"), "{}", reqs[0]);
    assert!(reqs[1].contains("watch=true") && reqs[1].contains("resourceVersion=100"), "{}", reqs[1]);

    let reg = Registry::new();
    r.register_metrics(&reg);
    let text = reg.render();
    for want in [
        "tracer_k8s_pods 2",
        "tracer_k8s_synced 1",
        "tracer_k8s_lists_total{result=\"ok\"} 1",
        "tracer_k8s_watch_events_total 2",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

#[tokio::test]
async fn an_expired_watch_lists_again() {
    let list1 = pod_list(&[], "1");
    let list2 = pod_list(&[pod_json("web-1", UID, "", "web", CID)], "2");
    let gone =
        r#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#.to_owned();
    let kube = fake_kube(move |head, n| match (head.contains("watch=true"), n) {
        (false, 0) => (json_reply(&list1), false),
        (true, 1) => (watch_reply(std::slice::from_ref(&gone)), false),
        (false, _) => (json_reply(&list2), false),
        (true, _) => (watch_reply(&[]), true),
    })
    .await;
    let cfg =
        KubernetesConfig { api_url: Some(kube.url.clone()), node_name: Some("node-1".into()), ..Default::default() };
    let r = ProcessResolver::spawn(&cfg, host()).unwrap();
    let store = r.pods().unwrap().clone();
    wait_until("the second list", || store.len() == 1, &store).await;
    let reqs = kube.requests.lock().unwrap().clone();
    assert!(!reqs[2].contains("watch=true"), "{reqs:?}");
}

#[tokio::test]
async fn kubelet_source_lists_again_when_an_unknown_container_shows_up() {
    let fake = FakeProc::new("kubelet");
    fake.add(600, 1, &[], "server", Some("/bin/server"), &containerd_cgroup(UID, CID));
    let empty = pod_list(&[], "");
    let full = pod_list(&[pod_json("web-1", UID, r#""app":"web""#, "web", CID)], "");
    let kube = fake_kube(move |head, n| {
        assert!(head.starts_with("GET /pods HTTP/1.1\r\n"), "{head}");
        (json_reply(if n == 0 { &empty } else { &full }), false)
    })
    .await;
    let cfg = KubernetesConfig {
        source: PodSource::Kubelet,
        kubelet_url: Some(kube.url.clone()),
        node_name: Some("node-1".into()),
        // Far beyond the test's deadline: only the miss can trigger the second list.
        kubelet_poll_interval_s: 3600,
        proc_root: fake.root.clone(),
        ..Default::default()
    };
    let r = ProcessResolver::spawn(&cfg, host()).unwrap();
    let store = r.pods().unwrap().clone();
    wait_until("the first list", || store.synced(), &store).await;
    assert_eq!(r.resolve(600).service_name, "server");
    wait_until("the pod after the miss", || r.resolve(600).service_name == "web", &store).await;
    assert_eq!(kube.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unusable_ca_file_is_an_error_at_start() {
    let cfg = KubernetesConfig {
        api_url: Some("https://127.0.0.1:1".into()),
        ca_file: Some(Path::new("/nonexistent/ca.crt").into()),
        ..Default::default()
    };
    let err = ProcessResolver::spawn(&cfg, host()).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
}

#[test]
fn the_command_name_wins_unless_the_kernel_truncated_it() {
    let fake = FakeProc::new("comm");
    let r = ProcessResolver::with_parts(&fake.root, host(), "node-1", None);
    // A symlinked binary keeps the name it was started by.
    fake.add(300, 1, &[], "redis-server", Some("/usr/bin/redis-check-rdb"), "0::/\n");
    // A 15-byte command name is the prefix of the real one.
    fake.add(301, 1, &[], "inventory-servi", Some("/srv/inventory-service"), "0::/\n");
    // A truncated name that is not the executable's prefix stays.
    fake.add(302, 1, &[], "abcdefghijklmno", Some("/usr/bin/python3.11"), "0::/\n");
    let names: Vec<String> = [300, 301, 302].into_iter().map(|pid| r.resolve(pid).service_name.clone()).collect();
    assert_eq!(names, ["redis-server", "inventory-service", "abcdefghijklmno"]);
}

#[test]
fn with_the_worker_lookups_never_read_proc_and_seen_processes_resolve_in_the_background() {
    let fake = FakeProc::new("worker");
    fake.add(300, 5, &["OTEL_SERVICE_NAME=orders"], "orders-bin", Some("/srv/orders"), "0::/\n");
    fake.add(301, 6, &[], "late", Some("/srv/late"), "0::/\n");
    let r = ProcessResolver::with_parts(&fake.root, host(), "node-1", None);
    r.start_worker(&crate::supervise::Stages::new()).unwrap();
    // Seen at connect: read by the worker, so that the spans find it cached.
    r.seen(300, "orders-bin");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.cached() == 0 {
        assert!(Instant::now() < deadline, "the worker never read the seen process");
        std::thread::yield_now();
    }
    assert_eq!(r.lookup(300).service_name, "orders");
    // Never seen: the lookup answers at once with a provisional name, and the worker reads it.
    assert_eq!(r.lookup(301).service_name, "pid-301");
    while r.lookup(301).service_name != "late" {
        assert!(Instant::now() < deadline, "the worker never read the looked-up process");
        std::thread::yield_now();
    }
}

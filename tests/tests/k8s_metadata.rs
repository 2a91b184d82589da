//! Kubernetes metadata end to end: HTTP servers run in cgroups this test creates under the
//! cgroup2 root, shaped like a kubelet's (`kubepods/besteffort/pod<uid>/<container id>`), and
//! an HTTP endpoint in the test serves the node's pod list in the kubelet's JSON shape (or, in
//! the second test, an API server's list and watch stream). The
//! daemon (kubelet source) must tag the servers' spans with the pod, namespace, container and
//! node, name them from the pod labels, and pick up a pod that appears after its process. The
//! daemon runs as it does in the DaemonSet: uid 0 limited to the capabilities that
//! deploy/kubernetes/base/daemonset.yaml adds, with tracefs mounted by the host.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tracer_daemon::model::{JaegerSpan as Span, TagValue};
use tracer_tests::{
    collector::Collector,
    daemon::{Daemon, free_port, http_get},
    stop_child, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const NODE: &str = "e2e-node";

/// The cgroup2 mount point, from /proc/mounts.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}

/// A cgroup tree made by the test; removed (leaf first) when dropped, once its processes exit.
struct CgroupTree {
    top: PathBuf,
    leaves: Vec<PathBuf>,
}

impl CgroupTree {
    fn new() -> CgroupTree {
        let top = cgroup2_root().join(format!("tracer-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap_or_else(|e| panic!("creating {}: {e}", top.display()));
        CgroupTree { top, leaves: Vec::new() }
    }

    /// `<top>/kubepods/besteffort/pod<uid>/<container id>`, the cgroupfs driver's shape.
    fn container(&mut self, pod_uid: &str, container_id: &str) -> PathBuf {
        let leaf = self.top.join("kubepods/besteffort").join(format!("pod{pod_uid}")).join(container_id);
        std::fs::create_dir_all(&leaf).unwrap_or_else(|e| panic!("creating {}: {e}", leaf.display()));
        self.leaves.push(leaf.clone());
        leaf
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        for leaf in &self.leaves {
            let procs = leaf.join("cgroup.procs");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::fs::read_to_string(&procs).is_ok_and(|p| !p.trim().is_empty())
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut dir = leaf.as_path();
            while dir.starts_with(&self.top) {
                let _ = std::fs::remove_dir(dir);
                match dir.parent() {
                    Some(p) => dir = p,
                    None => break,
                }
            }
        }
        let _ = std::fs::remove_dir(&self.top);
    }
}

/// A Python HTTP server started inside `cgroup` (it moves itself there before `exec`), with
/// no service-name variable in its environment.
struct CgServer {
    child: Child,
    port: u16,
}

impl CgServer {
    fn start(cgroup: &Path) -> CgServer {
        let port = free_port();
        let script = format!(
            "echo $$ > '{}/cgroup.procs' && exec python3 -m http.server {port} --bind 127.0.0.1",
            cgroup.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("JAEGER_SERVICE_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(TIMEOUT, "the HTTP server in its cgroup", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the HTTP server exited with {status}");
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        assert!(
            cg.contains(&cgroup.file_name().unwrap().to_string_lossy().into_owned()),
            "server not in its cgroup: {cg}"
        );
        CgServer { child, port }
    }
}

impl Drop for CgServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// The test's kubelet: answers every request with the current pod list (`GET /pods`).
struct Kubelet {
    port: u16,
    pods: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
}

impl Kubelet {
    fn start(pods: String) -> Kubelet {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pods = Arc::new(Mutex::new(pods));
        let requests = Arc::new(AtomicUsize::new(0));
        let (p, n) = (pods.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, body) = if request_line.starts_with("GET /pods ") {
                    n.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", p.lock().unwrap().clone())
                } else {
                    ("404 Not Found", String::new())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Kubelet { port, pods, requests }
    }

    fn set_pods(&self, pods: String) {
        *self.pods.lock().unwrap() = pods;
    }
}

struct PodDef<'a> {
    name: &'a str,
    uid: &'a str,
    labels: &'a str,
    container: &'a str,
    container_id: &'a str,
}

/// One pod of this node, as the kubelet and the API server write it.
fn pod_json(p: &PodDef<'_>) -> String {
    format!(
        r#"{{"metadata":{{"name":"{}","namespace":"shop","uid":"{}","resourceVersion":"11","labels":{{{}}}}},
          "spec":{{"nodeName":"{NODE}","containers":[{{"name":"{}","image":"x:1"}}]}},
          "status":{{"phase":"Running","containerStatuses":[{{"name":"{}","containerID":"containerd://{}","ready":true,"restartCount":0}}]}}}}"#,
        p.name, p.uid, p.labels, p.container, p.container, p.container_id
    )
}

/// A `PodList` of this node's pods (the kubelet's `/pods` and the API server's list).
fn pod_list(pods: &[PodDef<'_>]) -> String {
    let items: Vec<String> = pods.iter().map(pod_json).collect();
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"10"}},"items":[{}]}}"#,
        items.join(",")
    )
}

/// The test's API server: `GET /api/v1/pods?…` answers a pod list, and `…&watch=true` holds a
/// chunked watch stream open (at most `WATCH_OPEN`), writing each event the test sends.
struct ApiServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    events: std::sync::mpsc::Sender<String>,
}

const WATCH_OPEN: Duration = Duration::from_secs(60);

impl ApiServer {
    fn start(list: String) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (events, rx) = std::sync::mpsc::channel::<String>();
        let rx = Arc::new(Mutex::new(rx));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (reqs, rx, list) = (reqs.clone(), rx.clone(), list.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    reqs.lock().unwrap().push(request_line.clone());
                    if !request_line.starts_with("GET /api/v1/pods?") {
                        let _ =
                            write!(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    } else if !request_line.contains("watch=true") {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
                            list.len()
                        );
                    } else {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        );
                        let deadline = std::time::Instant::now() + WATCH_OPEN;
                        while std::time::Instant::now() < deadline {
                            let event = rx.lock().unwrap().recv_timeout(Duration::from_millis(100));
                            if let Ok(e) = event {
                                let chunk = format!("{e}\n");
                                if write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                                    return;
                                }
                            }
                        }
                        let _ = write!(conn, "0\r\n\r\n");
                    }
                });
            }
        });
        ApiServer { port, requests, events }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn tag(tags: &[tracer_daemon::model::Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key == key).map(|t| match &t.value {
        TagValue::Str(s) => s.clone(),
        TagValue::Long(v) => v.to_string(),
        other => format!("{other:?}"),
    })
}

/// Server spans of `pid` received by the collector.
fn server_spans_of(c: &Collector, pid: u32) -> Vec<Span> {
    c.spans()
        .into_iter()
        .filter(|s| s.kind() == Some("server") && tag(&s.process.tags, "process.pid") == Some(pid.to_string()))
        .collect()
}

fn curl(port: u16) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "curl to port {port}");
}

/// The capabilities the base DaemonSet adds (everything else is dropped there).
fn daemonset_capabilities() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/base/daemonset.yaml");
    let ds: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sc = &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    let caps: Vec<String> =
        sc["capabilities"]["add"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    caps
}

fn cap_bit(name: &str) -> u32 {
    match name {
        "DAC_READ_SEARCH" => 2,
        "NET_ADMIN" => 12,
        "SYS_PTRACE" => 19,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("capability {other} not expected in the DaemonSet"),
    }
}

/// A capability set (`CapEff`, `CapBnd`, …) of a process, from its status file.
fn cap_set(pid: u32, which: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix(which)?.strip_prefix(':')).unwrap();
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// The DaemonSet mounts the host's tracefs; without CAP_SYS_ADMIN the daemon cannot mount it.
fn ensure_tracefs() {
    if !Path::new("/sys/kernel/tracing/events").exists() {
        let ok =
            Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status().unwrap().success();
        assert!(ok, "mounting tracefs");
    }
}

#[test]
fn spans_carry_pod_metadata_from_cgroups_and_the_kubelet_pod_list() {
    tracer_tests::require_root();
    const ID_A: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const ID_B: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const UID_A: &str = "5d1c7e2a-3b4f-4a6e-9c8d-7e6f5a4b3c21";
    const UID_B: &str = "6e2d8f3b-4c5a-4b7f-8d9e-8f7a6b5c4d32";
    let pod_a = PodDef {
        name: "checkout-7d9f8",
        uid: UID_A,
        labels: r#""app.kubernetes.io/name":"checkout","app":"legacy-name""#,
        container: "web",
        container_id: ID_A,
    };
    let pod_b =
        PodDef { name: "orders-0", uid: UID_B, labels: r#""app":"orders""#, container: "api", container_id: ID_B };

    let mut cgroups = CgroupTree::new();
    let cg_a = cgroups.container(UID_A, ID_A);
    let cg_b = cgroups.container(UID_B, ID_B);
    let kubelet = Kubelet::start(pod_list(&[pod_a]));
    let collector = Collector::start();
    let server_a = CgServer::start(&cg_a);
    let server_b = CgServer::start(&cg_b);

    let config = std::env::temp_dir().join(format!("tracer-e2e-k8s-{}.yaml", std::process::id()));
    std::fs::write(&config, "kubernetes:\n  kubelet_poll_interval_s: 1\n").unwrap();
    let kubelet_url = format!("http://127.0.0.1:{}", kubelet.port);
    let caps = daemonset_capabilities();
    let bounding = format!(
        "--bounding-set=-all,{}",
        caps.iter().map(|c| format!("+{}", c.to_lowercase())).collect::<Vec<_>>().join(",")
    );
    ensure_tracefs();
    let daemon = Daemon::start_wrapped(
        &["setpriv", &bounding, "--inh-caps=-all", "--"],
        &[
            "--config",
            config.to_str().unwrap(),
            "--kubelet-url",
            &kubelet_url,
            "--node-name",
            NODE,
            "--collector",
            &collector.url(),
            "--batch-max-age-ms",
            "200",
            // Port filters would be narrower, but the kernel programs built with them fail the
            // verifier on this kernel (a known limitation of the capture probes): filter by command.
            "--include-comm",
            "python3",
            "--include-comm",
            "curl",
        ],
    );
    // setpriv exec'd the daemon (same pid): its effective set is the DaemonSet's capabilities
    // (as far as this machine's own bounding set has them), CAP_SYS_ADMIN not among them.
    let want = caps.iter().fold(0u64, |m, c| m | 1 << cap_bit(c));
    let (eff, own_bounding) = (cap_set(daemon.pid(), "CapEff"), cap_set(std::process::id(), "CapBnd"));
    assert_eq!(eff, want & own_bounding, "CapEff {eff:x} for {caps:?}");
    wait_for(TIMEOUT, "/readyz after the pod list", || {
        http_get(&daemon.metrics_addr, "/readyz").starts_with("ready\n").then_some(())
    });
    assert_eq!(daemon.metric("tracer_k8s_synced"), 1.0);
    assert!(kubelet.requests.load(Ordering::SeqCst) >= 1);

    // Pod A is listed: its server's spans carry the pod, and the service name comes from
    // app.kubernetes.io/name (the process has no service-name variable).
    let spans = wait_for(TIMEOUT, "server spans of the process in pod A", || {
        curl(server_a.port);
        let s = server_spans_of(&collector, server_a.child.id());
        (!s.is_empty()).then_some(s)
    });
    let p = &spans[0].process;
    assert_eq!(p.service_name, "checkout", "{p:?}");
    for (key, want) in [
        ("k8s.pod.name", "checkout-7d9f8"),
        ("k8s.namespace.name", "shop"),
        ("k8s.container.name", "web"),
        ("k8s.node.name", NODE),
        ("k8s.pod.uid", UID_A),
        ("container.id", ID_A),
    ] {
        assert_eq!(tag(&p.tags, key).as_deref(), Some(want), "{key} in {p:?}");
    }
    // curl, a host process, carries the node but no pod.
    let clients: Vec<Span> = wait_for(TIMEOUT, "curl's client span at the collector", || {
        let c: Vec<Span> = collector.spans().into_iter().filter(|s| s.kind() == Some("client")).collect();
        (!c.is_empty()).then_some(c)
    });
    for s in &clients {
        assert_eq!(tag(&s.process.tags, "k8s.pod.name"), None, "{:?}", s.process);
        assert_eq!(tag(&s.process.tags, "k8s.node.name").as_deref(), Some(NODE), "{:?}", s.process);
    }

    // Pod B is not listed yet: B's spans have its container id but no pod.
    let first_b = wait_for(TIMEOUT, "server spans of the process in pod B", || {
        curl(server_b.port);
        server_spans_of(&collector, server_b.child.id()).into_iter().next()
    });
    assert_eq!(tag(&first_b.process.tags, "container.id").as_deref(), Some(ID_B));
    assert_eq!(tag(&first_b.process.tags, "k8s.pod.name"), None, "{:?}", first_b.process);
    assert!(first_b.process.service_name.starts_with("python3"), "named by its executable: {:?}", first_b.process);

    // The pod shows up in the kubelet's list: later spans carry it, named by the `app` label.
    kubelet.set_pods(pod_list(&[
        PodDef {
            name: "checkout-7d9f8",
            uid: UID_A,
            labels: r#""app.kubernetes.io/name":"checkout""#,
            container: "web",
            container_id: ID_A,
        },
        pod_b,
    ]));
    let late = wait_for(TIMEOUT, "spans of pod B with its pod metadata", || {
        curl(server_b.port);
        server_spans_of(&collector, server_b.child.id())
            .into_iter()
            .find(|s| tag(&s.process.tags, "k8s.pod.name").is_some())
    });
    let p = &late.process;
    assert_eq!(p.service_name, "orders", "{p:?}");
    assert_eq!(tag(&p.tags, "k8s.pod.name").as_deref(), Some("orders-0"));
    assert_eq!(tag(&p.tags, "k8s.container.name").as_deref(), Some("api"));
    assert_eq!(tag(&p.tags, "k8s.node.name").as_deref(), Some(NODE));
    assert!(daemon.metric("tracer_k8s_pods") >= 2.0);
    let _ = std::fs::remove_file(&config);
    drop(daemon);
    drop(server_a);
    drop(server_b);
    drop(cgroups);
}

#[test]
fn pods_added_through_the_api_server_watch_reach_the_spans() {
    tracer_tests::require_root();
    const ID: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    const UID: &str = "7f3e9a4c-5d6b-4c8a-9e0f-9a8b7c6d5e43";
    let mut cgroups = CgroupTree::new();
    let cg = cgroups.container(UID, ID);
    let api = ApiServer::start(pod_list(&[]));
    let collector = Collector::start();
    let server = CgServer::start(&cg);
    ensure_tracefs();
    let api_url = format!("http://127.0.0.1:{}", api.port);
    let daemon = Daemon::start(&[
        "--api-url",
        &api_url,
        "--node-name",
        NODE,
        "--collector",
        &collector.url(),
        "--batch-max-age-ms",
        "200",
        "--include-comm",
        "python3",
    ]);
    wait_for(TIMEOUT, "/readyz after the pod list", || {
        http_get(&daemon.metrics_addr, "/readyz").starts_with("ready\n").then_some(())
    });
    // The list is restricted to this node; the watch resumes from the list's version.
    wait_for(TIMEOUT, "the watch request", || (api.requests().len() >= 2).then_some(()));
    let reqs = api.requests();
    assert!(reqs[0].starts_with("GET /api/v1/pods?fieldSelector=spec.nodeName%3De2e-node HTTP/1.1"), "{reqs:?}");
    assert!(reqs[1].contains("watch=true") && reqs[1].contains("resourceVersion=10"), "{reqs:?}");

    let first = wait_for(TIMEOUT, "a server span before the pod is known", || {
        curl(server.port);
        server_spans_of(&collector, server.child.id()).into_iter().next()
    });
    assert_eq!(tag(&first.process.tags, "k8s.pod.name"), None, "{:?}", first.process);

    // The pod arrives as a watch event, not through another list.
    let pod = PodDef {
        name: "inventory-5c4b",
        uid: UID,
        labels: r#""app.kubernetes.io/name":"inventory""#,
        container: "app",
        container_id: ID,
    };
    api.events.send(format!(r#"{{"type":"ADDED","object":{}}}"#, pod_json(&pod).replace('\n', " "))).unwrap();
    let late = wait_for(TIMEOUT, "spans with the watched pod", || {
        curl(server.port);
        server_spans_of(&collector, server.child.id())
            .into_iter()
            .find(|s| tag(&s.process.tags, "k8s.pod.name").is_some())
    });
    let p = &late.process;
    assert_eq!(p.service_name, "inventory", "{p:?}");
    assert_eq!(tag(&p.tags, "k8s.pod.name").as_deref(), Some("inventory-5c4b"));
    assert_eq!(tag(&p.tags, "k8s.container.name").as_deref(), Some("app"));
    assert_eq!(tag(&p.tags, "k8s.node.name").as_deref(), Some(NODE));
    let lists = api.requests().iter().filter(|r| !r.contains("watch=true")).count();
    assert_eq!(lists, 1, "picked up by the watch without listing again: {:?}", api.requests());
    assert!(daemon.metric("tracer_k8s_watch_events_total") >= 1.0);
    drop(daemon);
    drop(server);
    drop(cgroups);
}

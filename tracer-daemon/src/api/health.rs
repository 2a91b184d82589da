//! `/healthz` and `/readyz`: the state of every supervised stage, one per line, with 503 as soon
//! as one has died (liveness) or while the daemon is not yet ready (readiness).
//!
//! ```text
//! ok
//! stage reader: running
//! stage processing: running
//! ```
//!
//! and, after a panic in processing, with status 503:
//!
//! ```text
//! failing: processing
//! stage reader: running
//! stage processing: dead (panicked: index out of bounds)
//! ```

use crate::supervise::{Stages, State};

use super::Response;

fn stage_lines(stages: &Stages, out: &mut String) {
    for s in stages.snapshot() {
        match &s.state {
            State::Dead(cause) => out.push_str(&format!("stage {}: dead ({cause})\n", s.name)),
            other => out.push_str(&format!("stage {}: {}\n", s.name, other.as_str())),
        }
    }
}

fn failing(stages: &Stages) -> Option<String> {
    let dead = stages.dead();
    (!dead.is_empty()).then(|| {
        let names: Vec<&str> = dead.iter().map(|(n, _)| n.as_str()).collect();
        format!("failing: {}\n", names.join(", "))
    })
}

/// Liveness: 200 `ok` while no stage has died, else 503 naming the dead ones; then each stage.
pub fn healthz(stages: &Stages) -> Response {
    let (status, mut body) = match failing(stages) {
        Some(head) => (503, head),
        None => (200, "ok\n".to_owned()),
    };
    stage_lines(stages, &mut body);
    Response::text(status, body)
}

/// Readiness: like [`healthz`], and 503 with `waiting` while the daemon waits for something
/// (e.g. the node's pod list). The first line is `ready` when ready.
pub fn readyz(stages: &Stages, waiting: Option<&str>) -> Response {
    let (status, mut body) = match (failing(stages), waiting) {
        (Some(head), _) => (503, head),
        (None, Some(why)) => (503, format!("{why}\n")),
        (None, None) => (200, "ready\n".to_owned()),
    };
    stage_lines(stages, &mut body);
    Response::text(status, body)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::api::{Router, serve};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A real stage panics: the real server's `/healthz` and `/readyz` turn 503 and name it.
    #[tokio::test]
    async fn a_dying_stage_turns_healthz_and_readyz_to_503() {
        let stages = Stages::new();
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let _reader = stages.spawn("reader", async move {
            let _ = hold.await;
        });
        let (s1, s2) = (stages.clone(), stages.clone());
        let router = Router::new()
            .route("GET", "/healthz", move |_| healthz(&s1))
            .route("GET", "/readyz", move |_| readyz(&s2, None));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(listener, Arc::new(router), stop_rx));

        let r = get(addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.ends_with("\r\n\r\nok\nstage reader: running\n"), "{r}");

        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        fn out_of_bounds() {
            panic!("index out of bounds: the len is 0 but the index is 3");
        }
        stages.spawn("processing", async move {
            let _ = wait.await;
            out_of_bounds()
        });
        go.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), stages.first_death()).await.unwrap();

        let r = get(addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("failing: processing"));
        assert_eq!(lines.next(), Some("stage reader: running"));
        let dead = lines.next().unwrap();
        assert!(dead.starts_with("stage processing: dead (panicked: index out of bounds"), "{dead}");
        let r = get(addr, "/readyz").await;
        assert!(r.starts_with("HTTP/1.1 503 ") && r.contains("failing: processing\n"), "{r}");
        drop(release);
    }

    #[test]
    fn readyz_waits_and_reports_stages() {
        let stages = Stages::new();
        let r = readyz(&stages, Some("waiting for the node's pod list"));
        assert_eq!((r.status, r.body.as_slice()), (503, &b"waiting for the node's pod list\n"[..]));
        assert_eq!(readyz(&stages, None).body, b"ready\n");
        let g = stages.enter("store feed");
        assert_eq!(readyz(&stages, None).body, b"ready\nstage store feed: running\n");
        g.finish(Err("failed: closed".into()));
        let r = healthz(&stages);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, b"failing: store feed\nstage store feed: dead (failed: closed)\n");
    }
}

//! Keeps the pod store current in the background: from the API server, a list of this node's
//! pods then a watch resumed from the last resource version (re-listed every resync period, on
//! `410 Gone`, and after errors); from the kubelet, a list every poll period and soon after an
//! unknown container shows up. Failures back off exponentially (1 s to 30 s, jittered) and are
//! counted; the store keeps the last good state meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pods::{PodList, PodStore, WatchEvent, parse_watch_event};
use crate::config::kubernetes::{PodSource, SourceSettings};
use crate::net::backoff::{Backoff, RetryPolicy};
use crate::net::http::{HttpClient, HttpError, encode_query_value};
use crate::net::tls::TlsOptions;

/// Largest pod list accepted, bytes (a node with hundreds of pods lists a few MiB).
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// Longest watch event line accepted, bytes.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// A watch silent this much longer than its own timeout is taken as a dead connection.
const WATCH_GRACE: Duration = Duration::from_secs(30);
/// The kubelet is listed at most this often, whatever asks for it.
const MIN_RELIST: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("decoding {what}: {source}")]
    Decode { what: &'static str, source: serde_json::Error },
    #[error("watch failed: HTTP {code} {reason}: {message}")]
    Watch { code: u16, reason: String, message: String },
    #[error("watch stream silent for {0:?}")]
    Stalled(Duration),
}

/// The HTTP client for a pod source.
pub fn client(s: &SourceSettings) -> Result<HttpClient, HttpError> {
    let tls = TlsOptions { ca_file: s.ca_file.clone(), insecure_skip_verify: s.insecure_skip_tls_verify };
    HttpClient::new(&s.url, &tls, Some(s.token_file.clone()), s.request_timeout)
}

/// Runs until the task is aborted.
pub async fn run(settings: SourceSettings, client: HttpClient, store: Arc<PodStore>) {
    tracing::info!(source = ?settings.source, url = %settings.url, node = %settings.node_name, "pod metadata sync starting");
    match settings.source {
        PodSource::ApiServer => api_server(&settings, &client, &store).await,
        PodSource::Kubelet => kubelet(&settings, &client, &store).await,
    }
}

/// The sync's backoff: 1 s doubling to 30 s, jittered in the upper half.
fn backoff() -> Backoff {
    Backoff::new(RetryPolicy { initial: BACKOFF_MIN, max: BACKOFF_MAX, max_elapsed: Duration::MAX })
}

fn selector(node: &str) -> String {
    format!("fieldSelector={}", encode_query_value(&format!("spec.nodeName={node}")))
}

/// Lists this node's pods from the API server; returns the list's resource version.
pub async fn list_api_server(s: &SourceSettings, client: &HttpClient, store: &PodStore) -> Result<String, SyncError> {
    let path = format!("/api/v1/pods?{}", selector(&s.node_name));
    let body = client.get_body(&path, MAX_LIST_BYTES).await?;
    let list: PodList =
        serde_json::from_slice(&body).map_err(|source| SyncError::Decode { what: "pod list", source })?;
    store.replace(&list);
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// Lists the kubelet's pods.
pub async fn list_kubelet(client: &HttpClient, store: &PodStore) -> Result<(), SyncError> {
    let body = client.get_body("/pods", MAX_LIST_BYTES).await?;
    let list: PodList =
        serde_json::from_slice(&body).map_err(|source| SyncError::Decode { what: "pod list", source })?;
    store.replace(&list);
    Ok(())
}

/// How a watch request ended without error.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// The server closed the stream (its timeout): resume from the last resource version.
    Closed { events: u64 },
    /// The resource version is too old: list again.
    Expired,
}

/// One watch request from resource version `rv`, applying events until it ends.
pub async fn watch_once(
    s: &SourceSettings,
    client: &HttpClient,
    store: &PodStore,
    rv: &mut String,
) -> Result<WatchEnd, SyncError> {
    let path = format!(
        "/api/v1/pods?{}&watch=true&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={}",
        selector(&s.node_name),
        s.watch_timeout.as_secs(),
        encode_query_value(rv),
    );
    let resp = client.get(&path).await?;
    if resp.status == 410 {
        return Ok(WatchEnd::Expired);
    }
    let mut resp = resp.error_for_status().await?;
    let idle = s.watch_timeout + WATCH_GRACE;
    let mut events = 0;
    loop {
        let line = match tokio::time::timeout(idle, resp.next_line(MAX_EVENT_BYTES)).await {
            Err(_) => return Err(SyncError::Stalled(idle)),
            Ok(r) => r?,
        };
        let Some(line) = line else { return Ok(WatchEnd::Closed { events }) };
        if line.trim_ascii().is_empty() {
            continue;
        }
        let event = parse_watch_event(&line).map_err(|source| SyncError::Decode { what: "watch event", source })?;
        store.stats.watch_events.fetch_add(1, Ordering::Relaxed);
        events += 1;
        let version = match &event {
            WatchEvent::Upsert(p) | WatchEvent::Deleted(p) => p.metadata.resource_version.clone(),
            WatchEvent::Bookmark(v) => v.clone(),
            WatchEvent::Error(st) if st.code == 410 => return Ok(WatchEnd::Expired),
            WatchEvent::Error(st) => {
                return Err(SyncError::Watch { code: st.code, reason: st.reason.clone(), message: st.message.clone() });
            }
        };
        store.apply(&event);
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            *rv = v;
        }
    }
}

async fn api_server(s: &SourceSettings, client: &HttpClient, store: &PodStore) {
    let mut backoff = backoff();
    loop {
        let mut rv = match list_api_server(s, client, store).await {
            Ok(rv) => {
                store.stats.lists_ok.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pods = store.len(), resource_version = %rv, "listed pods");
                backoff.reset();
                rv
            }
            Err(e) => {
                store.stats.lists_failed.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "listing pods failed");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let listed = Instant::now();
        while listed.elapsed() < s.resync {
            let started = Instant::now();
            match watch_once(s, client, store, &mut rv).await {
                Ok(WatchEnd::Expired) => break,
                Ok(WatchEnd::Closed { events }) => {
                    // A server that ends watches at once is not hammered.
                    if events == 0 && started.elapsed() < BACKOFF_MIN {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
                Err(e) => {
                    store.stats.watch_failed.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?wait, "watching pods failed; listing again");
                    tokio::time::sleep(wait).await;
                    break;
                }
            }
        }
    }
}

async fn kubelet(s: &SourceSettings, client: &HttpClient, store: &PodStore) {
    let mut backoff = backoff();
    loop {
        let listed = Instant::now();
        let wait = match list_kubelet(client, store).await {
            Ok(()) => {
                store.stats.lists_ok.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                s.kubelet_poll
            }
            Err(e) => {
                store.stats.lists_failed.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "listing the kubelet's pods failed");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = store.refresh.notified() => {
                tokio::time::sleep(MIN_RELIST.saturating_sub(listed.elapsed())).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jittered_and_resets() {
        let mut b = backoff();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (d, cap) in delays.iter().zip([1u64, 2, 4, 8, 16, 30, 30, 30]) {
            let cap = Duration::from_secs(cap);
            assert!(*d >= cap / 2 && *d <= cap, "{d:?} vs {cap:?}");
        }
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }

    #[test]
    fn the_node_selector_is_encoded() {
        assert_eq!(selector("ip-10-0-0-5.ec2.internal"), "fieldSelector=spec.nodeName%3Dip-10-0-0-5.ec2.internal");
    }
}

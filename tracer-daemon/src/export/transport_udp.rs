//! UDP transport: `Agent.emitBatch` oneway messages in the compact protocol, as Jaeger clients
//! send to an agent's port 6831, each packet within the size limit. A batch too large for one
//! packet is split; a span too large on its own is dropped and counted. Like the Jaeger
//! clients, a packet that cannot be sent is counted, not retried.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::pipeline::ExportMetrics;
use super::{Batch, Delivered, ExportError, Exporter};
use crate::jaeger::encode::{
    BatchMeta, ClientStats, Protocol, emit_batch_empty_len, encode_emit_batch, list_header_extra, span_len,
};
use crate::model::{JaegerSpan, Process};

/// Meta values large enough that any real trailer encodes no longer than this one.
const WORST_META: BatchMeta = BatchMeta {
    seq_no: Some(i64::MAX),
    stats: Some(ClientStats {
        full_queue_dropped_spans: i64::MAX,
        too_large_dropped_spans: i64::MAX,
        failed_to_emit_spans: i64::MAX,
    }),
};

/// How spans are cut into packets: ranges of span indexes, and the indexes too large to send.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub packets: Vec<Vec<usize>>,
    pub too_large: Vec<usize>,
}

/// Packs spans of the given encoded sizes, in order, into packets of at most `max_packet`
/// bytes, where a packet of `k` spans costs `envelope + list_header_extra(k) + sizes`.
pub fn plan_packets(proto: Protocol, sizes: &[usize], envelope: usize, max_packet: usize) -> Plan {
    let mut plan = Plan::default();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_bytes = 0usize;
    for (i, &size) in sizes.iter().enumerate() {
        if envelope.saturating_add(list_header_extra(proto, 1)).saturating_add(size) > max_packet {
            plan.too_large.push(i);
            continue;
        }
        let with = envelope + list_header_extra(proto, cur.len() + 1) + cur_bytes.saturating_add(size);
        if !cur.is_empty() && with > max_packet {
            plan.packets.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur.push(i);
        cur_bytes += size;
    }
    if !cur.is_empty() {
        plan.packets.push(cur);
    }
    plan
}

/// Sends batches as UDP `emitBatch` packets.
pub struct UdpExporter {
    addr: String,
    socket: Option<UdpSocket>,
    max_packet: usize,
    metrics: ExportMetrics,
    buf: Vec<u8>,
}

impl UdpExporter {
    /// `addr` is `HOST:PORT`, resolved when the first packet is sent (and again after errors).
    pub fn new(addr: String, max_packet: usize, metrics: ExportMetrics) -> Self {
        UdpExporter { addr, socket: None, max_packet, metrics, buf: Vec::with_capacity(max_packet) }
    }

    async fn ensure_socket(&mut self) -> Result<(), ExportError> {
        if self.socket.is_none() {
            let io = |e: std::io::Error| ExportError::Io { endpoint: self.addr.clone(), source: e };
            let target: SocketAddr = tokio::net::lookup_host(&self.addr)
                .await
                .map_err(io)?
                .next()
                .ok_or_else(|| io(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))?;
            let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                .parse()
                .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "local address")))?;
            let s = UdpSocket::bind(local).await.map_err(io)?;
            s.connect(target).await.map_err(io)?;
            self.socket = Some(s);
        }
        Ok(())
    }

    /// Encodes one packet of `spans` into `self.buf`.
    fn encode(&mut self, process: &Process, spans: &[&JaegerSpan]) -> Result<(), ExportError> {
        let meta = BatchMeta { seq_no: Some(self.metrics.next_seq()), stats: Some(self.metrics.client_stats()) };
        self.buf.clear();
        encode_emit_batch(Protocol::Compact, 0, process, spans, &meta, &mut self.buf)
            .map_err(|e| ExportError::Encode(e.to_string()))
    }
}

impl Exporter for UdpExporter {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "udp"
    }

    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        // The lane's batcher measured the compact sizes already; a batch from elsewhere is
        // measured here.
        let measured: Vec<usize>;
        let sizes = if batch.sizes.len() == batch.spans.len() {
            &batch.sizes
        } else {
            measured = batch.spans.iter().map(|s| span_len(Protocol::Compact, s)).collect();
            &measured
        };
        let envelope = emit_batch_empty_len(Protocol::Compact, 0, &batch.process, &WORST_META);
        let plan = plan_packets(Protocol::Compact, sizes, envelope, self.max_packet);
        if !plan.too_large.is_empty() {
            self.metrics.dropped_too_large.add(plan.too_large.len() as u64);
            tracing::debug!(
                spans = plan.too_large.len(),
                max_packet = self.max_packet,
                "span too large for a UDP packet"
            );
        }
        let mut done = Delivered::default();
        for (n, packet) in plan.packets.iter().enumerate() {
            let spans: Vec<&JaegerSpan> = packet.iter().map(|&i| &batch.spans[i]).collect();
            self.encode(&batch.process, &spans)?;
            if self.buf.len() > self.max_packet {
                // The plan bounds every packet; should it ever be off, never send an oversize one.
                self.metrics.dropped_too_large.add(spans.len() as u64);
                tracing::warn!(
                    bytes = self.buf.len(),
                    max_packet = self.max_packet,
                    "UDP packet over the limit, dropped"
                );
                continue;
            }
            let len = self.buf.len();
            let sent = match self.ensure_socket().await {
                Ok(()) => match &self.socket {
                    Some(s) => s.send(&self.buf[..len]).await,
                    None => Err(std::io::Error::other("no socket")),
                },
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(e) = sent {
                self.socket = None;
                // The packets not sent are lost, like a Jaeger client's; count them here, since
                // retrying would resend the packets already delivered.
                let lost: usize = plan.packets[n..].iter().map(Vec::len).sum();
                self.metrics.dropped_send_failed.add(lost as u64);
                self.metrics.spans_failed.add(lost as u64);
                self.metrics.batches_failed.add((plan.packets.len() - n) as u64);
                tracing::debug!(error = %e, addr = %self.addr, spans = lost, "UDP send failed");
                return Ok(done);
            }
            done.spans += spans.len();
            done.requests += 1;
            done.bytes += len;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tag, TraceId};
    use std::sync::Arc;

    #[test]
    fn plan_splits_and_drops_oversize() {
        let p = plan_packets(Protocol::Compact, &[40, 40, 40, 200, 10], 20, 110);
        assert_eq!(p.packets, vec![vec![0, 1], vec![2, 4]]);
        assert_eq!(p.too_large, vec![3]);
    }

    #[test]
    fn plan_counts_long_list_headers() {
        // 15 one-byte spans: a compact list of 15 needs one extra byte for the count.
        let sizes = [1usize; 15];
        let p = plan_packets(Protocol::Compact, &sizes, 10, 26);
        assert_eq!(p.packets.len(), 1);
        let p = plan_packets(Protocol::Compact, &sizes, 10, 25);
        assert_eq!(p.packets.iter().map(Vec::len).collect::<Vec<_>>(), vec![14, 1]);
    }

    fn big_span(id: u64, bytes: usize) -> JaegerSpan {
        JaegerSpan {
            trace_id: TraceId { high: 0, low: 1 },
            span_id: id,
            parent_span_id: 0,
            operation: "op".into(),
            flags: 1,
            start_us: 1,
            duration_us: 1,
            tags: vec![Tag::str("payload", "x".repeat(bytes))],
            logs: vec![],
            references: vec![],
            process: Arc::new(Process { service_name: "svc".into(), tags: vec![] }),
        }
    }

    #[tokio::test]
    async fn packets_fit_and_oversize_spans_are_counted() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = rx.local_addr().unwrap().to_string();
        let m = ExportMetrics::detached();
        let mut ex = UdpExporter::new(addr, 65_000, m.clone());
        let mut spans: Vec<JaegerSpan> = (0..10).map(|i| big_span(i, 20_000)).collect();
        spans.insert(3, big_span(99, 70_000));
        let process = spans[0].process.clone();
        let d = ex.export(&Batch::new(process, spans)).await.unwrap();
        assert_eq!(d.spans, 10);
        assert_eq!(d.requests, 4); // three 20 kB spans fit in 65,000 bytes
        assert_eq!(m.dropped_too_large.get(), 1);
        let mut buf = vec![0u8; 70_000];
        for _ in 0..4 {
            let n = rx.recv(&mut buf).await.unwrap();
            assert!(n <= 65_000 && n > 20_000, "{n}");
        }
        assert_eq!(m.client_stats().too_large_dropped_spans, 1);
    }
}

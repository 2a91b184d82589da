//! An exporter that keeps batches in memory, with scripted failures: for tests of the pipeline
//! and of the stages in front of it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Batch, Delivered, ExportError, Exporter};
use crate::model::JaegerSpan;

#[derive(Default)]
struct State {
    batches: Vec<Batch>,
    /// Statuses to fail the next attempts with, in order (5xx retryable, 4xx not).
    fail_next: VecDeque<u16>,
    attempts: usize,
}

/// The test's view of a `MemoryExporter`: what arrived, and failures to inject.
#[derive(Clone, Default)]
pub struct MemorySink(Arc<Mutex<State>>);

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemorySink {
    pub fn batches(&self) -> Vec<Batch> {
        lock(&self.0).batches.clone()
    }
    pub fn spans(&self) -> Vec<JaegerSpan> {
        lock(&self.0).batches.iter().flat_map(|b| b.spans.iter().cloned()).collect()
    }
    pub fn span_count(&self) -> usize {
        lock(&self.0).batches.iter().map(|b| b.spans.len()).sum()
    }
    /// Export attempts so far, failed ones included.
    pub fn attempts(&self) -> usize {
        lock(&self.0).attempts
    }
    /// Makes the next attempts fail with these HTTP statuses, one per attempt.
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.0).fail_next.extend(statuses.iter().copied());
    }
}

/// Stores every batch it is given.
pub struct MemoryExporter {
    sink: MemorySink,
}

impl MemoryExporter {
    pub fn new() -> (MemoryExporter, MemorySink) {
        let sink = MemorySink::default();
        (MemoryExporter { sink: sink.clone() }, sink)
    }
}

impl Exporter for MemoryExporter {
    type Span = JaegerSpan;

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn export(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let mut st = lock(&self.sink.0);
        st.attempts += 1;
        if let Some(status) = st.fail_next.pop_front() {
            return Err(ExportError::Status { endpoint: "memory".into(), status });
        }
        st.batches.push(batch.clone());
        Ok(Delivered { spans: batch.spans.len(), requests: 1, bytes: 0 })
    }
}

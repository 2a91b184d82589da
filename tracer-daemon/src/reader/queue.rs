//! The channel from the ring-buffer reader to the processing loop, bounded twice: by count
//! (slots) and by the bytes of the events it holds (payloads and records), so that a burst of
//! large payloads cannot queue hundreds of MiB. Both ends share one atomic byte count,
//! raised on send and lowered on receive. The reader never blocks: an event that would pass
//! either bound is refused and the caller counts it with the reason.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::mpsc;

use super::decode::Event;

/// Why an event did not enter the queue (`tracer_events_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueDrop {
    /// Every slot was taken.
    Full,
    /// The events queued already held the byte bound.
    Bytes,
}

impl QueueDrop {
    pub const ALL: [QueueDrop; 2] = [QueueDrop::Full, QueueDrop::Bytes];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueDrop::Full => "pipeline_full",
            QueueDrop::Bytes => "pipeline_bytes",
        }
    }
}

/// A send that did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Dropped(QueueDrop),
    /// The receiver is gone.
    Closed,
}

/// Bytes an event holds while queued: the record itself and what it owns on the heap.
pub fn event_bytes(e: &Event) -> usize {
    let heap = match e {
        Event::Data(d) => d.payload.capacity(),
        Event::Lib(l) => l.payload.capacity(),
        Event::Conn(c) => c.comm.capacity(),
        Event::State(_) | Event::Exit { .. } | Event::Option(_) | Event::GoStream(_) => 0,
    };
    std::mem::size_of::<Event>() + heap
}

pub struct EventSender {
    tx: mpsc::Sender<(Event, usize)>,
    used: Arc<AtomicUsize>,
    max_bytes: usize,
}

pub struct EventReceiver {
    rx: mpsc::Receiver<(Event, usize)>,
    used: Arc<AtomicUsize>,
}

/// A queue of `slots` events holding at most `max_bytes` (at least one event always fits).
pub fn channel(slots: usize, max_bytes: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(slots.max(1));
    let used = Arc::new(AtomicUsize::new(0));
    (EventSender { tx, used: used.clone(), max_bytes }, EventReceiver { rx, used })
}

/// Bytes queued now, shared by both ends (for the memory gauge).
#[derive(Clone)]
pub struct QueuedBytes(Arc<AtomicUsize>);

impl QueuedBytes {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl EventSender {
    /// Queues `event` unless a bound is reached.
    pub fn try_send(&self, event: Event) -> Result<(), SendError> {
        let n = event_bytes(&event);
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before > 0 && before + n > self.max_bytes {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return Err(SendError::Dropped(QueueDrop::Bytes));
        }
        match self.tx.try_send((event, n)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.used.fetch_sub(n, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => Err(SendError::Dropped(QueueDrop::Full)),
                    mpsc::error::TrySendError::Closed(_) => Err(SendError::Closed),
                }
            }
        }
    }

    pub fn queued_bytes(&self) -> QueuedBytes {
        QueuedBytes(self.used.clone())
    }
}

impl EventReceiver {
    /// The next event; None once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        let (e, n) = self.rx.recv().await?;
        self.used.fetch_sub(n, Ordering::Relaxed);
        Some(e)
    }

    pub fn queued_bytes(&self) -> QueuedBytes {
        QueuedBytes(self.used.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conn::{Direction, Tuple};
    use crate::reader::decode::{DataRecord, Syscall};

    fn data(len: usize) -> Event {
        Event::Data(DataRecord {
            pid: 1,
            tid: 1,
            ts_enter_ns: 1,
            ts_exit_ns: 2,
            conn_id: 1,
            fd: 3,
            syscall: Syscall::Read,
            direction: Direction::Ingress,
            ret: len as i64,
            truncated: false,
            seq: None,
            goid: None,
            netns: 0,
            context: None,
            tuple: Tuple { local: "127.0.0.1:1".parse().unwrap(), remote: "127.0.0.1:2".parse().unwrap() },
            payload: vec![0; len],
        })
    }

    #[tokio::test]
    async fn the_queue_holds_at_most_its_bytes_and_frees_them_on_receive() {
        let one = event_bytes(&data(4096));
        let (tx, mut rx) = channel(1000, 10 * one);
        let sent = (0..20).filter(|_| tx.try_send(data(4096)).is_ok()).count();
        assert_eq!(sent, 10, "the byte bound, not the 1000 slots, stopped the burst");
        assert_eq!(tx.try_send(data(4096)), Err(SendError::Dropped(QueueDrop::Bytes)));
        assert_eq!(tx.queued_bytes().get(), 10 * one);
        assert!(rx.recv().await.is_some());
        assert_eq!(rx.queued_bytes().get(), 9 * one);
        assert!(tx.try_send(data(4096)).is_ok(), "a received event frees its bytes");
        while tx.queued_bytes().get() > 0 {
            rx.recv().await.expect("queued");
        }
        // One event larger than the bound still passes an empty queue.
        assert!(tx.try_send(data(20 * 4096)).is_ok());
    }

    #[tokio::test]
    async fn the_slot_bound_still_applies_and_says_so() {
        let (tx, _rx) = channel(2, usize::MAX);
        assert!(tx.try_send(data(1)).is_ok() && tx.try_send(data(1)).is_ok());
        assert_eq!(tx.try_send(data(1)), Err(SendError::Dropped(QueueDrop::Full)));
        assert_eq!(tx.queued_bytes().get(), 2 * event_bytes(&data(1)));
    }
}

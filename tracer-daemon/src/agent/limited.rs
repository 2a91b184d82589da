//! The connection limit of the OTLP/gRPC receiver: a stream of accepted connections for tonic
//! that closes (and counts as `connection_limit`) each connection beyond the limit, the way the
//! HTTP/1.1 server does for the other listeners.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::api::{DropCounters, DropReason};

/// Pause after a failed accept (out of file descriptors or similar) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepted connections, at most `max` open at once.
pub(super) struct LimitedIncoming {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    drops: DropCounters,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl LimitedIncoming {
    pub(super) fn new(listener: TcpListener, max: usize, drops: DropCounters) -> Self {
        let slots = Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)));
        LimitedIncoming { listener, slots, drops, backoff: None }
    }
}

impl Stream for LimitedIncoming {
    type Item = io::Result<Limited>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = &mut this.backoff {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.backoff = None;
            }
            match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, _peer))) => match this.slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        return Poll::Ready(Some(Ok(Limited { stream, _permit: permit })));
                    }
                    // Dropped here: closed before any HTTP/2 byte.
                    Err(_) => this.drops.count(DropReason::ConnectionLimit),
                },
                Poll::Ready(Err(e)) => {
                    tracing::warn!(error = %e, "OTLP/gRPC accept failed");
                    this.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

/// An accepted connection holding its slot until it closes.
pub(super) struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

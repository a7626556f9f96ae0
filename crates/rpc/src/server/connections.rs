//! What a server's accepted connections may cost it: at most [`MAX_CONNECTIONS`] open at once
//! (one more is closed as soon as it is accepted, and logged), and a connection that has sent
//! nothing [`FIRST_BYTE_TIMEOUT`] after it was accepted (an idle or half-open socket, a
//! slow-loris client) is closed. So idle TCP connections cannot pin a server's file
//! descriptors: they go after the timeout, and never more than the cap at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// Connections one server holds open at once, at most.
pub const MAX_CONNECTIONS: usize = 2048;

/// A connection must send its first bytes (the HTTP/2 preface) within this long.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// `incoming`, with the limits of this module.
pub fn limit<S>(incoming: S) -> Limited<S> {
    Limited {
        inner: incoming,
        open: Arc::new(AtomicUsize::new(0)),
        max: MAX_CONNECTIONS,
        first_byte_timeout: FIRST_BYTE_TIMEOUT,
    }
}

pub struct Limited<S> {
    inner: S,
    open: Arc<AtomicUsize>,
    max: usize,
    first_byte_timeout: Duration,
}

impl<S, IO, E> Stream for Limited<S>
where
    S: Stream<Item = Result<IO, E>> + Unpin,
{
    type Item = Result<Guarded<IO>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(io))) => {
                    let open = this.open.fetch_add(1, Ordering::AcqRel);
                    let guarded = Guarded {
                        inner: io,
                        open: this.open.clone(),
                        first_byte: Some(Box::pin(tokio::time::sleep(this.first_byte_timeout))),
                        first_byte_timeout: this.first_byte_timeout,
                    };
                    if open >= this.max {
                        tracing::warn!(
                            open,
                            max = this.max,
                            "too many connections: a new one is closed"
                        );
                        drop(guarded);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(guarded)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// An accepted connection, counted while it is open, closed if it sends nothing in time.
pub struct Guarded<IO> {
    inner: IO,
    open: Arc<AtomicUsize>,
    /// Until the first byte arrives.
    first_byte: Option<Pin<Box<Sleep>>>,
    first_byte_timeout: Duration,
}

impl<IO> Drop for Guarded<IO> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.first_byte = None,
            Poll::Pending => {
                if let Some(timer) = self.first_byte.as_mut()
                    && timer.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the connection sent nothing for {} ms after it was accepted",
                            self.first_byte_timeout.as_millis()
                        ),
                    )));
                }
            }
            _ => {}
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_one_beyond_the_cap_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let mut limited = Limited {
            inner: incoming,
            open: Arc::new(AtomicUsize::new(0)),
            max: 2,
            first_byte_timeout: Duration::from_millis(300),
        };
        let mut talker = TcpStream::connect(addr).await.expect("connect");
        let mut first = limited.next().await.expect("one").expect("accepted");
        talker.write_all(b"x").await.expect("write");
        let mut byte = [0u8; 1];
        first.read_exact(&mut byte).await.expect("its first byte");
        let _silent = TcpStream::connect(addr).await.expect("connect");
        let mut second = limited.next().await.expect("two").expect("accepted");
        assert_eq!(limited.open.load(Ordering::Acquire), 2);
        // A third is closed at once.
        let mut third = TcpStream::connect(addr).await.expect("connect");
        let none = tokio::time::timeout(Duration::from_millis(100), limited.next()).await;
        assert!(none.is_err(), "nothing more is yielded");
        let mut buf = [0u8; 1];
        assert_eq!(third.read(&mut buf).await.expect("closed"), 0, "closed");
        // Once one is closed, a new one is taken.
        drop(first);
        let _fourth = TcpStream::connect(addr).await.expect("connect");
        let _fourth_accepted = limited.next().await.expect("four").expect("accepted");
        // The silent one times out.
        let error = second.read(&mut buf).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}

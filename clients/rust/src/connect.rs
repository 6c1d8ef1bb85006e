//! Connections to one node, with the contract's connect deadline.
//!
//! tonic's own connect timeout bounds the TCP handshake only: a node that
//! accepts the connection but never speaks HTTP/2 (a stuck process) would hold
//! the first call until its own deadline, and a watch (which has none) until
//! keepalive gives up. This connector bounds both steps with one deadline per
//! connection: TCP connected *and* the first bytes from the server (its HTTP/2
//! SETTINGS frame, which a live server sends at once) within
//! [`Config::connect_timeout`](crate::Config::connect_timeout). Past it the
//! connection fails, so does every call waiting on it, and the client moves on.
//!
//! With TLS, tonic runs the handshake over this connector's stream (so a node
//! that never answers the ClientHello is caught by the same deadline) and
//! bounds the handshake itself by the connect deadline too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::codegen::Service;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::{Config, Error};

/// A lazily connecting channel to `addr` (already validated), with the
/// contract's connect deadline and HTTP/2 keepalive; over TLS when `tls` is
/// given (made by crate::tls, which has checked it).
pub(crate) fn channel(
    addr: &str,
    config: &Config,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|_| Error::BadAddress(addr.to_string()))?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Error::Tls(format!("TLS options refused for {addr}: {e}")))?;
    }
    let endpoint = endpoint
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        // Ping also when no call is open, so that a pooled connection to a
        // frozen node is found dead before the next call needs it (the server
        // permits pings every second).
        .keep_alive_while_idle(true);
    let connector = Connector {
        addr: addr.to_string(),
        deadline: config.connect_timeout,
    };
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[derive(Clone)]
struct Connector {
    addr: String,
    deadline: Duration,
}

impl Service<Uri> for Connector {
    type Response = TokioIo<FirstBytesDeadline>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, limit) = (self.addr.clone(), self.deadline);
        Box::pin(async move {
            let deadline = Instant::now() + limit;
            // Resolves the name (if it is one) and tries its addresses in turn.
            let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr.as_str()))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TCP connection within the connect deadline ({limit:?})"),
                    )
                })??;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(FirstBytesDeadline {
                io: tcp,
                deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
                limit,
            }))
        })
    }
}

/// A TCP stream that fails its reads if the peer has sent nothing by the
/// deadline. hyper polls the read side of an HTTP/2 connection all the time,
/// so the deadline fires even while no call reads.
pub(crate) struct FirstBytesDeadline {
    io: TcpStream,
    /// `None` once the peer has sent something.
    deadline: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl AsyncRead for FirstBytesDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.deadline = None,
            Poll::Pending => {
                if let Some(sleep) = self.deadline.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    let limit = self.limit;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the node accepted the connection but sent no HTTP/2 handshake \
                             within the connect deadline ({limit:?})"
                        ),
                    )));
                }
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for FirstBytesDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

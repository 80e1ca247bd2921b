//! The server's connections: an accept loop over hyper's HTTP/1 with the limits a server open
//! to many clients needs — a cap on open connections and a deadline for each request's
//! headers, so half-sent requests cannot pile up — and a JSON `{error, detail}` body on every
//! error answer, including the few that hyper writes itself before any routing.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What one server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also an idle keep-alive's limit).
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Headers hyper parses before it gives up with its own 431; the router's limit
/// ([`super::MAX_HEADERS`]) is lower, so a request over it is answered by the router.
const PARSED_HEADERS: usize = 1024;

/// The longest a connection stays open, however busy (clients reconnect).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);

/// Time in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file handles, typically: wait for some to close.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(PARSED_HEADERS)
            .serve_connection(
                TokioIo::new(JsonErrors::new(stream)),
                TowerToHyperService::new(app.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that stops reading would otherwise hold its slot for ever.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
}

/// Answers a connection over the cap with a JSON 503 and closes it.
async fn refuse_busy(mut stream: TcpStream, max: usize) {
    let body = json!({
        "error": "unavailable",
        "detail": format!("the server has {max} connections open, its limit; retry shortly"),
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // Read what the client sent first: closing with unread bytes resets the connection,
        // and a reset can discard the answer before the client reads it.
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    })
    .await;
}

/// A connection whose bodyless error answers get a JSON body. hyper answers a request it
/// cannot parse (400), whose URI is too long (414) or whose headers are too large (431)
/// itself, with an empty body and no hook; the router always writes a body on its errors, so
/// a bodyless 4xx/5xx head written here can only be one of those, and is rewritten.
struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer still to be written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonErrors<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// The answer `head` with a JSON body, if it is a whole bodyless 4xx/5xx response head.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let lower = text.to_ascii_lowercase();
    if !(400..600).contains(&status)
        || !text.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let (error, detail) = match status {
        414 => ("uri_too_long", "the request URI is too long"),
        431 => ("headers_too_large", "the request headers are too large"),
        _ => ("bad_request", "the request is not valid HTTP/1.1"),
    };
    let body = json!({"error": error, "detail": detail}).to_string();
    let at = lower.find("\r\ncontent-length: 0\r\n")?;
    let end = at + "\r\ncontent-length: 0\r\n".len();
    Some(
        format!(
            "{}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n{}{body}",
            &text[..at],
            body.len(),
            &text[end..]
        )
        .into_bytes(),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        match with_json_body(buf) {
            Some(answer) => {
                self.pending = answer;
                // Taken whole; what the socket does not take now is written by the next flush.
                if let Poll::Ready(Err(e)) = self.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// Not vectored: hyper then writes each response head in one buffer, which
    /// [`with_json_body`] can recognise.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodyless_error_heads_get_a_json_body() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(with_json_body(head).unwrap()).unwrap();
        let (h, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(h.starts_with("HTTP/1.1 431 "), "{h}");
        assert!(h.contains("content-type: application/json") && h.contains("date: x"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "headers_too_large");
        assert!(h.contains(&format!("content-length: {}", body.len())));
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 40\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
        ] {
            assert!(with_json_body(kept).is_none());
        }
    }
}

//! Accept loop: connection caps, implicit TLS, one task per session, and
//! graceful shutdown (stop accepting, let transactions in flight finish
//! within the grace period, then stop).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use rackwave_smtp_proto::Reply;

use crate::limits::Refusal;
use crate::metrics::Reason;
use crate::session::{Session, SmtpStream};
use crate::SmtpServer;

/// Runs one listener until `shutdown` turns true, then drains its sessions.
pub async fn serve(
    ctx: Arc<SmtpServer>,
    listener: TcpListener,
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let slot = match ctx.connections.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                let reason = match why {
                    Refusal::Total => "total",
                    Refusal::PerIp => "per_ip",
                };
                ctx.metrics
                    .connections_refused
                    .get_or_create(&Reason { reason })
                    .inc();
                let mut tcp = tcp;
                let mut out = Vec::new();
                Reply::new(421, "4.7.0", "Too many connections, try again later")
                    .write_to(&mut out);
                sessions.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&out)).await;
                });
                continue;
            }
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        sessions.spawn(async move {
            ctx.metrics.connections.inc();
            ctx.metrics.active.inc();
            let stream = if implicit_tls {
                match tokio::time::timeout(ctx.config.command_timeout(), ctx.tls.accept(tcp)).await
                {
                    Ok(Ok(tls)) => Some(SmtpStream::Tls(Box::new(tls))),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => None,
                }
            } else {
                Some(SmtpStream::Plain(tcp))
            };
            if let Some(stream) = stream {
                Session::new(ctx.clone(), stream, peer, shutdown)
                    .run()
                    .await;
            }
            ctx.metrics.active.dec();
            drop(slot);
        });
    }
    drop(listener);
    let grace = ctx.config.shutdown_grace_secs;
    let drained = tokio::time::timeout(Duration::from_secs(grace), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = sessions.len(),
            "shutdown grace period over, closing remaining SMTP sessions"
        );
        sessions.shutdown().await;
    }
}

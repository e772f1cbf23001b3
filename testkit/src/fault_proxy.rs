//! A TCP proxy on a free loopback port that injects faults between two of our processes:
//! pass through, delay every chunk the client sends (a slow peer: pooled connections feel it
//! too), or refuse (a peer that is gone). The mode changes while connections are open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::free_port;

/// What the proxy does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Hold every client chunk this long before forwarding it.
    Delay(Duration),
    /// Close every connection (new and open) without forwarding.
    Refuse,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    /// Its port.
    pub port: u16,
    mode: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

const REFUSE: u64 = u64::MAX;

fn decode(v: u64) -> Mode {
    match v {
        0 => Mode::Pass,
        REFUSE => Mode::Refuse,
        ms => Mode::Delay(Duration::from_millis(ms)),
    }
}

impl FaultProxy {
    /// Listens on a free port and forwards to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Result<FaultProxy> {
        let port = free_port();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(("127.0.0.1", port)))?;
        let mode = Arc::new(AtomicU64::new(0));
        let m = mode.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    if decode(m.load(Ordering::Relaxed)) == Mode::Refuse {
                        return;
                    }
                    if let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await {
                        relay(client, upstream, m).await;
                    }
                });
            }
        });
        Ok(FaultProxy {
            port,
            mode,
            _rt: rt,
        })
    }

    /// Changes what the proxy does, for new and open connections.
    pub fn set(&self, mode: Mode) {
        let v = match mode {
            Mode::Pass => 0,
            Mode::Refuse => REFUSE,
            Mode::Delay(d) => (d.as_millis() as u64).clamp(1, REFUSE - 1),
        };
        self.mode.store(v, Ordering::Relaxed);
    }
}

async fn relay(client: TcpStream, upstream: TcpStream, mode: Arc<AtomicU64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let m = mode.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match decode(m.load(Ordering::Relaxed)) {
                Mode::Refuse => break,
                Mode::Delay(d) => tokio::time::sleep(d).await,
                Mode::Pass => {}
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if decode(mode.load(Ordering::Relaxed)) == Mode::Refuse {
                break;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    // Either direction ending (or a refusal) closes both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

//! The evidence relay between the workers of one crawl on several hosts
//! (PostgreSQL LISTEN/NOTIFY on the crawl's channel,
//! [`crate::store::relay_channel`]).
//!
//! Targets reach only the host the probe domain's DNS points to: that
//! worker's listener answers every `db:verify` (the dialback secret is
//! shared through the config) and receives every reply stream. So each
//! worker announces the domains it begins and ends probing (`begin DOMAIN
//! WORKER`, `end DOMAIN WORKER`); every listener admits the streams of
//! announced domains as it admits its own, and forwards what they show to
//! the announcing worker (`event ID WORKER`, the evidence in
//! `relay_events`). Only our workers can write to the database: a target
//! cannot announce a domain nor forge evidence, and a listener still
//! serves nobody but domains being probed by some worker of the crawl.

use crate::listener::{ProbeListener, Relay, Relayed};
use crate::store::{Store, StoreError, relay_channel};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long [`RelayHandle::shutdown`] waits for notices still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `begin` announcement waits for its own echo on the channel
/// (PostgreSQL delivers a NOTIFY to every listening session at once, so
/// once ours is back the other workers have theirs): a lost echo delays a
/// run by this much, never stops it.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

/// `begin` announcements waiting for their echo, by payload.
type Pending = Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<oneshot::Sender<()>>>>>;

/// A parsed notification of the crawl's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `worker` begins probing `domain`.
    Begin {
        /// The domain.
        domain: String,
        /// The worker.
        worker: String,
    },
    /// `worker` ended its run for `domain`.
    End {
        /// The domain.
        domain: String,
        /// The worker.
        worker: String,
    },
    /// Evidence `id` waits in `relay_events` for `worker`.
    Event {
        /// The row.
        id: i64,
        /// Its addressee.
        worker: String,
    },
}

impl Notice {
    /// Parses `begin DOMAIN WORKER`, `end DOMAIN WORKER` or `event ID
    /// WORKER` (the worker id is the rest of the line: it may hold
    /// spaces); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, ' ');
        let (kind, what, worker) = (parts.next()?, parts.next()?, parts.next()?);
        if worker.is_empty() || what.is_empty() {
            return None;
        }
        let worker = worker.to_owned();
        match kind {
            "begin" => Some(Self::Begin {
                domain: what.to_owned(),
                worker,
            }),
            "end" => Some(Self::End {
                domain: what.to_owned(),
                worker,
            }),
            "event" => Some(Self::Event {
                id: what.parse().ok()?,
                worker,
            }),
            _ => None,
        }
    }
}

enum Out {
    Notice {
        payload: String,
        done: oneshot::Sender<()>,
    },
    Event {
        to: String,
        evidence: Relayed,
    },
}

/// This worker's side of the relay, handed to its listener.
struct PgRelay {
    me: String,
    tx: mpsc::UnboundedSender<Out>,
}

impl Relay for PgRelay {
    fn announce(&self, domain: &str, begin: bool) -> BoxFuture<'static, ()> {
        let (done, rx) = oneshot::channel();
        let kind = if begin { "begin" } else { "end" };
        let _ = self.tx.send(Out::Notice {
            payload: format!("{kind} {domain} {}", self.me),
            done,
        });
        Box::pin(async move {
            let _ = tokio::time::timeout(ECHO_TIMEOUT, rx).await;
        })
    }

    fn forward(&self, worker: &str, evidence: Relayed) {
        let _ = self.tx.send(Out::Event {
            to: worker.to_owned(),
            evidence,
        });
    }
}

/// The relay's two tasks; [`Self::shutdown`] flushes and stops them.
pub struct RelayHandle {
    sender: JoinHandle<()>,
    receiver: JoinHandle<()>,
    tx: Option<mpsc::UnboundedSender<Out>>,
}

impl RelayHandle {
    /// Sends what is still queued (up to [`FLUSH_TIMEOUT`]), then stops.
    pub async fn shutdown(mut self) {
        self.tx.take();
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, &mut self.sender).await;
        self.sender.abort();
        self.receiver.abort();
    }
}

/// Connects `listener` to the crawl's other workers: listens on the
/// crawl's channel (before returning, so no announcement made after this
/// is missed) and sets the listener's relay.
pub async fn start(
    store: &Store,
    crawl_id: i64,
    worker_id: &str,
    listener: Arc<ProbeListener>,
) -> Result<RelayHandle, StoreError> {
    let channel = relay_channel(crawl_id);
    let err = |e| StoreError::from_sqlx(&crate::store::redact_url("relay"), e);
    let mut pg = sqlx::postgres::PgListener::connect_with(store.pool())
        .await
        .map_err(err)?;
    pg.listen(&channel).await.map_err(err)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let me = worker_id.to_owned();
    let pending: Pending = Arc::default();
    let echoes = pending.clone();
    let out_store = store.clone();
    let out_channel = channel.clone();
    let sender = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Notice { payload, done } => {
                    // A `begin` is done when its echo arrives (the other
                    // workers then know); an `end` once it is sent.
                    let echo = payload.starts_with("begin ");
                    let mut done = Some(done);
                    if echo && let Some(d) = done.take() {
                        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                        p.entry(payload.clone()).or_default().push(d);
                    }
                    if let Err(e) = out_store.notify(&out_channel, &payload).await {
                        tracing::warn!(error = %e, "relay: cannot announce {payload}");
                        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                        p.remove(&payload);
                    } else if let Some(d) = done {
                        let _ = d.send(());
                    }
                }
                Out::Event { to, evidence } => {
                    let json = serde_json::to_value(&evidence).unwrap_or_default();
                    if let Err(e) = out_store.relay_event(crawl_id, &to, &json).await {
                        tracing::warn!(error = %e, to, "relay: cannot forward evidence");
                    }
                }
            }
        }
    });
    let in_store = store.clone();
    let in_me = me.clone();
    let set_on = listener.clone();
    let receiver = tokio::spawn(async move {
        loop {
            let n = match pg.recv().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: notification stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match Notice::parse(n.payload()) {
                Some(Notice::Begin { domain, worker }) if worker != in_me => {
                    listener.remote_begin(&domain, &worker);
                }
                Some(Notice::Begin { .. }) => {
                    let waiting = echoes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(n.payload());
                    for done in waiting.into_iter().flatten() {
                        let _ = done.send(());
                    }
                }
                Some(Notice::End { domain, worker }) if worker != in_me => {
                    listener.remote_end(&domain);
                }
                Some(Notice::Event { id, worker }) if worker == in_me => {
                    match in_store.take_relay_event(id, &in_me).await {
                        Ok(Some(v)) => match serde_json::from_value::<Relayed>(v) {
                            Ok(ev) => listener.receive(ev),
                            Err(e) => tracing::warn!(error = %e, id, "relay: bad evidence row"),
                        },
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, id, "relay: cannot take evidence"),
                    }
                }
                _ => {}
            }
        }
    });
    set_on.set_relay(Arc::new(PgRelay { me, tx: tx.clone() }));
    Ok(RelayHandle {
        sender,
        receiver,
        tx: Some(tx),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_parse_and_garbage_is_ignored() {
        assert_eq!(
            Notice::parse("begin a.example host:12"),
            Some(Notice::Begin {
                domain: "a.example".into(),
                worker: "host:12".into()
            })
        );
        assert_eq!(
            Notice::parse("end a.example w 2"),
            Some(Notice::End {
                domain: "a.example".into(),
                worker: "w 2".into()
            })
        );
        assert_eq!(
            Notice::parse("event 42 w"),
            Some(Notice::Event {
                id: 42,
                worker: "w".into()
            })
        );
        for bad in [
            "",
            "begin",
            "begin a.example",
            "event x w",
            "stop a w",
            "begin  w",
        ] {
            assert_eq!(Notice::parse(bad), None, "{bad:?}");
        }
    }
}

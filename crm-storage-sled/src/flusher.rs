//! Group commit: one thread flushes sled to disk for every commit waiting on it.
//!
//! sled 0.34's own `flush_async` can lose its wake-up when several flushes run at once
//! (spacejam/sled#1241, #1308) and its `flush` blocks; so commits hand a request to this
//! thread and await a runtime-agnostic oneshot. Each flush starts after the requests it
//! answers were sent, so it covers every write those commits applied, and concurrent
//! commits share one disk sync.

use std::{
    sync::{Mutex, PoisonError, mpsc},
    thread,
};

use crm_core::storage::StorageError;
use futures::channel::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The handle commits use to wait for the disk.
pub(crate) struct Flusher {
    /// `None` once dropping.
    requests: Mutex<Option<mpsc::Sender<Waiter>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flushing thread; it ends when the flusher is dropped.
    pub(crate) fn start(db: sled::Db) -> std::io::Result<Self> {
        let (requests, pending) = mpsc::channel::<Waiter>();
        let thread = thread::Builder::new().name("crm-sled-flush".into()).spawn(move || {
            while let Ok(first) = pending.recv() {
                let waiting: Vec<Waiter> = std::iter::once(first).chain(pending.try_iter()).collect();
                let result = db.flush().map(drop).map_err(|e| e.to_string());
                for waiter in waiting {
                    // A commit whose caller went away no longer needs the answer.
                    let _ = waiter.send(result.clone());
                }
            }
        })?;
        Ok(Self { requests: Mutex::new(Some(requests)), thread: Some(thread) })
    }

    /// Waits until everything applied before the call is on disk.
    pub(crate) async fn flush(&self) -> Result<(), StorageError> {
        let (done, answer) = oneshot::channel();
        let sent = self.requests.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|r| r.send(done));
        sent.and_then(Result::ok)
            .ok_or_else(|| StorageError::Unavailable("the sled flushing thread has stopped".into()))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StorageError::Backend { source: format!("flushing sled: {message}").into() }),
            Err(_) => Err(StorageError::Unavailable("the sled flushing thread has stopped".into())),
        }
    }
}

impl Drop for Flusher {
    /// Ends the thread and waits for it, so its handle on the database is gone when the
    /// store is: a temporary store's directory is removed only once every handle is.
    fn drop(&mut self) {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

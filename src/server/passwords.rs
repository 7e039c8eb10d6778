//! Password hashing (argon2id, 19 MiB and tens of milliseconds of CPU each, by design) on a few
//! threads of its own, one per core, with a short queue: a burst of sign-ins waits its turn or
//! is told the server is busy, instead of running a hundred hashes at once (100 in parallel once
//! took the server from 293 MB to 1,985 MB, kept for good). At most one argon2 block per thread
//! is then in use at a time; that freed blocks go back to the system is the allocator's part
//! (jemalloc, see `main.rs` and docs/allocator.md: glibc's kept about 190 MiB per burst).

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

use tokio::sync::oneshot;

/// Hashing threads at most (argon2 is CPU-bound; more than the cores only adds memory).
const MAX_WORKERS: usize = 4;
/// Hashes that may wait per thread; past that, a sign-in is told to try again.
const QUEUE_PER_WORKER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the server is busy checking passwords; try again in a moment")]
    Busy,
    #[error("the password hashing threads have stopped")]
    Stopped,
}

type Work = Box<dyn FnOnce() + Send>;

/// The hashing threads and their queue; the threads end when this is dropped.
pub struct Passwords {
    queue: SyncSender<Work>,
}

impl Passwords {
    /// Starts one hashing thread per core (at most [`MAX_WORKERS`]).
    pub fn start() -> Result<Self, PasswordError> {
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS);
        let (queue, jobs) = sync_channel::<Work>(count * QUEUE_PER_WORKER);
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        for n in 0..count {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("passwords-{n}"))
                .spawn(move || loop {
                    // One thread takes a job at a time; the lock is held only to receive.
                    let job = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(|e| {
                    tracing::error!("cannot start a password thread: {e}");
                    PasswordError::Stopped
                })?;
        }
        Ok(Self { queue })
    }

    /// Runs `work` on a hashing thread, or refuses at once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = oneshot::channel();
        let job: Work = Box::new(move || {
            let _ = done.send(work());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PasswordError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(PasswordError::Stopped),
        }
        result.await.map_err(|_| PasswordError::Stopped)
    }

    /// An argon2id hash of `password` with the library's recommended parameters.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || password_auth::generate_hash(password))
            .await
    }

    /// Whether `password` matches `hash`. `None` checks against a stand-in hash, so that a name
    /// with no password takes as long as a wrong password (and the answer is false).
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        static STAND_IN: OnceLock<String> = OnceLock::new();
        self.run(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| {
                STAND_IN
                    .get_or_init(|| password_auth::generate_hash("x"))
                    .clone()
            });
            password_auth::verify_password(password.as_bytes(), &hash).is_ok() && known
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_a_burst_is_refused_past_the_queue() {
        let passwords = Passwords::start().expect("threads");
        let hashed = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(passwords
            .verify("correct horse".into(), Some(hashed.clone()))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("wrong".into(), Some(hashed))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("x".into(), None)
            .await
            .expect("no hash is no match"));
        // Far more at once than the threads and their queue hold: some are told to wait.
        let burst = (0..64).map(|i| passwords.verify(format!("guess {i}"), None));
        let answers = futures::future::join_all(burst).await;
        assert!(answers
            .iter()
            .any(|a| matches!(a, Err(PasswordError::Busy))));
        assert!(answers.iter().any(|a| matches!(a, Ok(false))));
    }
}

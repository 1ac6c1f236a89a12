//! The process-wide shutdown signal: a `watch` flag every loop checks.

use tokio::sync::watch;

/// Resolves once shutdown has been asked for (or its sender is gone).
pub async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

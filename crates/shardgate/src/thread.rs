//! Threads with their own current-thread runtime: workers and the
//! control thread.

use std::thread::JoinHandle;

use tokio::task::LocalSet;

/// An OS thread running `make()`'s future on its own current-thread
/// runtime and `LocalSet` (so tasks may be `!Send`): workers and the
/// control thread.
pub fn spawn_thread<F, Fut>(name: String, make: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => LocalSet::new().block_on(&runtime, make()),
                Err(e) => tracing::error!("{name}: cannot start its runtime: {e}"),
            }
        })
}

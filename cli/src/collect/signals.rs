//! SIGINT / SIGTERM → a clean shutdown: the first one resolves [`Termination::first`], a second
//! one ends the process at once (exit 130: what was already answered 2xx is durable).

/// The termination signals, taken from the moment this is made (before the address is printed,
/// so a signal sent right after start is a clean shutdown, not the default exit).
pub struct Termination {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Termination {
    /// Takes SIGINT and SIGTERM; call inside the runtime.
    #[cfg(unix)]
    pub fn take() -> Result<Termination, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let take = |kind| signal(kind).map_err(|e| format!("cannot take SIGINT/SIGTERM: {e}"));
        Ok(Termination {
            signals: (
                take(SignalKind::interrupt())?,
                take(SignalKind::terminate())?,
            ),
        })
    }

    #[cfg(not(unix))]
    pub fn take() -> Result<Termination, String> {
        Ok(Termination {})
    }

    /// Resolves at the first signal; from then on a second one exits the process with 130.
    #[cfg(unix)]
    pub async fn first(self) {
        let (mut int, mut term) = self.signals;
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("llm-cost collect: second signal, exiting without waiting");
            std::process::exit(130);
        });
    }

    /// Elsewhere: Ctrl-C.
    #[cfg(not(unix))]
    pub async fn first(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

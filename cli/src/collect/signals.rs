//! SIGINT / SIGTERM → a clean shutdown, without code in a signal handler.
//!
//! The two signals are blocked in the main thread before any other thread starts (threads inherit
//! the mask), and one thread takes them with `sigwait`: the first runs `on_first`, a second one
//! ends the process at once (exit 130: what was already answered 2xx is on disk).

/// Starts the signal thread. Call before spawning any other thread.
#[cfg(unix)]
pub fn on_termination(on_first: impl FnOnce() + Send + 'static) -> Result<(), String> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the calls only read
    // and write that local set and this thread's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!(
                "cannot block SIGINT/SIGTERM: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        set
    };
    let wait = move || -> libc::c_int {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` is a valid, initialised signal set; `signal` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set, &mut signal) };
        if rc == 0 {
            signal
        } else {
            -1
        }
    };
    std::thread::Builder::new()
        .name("collect-signals".into())
        .spawn(move || {
            if wait() < 0 {
                return;
            }
            on_first();
            if wait() >= 0 {
                eprintln!("llm-cost collect: second signal, exiting without waiting");
                std::process::exit(130);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// Elsewhere Ctrl-C ends the process the default way (answered lines are already on disk).
#[cfg(not(unix))]
pub fn on_termination(_on_first: impl FnOnce() + Send + 'static) -> Result<(), String> {
    Ok(())
}

//! Waking a channel's `receive` when the host has work for the instance.
//!
//! A channel instance runs one call at a time, and most of its time is
//! spent in `receive`, waiting for the platform on a `wasi:io/poll` list
//! that holds a `wasi:clocks/monotonic-clock` timer: the wait's end. A
//! command queued meanwhile (a reply to send) used to wait for that timer.
//! Here the host makes the timers a `receive` waits on wakeable: when a
//! command is queued, they fire at once, the component sees its wait run
//! out (which every channel already handles as "nothing came in time"),
//! `receive` returns, and the supervisor runs the command. No WIT change,
//! no change to any component.
//!
//! Only a wait is cut short, never a deadline for finishing something: a
//! timer is wakeable when it is made during a `receive` and ends no later
//! than that receive's own wait (plus [`SLACK`] for the component's clock
//! reading). The deadlines components give themselves to finish a read
//! (10 s and more) are longer, so a wake never breaks a read in progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as MonotonicClock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use crate::host::CallState;

/// The instance name wasmtime-wasi links the monotonic clock under.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";
/// How far past a receive's wait a timer may end and still be that wait.
const SLACK: Duration = Duration::from_secs(1);

/// The wake shared by a channel's supervisor, its handle and its store.
#[derive(Clone, Default)]
pub(crate) struct ReceiveWake {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Until when timers are a receive's wait; `None` outside a receive.
    window: Mutex<Option<Instant>>,
    woken: AtomicBool,
    notify: Notify,
}

impl ReceiveWake {
    /// A receive waiting at most `wait` is about to start. Call before
    /// looking at the command queue, so a command queued after that look
    /// wakes this receive.
    pub(crate) fn open(&self, wait: Duration) {
        self.inner.woken.store(false, Ordering::SeqCst);
        *self.window() = Some(Instant::now() + wait + SLACK);
    }

    /// The receive returned: timers made from now on are not waits.
    pub(crate) fn close(&self) {
        *self.window() = None;
    }

    /// A command was queued: the receive in progress (if any) returns now.
    pub(crate) fn wake(&self) {
        self.inner.woken.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A wakeable timer of `duration`, when it is a receive's wait.
    fn timer(&self, duration: Duration) -> Option<WakeableTimer> {
        if duration.is_zero() {
            return None;
        }
        let until = Instant::now().checked_add(duration)?;
        let window = (*self.window())?;
        (until <= window).then(|| WakeableTimer {
            until,
            wake: self.inner.clone(),
        })
    }
}

/// A `monotonic-clock` timer that also fires when the receive is woken.
struct WakeableTimer {
    until: Instant,
    wake: Arc<Inner>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for WakeableTimer {
    async fn ready(&mut self) {
        let woken = async {
            loop {
                let notified = self.wake.notify.notified();
                tokio::pin!(notified);
                // Registered before the flag is read, so a wake between
                // the read and the wait is not lost.
                notified.as_mut().enable();
                if self.wake.woken.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(self.until) => {}
            () = woken => {}
        }
    }
}

/// Replaces `subscribe-duration` and `subscribe-instant` with versions that
/// give a store with a [`ReceiveWake`] wakeable timers during a receive;
/// every other store (tools, hands) gets wasmtime-wasi's own.
pub(crate) fn shadow_clock(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, CallState>, (nanos,): (u64,)| {
            Ok((subscribe_timer(
                store.data_mut(),
                Duration::from_nanos(nanos),
            )?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, CallState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = MonotonicClock::now(&mut state.clocks())?;
            let duration = Duration::from_nanos(when.saturating_sub(now));
            Ok((subscribe_timer(state, duration)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn subscribe_timer(
    state: &mut CallState,
    duration: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    match state.receive_wake.as_ref().and_then(|w| w.timer(duration)) {
        Some(timer) => {
            let timer = state.table.push(timer)?;
            subscribe(&mut state.table, timer)
        }
        None => {
            let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            MonotonicClock::subscribe_duration(&mut state.clocks(), nanos)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once(timer: &mut WakeableTimer) -> Poll<()> {
        let mut ready = timer.ready();
        ready.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn a_wake_fires_the_receives_wait_and_nothing_else() {
        let wake = ReceiveWake::default();
        // Outside a receive no timer is wakeable.
        assert!(wake.timer(Duration::from_secs(5)).is_none());

        wake.open(Duration::from_secs(60));
        let mut wait = wake
            .timer(Duration::from_secs(60))
            .expect("the receive's wait");
        // A deadline for finishing a read, past the receive's wait: not one.
        assert!(wake.timer(Duration::from_secs(600)).is_none());
        assert!(wake.timer(Duration::ZERO).is_none());
        assert_eq!(poll_once(&mut wait), Poll::Pending);

        wake.wake();
        assert_eq!(poll_once(&mut wait), Poll::Ready(()));
        // Still woken for a wait the component starts after the wake.
        let mut later = wake.timer(Duration::from_secs(30)).expect("a wait");
        assert_eq!(poll_once(&mut later), Poll::Ready(()));

        wake.close();
        assert!(wake.timer(Duration::from_secs(5)).is_none());
        // The next receive starts unwoken.
        wake.open(Duration::from_secs(60));
        let mut next = wake.timer(Duration::from_secs(60)).expect("a wait");
        assert_eq!(poll_once(&mut next), Poll::Pending);
    }
}

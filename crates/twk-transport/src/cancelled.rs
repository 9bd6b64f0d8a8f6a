//! A cancellation token's wait for a long-lived task's `select!`, where it is polled at
//! every wake-up of the task: the relay's ingress connections (twice a request) and the
//! client's tunnel session.
//!
//! `CancellationToken::cancelled()` takes two locks at every poll: the token's own mutex to
//! read its flag, then tokio's `Notify` mutex to poll its `Notified` (~250 instructions,
//! four polls per request on an ingress connection; docs/performance.md, twenty-eighth
//! round). The relay's drain token is one for all connections, so those locks were shared by
//! every connection on both workers. [`Cancelled`] gives the `Notified` a waker of its own
//! once, which raises a flag and wakes the task: a later poll by the same task reads that
//! flag and takes no lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves once its token is cancelled, as `token.cancelled()` does.
pub struct Cancelled {
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    signal: Arc<Signal>,
    /// The task's waker that `signal` holds, compared here without its lock.
    task: Option<Waker>,
}

/// What the token's `Notified` wakes: it raises `fired`, then wakes the task.
struct Signal {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Cancelled {
    /// Waits for `token` (a clone of it is kept).
    pub fn new(token: &CancellationToken) -> Self {
        Cancelled {
            wait: Box::pin(token.clone().cancelled_owned()),
            signal: Arc::new(Signal {
                fired: AtomicBool::new(false),
                task: Mutex::new(None),
            }),
            task: None,
        }
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let same_task = this.task.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same_task && !this.signal.fired.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // The first poll, the token's wake, or another task: the signal is to wake this task
        // from now on (set before the wait is polled, so a cancel in between still wakes it).
        *this.signal.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        this.task = Some(cx.waker().clone());
        let signal = Waker::from(this.signal.clone());
        this.wait.as_mut().poll(&mut Context::from_waker(&signal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut Cancelled, waker: &Waker) -> Poll<()> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn pending_until_cancelled_then_woken_and_ready() {
        let token = CancellationToken::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut f = Cancelled::new(&token);
        assert!(poll(&mut f, &waker).is_pending());
        // Later polls by the same task, on its other wake-ups.
        assert!(poll(&mut f, &waker).is_pending());
        assert!(poll(&mut f, &waker).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        token.cancel();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the registered waker is woken"
        );
        assert!(poll(&mut f, &waker).is_ready());
    }

    #[test]
    fn a_new_waker_is_registered_and_woken() {
        let token = CancellationToken::new();
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut f = Cancelled::new(&token);
        assert!(poll(&mut f, &Waker::from(first.clone())).is_pending());
        assert!(poll(&mut f, &Waker::from(second.clone())).is_pending());
        token.cancel();
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut f, &Waker::from(second)).is_ready());
    }

    /// On a runtime, cancelled from another thread while the waiting task sleeps, with the
    /// task woken meanwhile by something else (as a connection's reads wake it).
    #[test]
    fn a_waiting_task_ends_when_another_thread_cancels() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let token = CancellationToken::new();
            let (ticked, mut three_ticks) = tokio::sync::mpsc::channel(1);
            let waiting = tokio::spawn({
                let token = token.clone();
                async move {
                    let mut cancelled = std::pin::pin!(Cancelled::new(&token));
                    let mut ticks = 0u32;
                    loop {
                        tokio::select! {
                            () = cancelled.as_mut() => return ticks,
                            () = tokio::time::sleep(std::time::Duration::from_millis(1)) => {
                                ticks += 1;
                                if ticks == 3 {
                                    let _ = ticked.send(()).await;
                                }
                            }
                        }
                    }
                }
            });
            three_ticks.recv().await.unwrap();
            std::thread::spawn(move || token.cancel()).join().unwrap();
            let ended = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
            assert!(ended.expect("the cancel woke the task").unwrap() >= 3);
        });
    }

    #[test]
    fn ready_at_once_when_cancelled_before_and_for_a_child() {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        parent.cancel();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        assert!(poll(&mut Cancelled::new(&child), &waker).is_ready());
        assert!(poll(&mut Cancelled::new(&parent), &waker).is_ready());
    }
}

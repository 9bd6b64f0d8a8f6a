//! A cancellation token's wait for a long-lived task's `select!`, where it is polled at
//! every wake-up of the task: the relay's ingress connections (twice a request) and the
//! client's tunnel session.
//!
//! `CancellationToken::cancelled()` takes two locks at every poll: the token's own mutex to
//! read its flag, then tokio's `Notify` mutex to poll its `Notified` (~250 instructions,
//! four polls per request on an ingress connection; docs/performance.md, twenty-eighth
//! round). [`Cancelled`] polls the `Notified` only until it has this task's waker, and then
//! only reads the flag: `cancel` sets the flag before it wakes the waker registered with it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves once its token is cancelled, as `token.cancelled()` does.
pub struct Cancelled {
    token: CancellationToken,
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the `Notified` holds, once it holds one.
    registered: Option<Waker>,
}

impl Cancelled {
    /// Waits for `token` (a clone of it is kept).
    pub fn new(token: &CancellationToken) -> Self {
        Cancelled {
            token: token.clone(),
            wait: Box::pin(token.clone().cancelled_owned()),
            registered: None,
        }
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.token.is_cancelled() {
            return Poll::Ready(());
        }
        let this = &mut *self;
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // First poll, or the future moved to another task: (re)register.
        let polled = this.wait.as_mut().poll(cx);
        if polled.is_pending() {
            this.registered = Some(cx.waker().clone());
        }
        polled
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

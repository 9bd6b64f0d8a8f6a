//! A request's handling run inside its HTTP/2 stream's own task, with a task of its own only
//! when the stream goes first.
//!
//! When the relay resets a stream (the sender went away, or sent a broken body), hyper drops
//! the stream's future. The exchange must still finish and be recorded with the side that
//! failed, so the handling used to be a task of its own that the stream's future waited on:
//! for every request a spawn, a second task polled, and a wake-up of the stream's task when
//! it ended. [`Detached`] runs the handling inside the stream's future instead, and spawns
//! what is left of it only if that future is dropped first, which a reset does and a
//! finished request does not.

use crate::forward::AgentBody;
use http::Response;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request's handling, boxed: a box moves without moving what it points to, which is how
/// the handling leaves a dropped stream for a task of its own.
pub(crate) type Handling = Pin<Box<dyn Future<Output = Response<AgentBody>> + Send>>;

/// See the module's documentation.
pub(crate) struct Detached {
    /// `None` once it has answered.
    handling: Option<Handling>,
}

impl Detached {
    pub(crate) fn new(handling: Handling) -> Self {
        Detached {
            handling: Some(handling),
        }
    }
}

impl Future for Detached {
    type Output = Response<AgentBody>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handling = self
            .handling
            .as_mut()
            .expect("a request's handling polled after it answered");
        // A panic answers 500, as the task's `JoinError` did, rather than unwinding through
        // hyper's stream task.
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| handling.as_mut().poll(cx)))
        {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(answer)) => answer,
            Err(_) => {
                tracing::warn!("request handler panicked");
                twk_transport::body::text_response(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "twk: the tunnel client failed while handling this request (tunnel side)\n",
                    "client",
                )
            }
        };
        self.handling = None;
        Poll::Ready(answer)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let Some(handling) = self.handling.take() else {
            return;
        };
        // Outside a runtime (the process is ending) there is nothing left to finish it on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(handling));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use tokio::sync::oneshot;

    fn answer(status: StatusCode) -> Response<AgentBody> {
        twk_transport::body::text_response(status, "", "client")
    }

    #[tokio::test]
    async fn a_handling_that_ends_answers_in_place() {
        let got = Detached::new(Box::pin(async { answer(StatusCode::ACCEPTED) })).await;
        assert_eq!(got.status(), StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn a_handling_whose_stream_is_dropped_finishes_in_a_task_of_its_own() {
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel::<&str>();
        let handling = Detached::new(Box::pin(async move {
            let _ = wait.await;
            let _ = done.send("recorded");
            answer(StatusCode::OK)
        }));
        let mut handling = Box::pin(handling);
        // Started, then dropped part-way, as hyper drops a reset stream's future.
        std::future::poll_fn(|cx| {
            assert!(handling.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        drop(handling);
        go.send(()).unwrap();
        assert_eq!(finished.await.unwrap(), "recorded");
    }

    #[tokio::test]
    async fn a_panic_answers_500() {
        let got = Detached::new(Box::pin(async {
            if std::hint::black_box(true) {
                panic!("a handler's bug");
            }
            answer(StatusCode::OK)
        }))
        .await;
        assert_eq!(got.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

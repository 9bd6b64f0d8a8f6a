#![allow(clippy::unwrap_used)]
use super::*;
use http_body_util::{BodyExt as _, StreamBody};

type Err = Box<dyn std::error::Error + Send + Sync>;
type Chunks = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Err>>;

/// A body that is what is sent on the channel (`depth` frames buffered) until dropped.
fn channel(depth: usize) -> (Chunks, impl Body<Data = Bytes, Error = Err> + Unpin) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(depth);
    let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, StreamBody::new(frames))
}

/// The data frames' lengths and the trailers, as a receiver sees them.
async fn frames<B>(mut body: B) -> (Vec<usize>, Option<http::HeaderMap>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let (mut lens, mut trailers) = (Vec::new(), None);
    while let Some(f) = body.frame().await {
        match f.unwrap().into_data() {
            Ok(d) => lens.push(d.len()),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    (lens, trailers)
}

fn byte(b: u8) -> Result<Frame<Bytes>, Err> {
    Ok(Frame::data(Bytes::from(vec![b])))
}

/// A webhook's body, one frame at its end, goes as it is: the same bytes, not a copy.
#[tokio::test]
async fn one_frame_at_the_end_goes_as_it_is() {
    let data = Bytes::from(vec![7u8; 300]);
    let ptr = data.as_ptr();
    let mut g = Gathered::new(http_body_util::Full::new(data), None);
    let f = g.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(f.as_ptr(), ptr);
    assert!(g.is_end_stream());
}

/// 100,000 one-byte chunks there at once: merged 16 KiB at a time.
#[tokio::test]
async fn chunks_there_at_once_are_merged() {
    let all = futures_util::stream::iter((0..100_000u32).map(|i| byte(i as u8)));
    let (lens, _) = frames(Gathered::new(StreamBody::new(all), None)).await;
    assert_eq!(lens.iter().sum::<usize>(), 100_000);
    assert!(lens.len() <= 8, "{} frames", lens.len());
}

/// One byte at a time, as hyper hands a chunked body on: four small frames as they come,
/// then none under 256 bytes but the last.
#[tokio::test]
async fn chunks_one_at_a_time_go_in_frames_of_at_least_the_floor() {
    let (tx, body) = channel(1);
    let feed = tokio::spawn(async move {
        for i in 0..10_000u32 {
            tx.send(byte(i as u8)).await.unwrap();
        }
    });
    let (lens, _) = frames(Gathered::new(body, None)).await;
    feed.await.unwrap();
    assert_eq!(lens.iter().sum::<usize>(), 10_000);
    let small = lens.iter().filter(|&&n| n < FLOOR).count();
    assert!(
        small <= AS_THEY_COME as usize + 1,
        "{small} small frames: {lens:?}"
    );
}

/// With a wait, small data still moves when nothing more comes (a stream of events): each
/// piece goes once the wait has passed, never held for the floor.
#[tokio::test]
async fn with_a_wait_small_data_goes_when_nothing_more_comes() {
    let (tx, body) = channel(1);
    let mut g = Gathered::new(body, Some(Duration::from_millis(20)));
    for i in 0..6u8 {
        tx.send(byte(i)).await.unwrap();
        let f = g.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], &[i]);
    }
    drop(tx);
    assert!(g.frame().await.is_none());
}

/// Trailers and errors keep their place after gathered data.
#[tokio::test]
async fn trailers_and_errors_come_after_the_data_before_them() {
    let (tx, body) = channel(16);
    for b in 0..8u8 {
        tx.try_send(byte(b)).unwrap();
    }
    let mut t = http::HeaderMap::new();
    t.insert("x-sum", http::HeaderValue::from_static("28"));
    tx.try_send(Ok(Frame::trailers(t))).unwrap();
    drop(tx);
    let (lens, trailers) = frames(Gathered::new(body, None)).await;
    assert_eq!(lens, vec![8]);
    assert_eq!(trailers.unwrap()["x-sum"], "28");

    let (tx, body) = channel(16);
    for b in 0..8u8 {
        tx.try_send(byte(b)).unwrap();
    }
    tx.try_send(Err("broken".into())).unwrap();
    let mut g = Gathered::new(body, None);
    let f = g.frame().await.unwrap().unwrap();
    assert_eq!(f.into_data().unwrap().len(), 8);
    assert!(g.frame().await.unwrap().is_err());
}

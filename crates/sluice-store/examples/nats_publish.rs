//! The reference for the JetStream backend's benchmark: a raw async-nats publisher,
//! publishing 400-byte messages to a stream and counting the ones the stream
//! acknowledged, with a fixed number in flight (as 100 HTTP connections keep 100
//! requests in flight). `bench/jetstream.sh` runs it beside Sluice on the same cluster.
//!
//! ```text
//! cargo run --release -p sluice-store --example nats_publish -- \
//!     nats://127.0.0.1:4222 <replicas> <in flight> <seconds> [payload bytes]
//! ```
//!
//! Prints one JSON line: `{"acked", "seconds", "acked_per_s", "errors"}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: nats_publish <url> <replicas> <in flight> <seconds> [payload bytes]";
    let [url, replicas, in_flight, seconds, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let replicas: usize = replicas.parse()?;
    let in_flight: usize = in_flight.parse()?;
    let seconds: u64 = seconds.parse()?;
    let payload_bytes: usize = rest.first().map_or(Ok(400), |p| p.parse())?;

    let client = async_nats::connect(url.as_str()).await?;
    let js = jetstream::new(client);
    let name = "BENCH_RAW";
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec!["bench.raw.>".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await?;
    let payload = Bytes::from(vec![b'x'; payload_bytes]);
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(in_flight);
    for w in 0..in_flight {
        let (js, payload, acked, errors, stop) = (
            js.clone(),
            payload.clone(),
            acked.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let subject = format!("bench.raw.{w}");
            while !stop.load(Ordering::Relaxed) {
                let ok = match js.publish(subject.clone(), payload.clone()).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                let counter = if ok { &acked } else { &errors };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let _ = js.delete_stream(name).await;
    println!(
        r#"{{"acked":{n},"seconds":{elapsed:.3},"acked_per_s":{:.0},"errors":{}}}"#,
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

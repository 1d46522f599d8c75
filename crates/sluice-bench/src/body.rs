//! The request bodies the workloads send, generated once per run or written into a
//! worker's reused buffer.

use std::io::Write;

/// Generated events of one run.
pub(crate) struct Bodies {
    /// `"x"` repeated to pad each payload to the requested size.
    pad: String,
    /// This run's tag, written into events that carry a send time, so that a consumer
    /// never times an event left over from another run.
    run: u64,
    /// One event (the ingest workload's body).
    pub single: Vec<u8>,
    /// `batch_size` events as a JSON array (the batch workload's body).
    pub batch: Vec<u8>,
}

/// What a consumer reads back from a timed event's payload.
#[derive(serde::Deserialize)]
struct Probe {
    run: u64,
    sent_us: u64,
}

impl Bodies {
    pub fn new(payload_bytes: usize, batch_size: usize, run: u64) -> Bodies {
        // `{"pad":""}` is 10 bytes of the payload; the padding makes up the rest.
        let pad = "x".repeat(payload_bytes.saturating_sub(10));
        let mut bodies = Bodies {
            pad,
            run,
            single: Vec::new(),
            batch: Vec::new(),
        };
        let mut single = Vec::new();
        bodies.write_event(&mut single, None);
        let mut batch = vec![b'['];
        for i in 0..batch_size.max(1) {
            if i > 0 {
                batch.push(b',');
            }
            batch.extend_from_slice(&single);
        }
        batch.push(b']');
        bodies.single = single;
        bodies.batch = batch;
        bodies
    }

    /// Appends one event to `out`; with `sent_us` (µs after the run's start), the
    /// payload carries the run tag and that time, for end-to-end latency.
    pub fn write_event(&self, out: &mut Vec<u8>, sent_us: Option<u64>) {
        out.extend_from_slice(br#"{"event_type":"bench.event","payload":{"#);
        if let Some(us) = sent_us {
            // Writing into a Vec cannot fail.
            let _ = write!(out, r#""run":{},"sent_us":{us},"#, self.run);
        }
        out.extend_from_slice(br#""pad":""#);
        out.extend_from_slice(self.pad.as_bytes());
        out.extend_from_slice(br#""}}"#);
    }

    /// The send time (µs after the run's start) of a payload this run wrote, if it is one.
    pub fn sent_us(&self, payload: &str) -> Option<u64> {
        let probe: Probe = serde_json::from_str(payload).ok()?;
        (probe.run == self.run).then_some(probe.sent_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_of_the_requested_size() {
        let bodies = Bodies::new(400, 3, 7);
        let single: serde_json::Value = serde_json::from_slice(&bodies.single).expect("json");
        assert_eq!(single["payload"].to_string().len(), 400);
        let batch: Vec<serde_json::Value> = serde_json::from_slice(&bodies.batch).expect("json");
        assert_eq!(batch, vec![single; 3]);
    }

    #[test]
    fn timed_events_are_recognised_only_from_their_own_run() {
        let bodies = Bodies::new(100, 1, 7);
        let mut out = Vec::new();
        bodies.write_event(&mut out, Some(1234));
        let event: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let payload = event["payload"].to_string();
        assert_eq!(bodies.sent_us(&payload), Some(1234));
        assert_eq!(Bodies::new(100, 1, 8).sent_us(&payload), None);
        assert_eq!(bodies.sent_us(r#"{"pad":"x"}"#), None);
    }
}

//! The ceiling for ingest: read the body, parse the envelope like Sluice (borrowed
//! `RawValue`s), answer 201, store nothing.

use http_body_util::BodyExt;

fn main() {
    sluice_bench_reference::run(|req| async move {
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            return sluice_bench_reference::json(400, br#"{"error":"body"}"#);
        };
        if sluice_bench_reference::parses(&body) {
            sluice_bench_reference::json(
                201,
                br#"{"event_id":"evt_01M82ERJTM0000000000003JC7","status":"received","received_at":"2026-11-22T20:22:04.372Z"}"#,
            )
        } else {
            sluice_bench_reference::json(400, br#"{"error":"json"}"#)
        }
    });
}

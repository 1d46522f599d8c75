//! The ceiling of HTTP on this machine: every request gets a tiny JSON answer.

fn main() {
    sluice_bench_reference::run(|_req| async {
        sluice_bench_reference::json(200, br#"{"hello":"world"}"#)
    });
}

//! TLS on the same port, with ALPN choosing HTTP/2 or HTTP/1.1, against a certificate
//! generated for the test.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{event, runtime, Server};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};

fn client_config(ca: &rcgen::Certificate, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.der().clone())
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A server on TLS with a fresh self-signed certificate for `localhost`, the
/// certificate, and the directory holding `cert.pem` and `key.pem` (keep it alive).
fn tls_server() -> (Server, rcgen::CertifiedKey, tempfile::TempDir) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let files = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
    let s = Server::start(&[
        "--tls-cert",
        cert_path.to_str().expect("path"),
        "--tls-key",
        key_path.to_str().expect("path"),
    ]);
    (s, certified, files)
}

#[test]
fn tls_serves_http2_and_http1_by_alpn() {
    let (s, certified, _files) = tls_server();
    assert!(
        s.log_text().contains("sluice listening on https://"),
        "{}",
        s.log_text()
    );
    let key = s.key().to_owned();

    runtime().block_on(async {
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let tcp = tokio::net::TcpStream::connect(s.addr)
                .await
                .expect("connect");
            let connector = tokio_rustls::TlsConnector::from(client_config(&certified.cert, alpn));
            let name = ServerName::try_from("localhost").expect("name");
            let tls = connector.connect(name, tcp).await.expect("TLS handshake");
            assert_eq!(
                tls.get_ref().1.alpn_protocol(),
                Some(alpn),
                "ALPN must pick what the client offered"
            );
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("https://localhost:{}/v1/events", s.addr.port()))
                .header("host", "localhost")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(event("tls", 1))))
                .expect("request");
            let resp = if alpn == b"h2" {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                sender.send_request(req).await.expect("h2 request")
            } else {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .expect("h1 handshake");
                tokio::spawn(conn);
                sender.send_request(req).await.expect("h1 request")
            };
            assert_eq!(resp.status(), 201, "over {}", String::from_utf8_lossy(alpn));
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert!(String::from_utf8_lossy(&body).contains("\"status\":\"received\""));
        }
    });
}

#[test]
fn tls_misconfiguration_fails_at_start_with_a_clear_error() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let files = tempfile::tempdir().expect("tempdir");
    let cert = files.path().join("cert.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    let data = files.path().join("data");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(common::binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra);
        common::run_to_exit(&mut cmd, std::time::Duration::from_secs(60))
    };
    let only_cert = run(&["--tls-cert", cert.to_str().expect("path")]);
    assert!(!only_cert.status.success());
    assert!(String::from_utf8_lossy(&only_cert.stderr).contains("set both tls_cert and tls_key"));
    let missing_key = run(&[
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert!(!missing_key.status.success());
    let err = String::from_utf8_lossy(&missing_key.stderr);
    assert!(
        err.contains("cannot read TLS private key /nonexistent/key.pem"),
        "{err}"
    );
}

/// `sluice bench` loads an https:// server over HTTP/1.1 and HTTP/2 (ALPN), trusting
/// the server's certificate through `--ca-file`; without it the certificate is unknown
/// and every connection is refused, which the exit code says.
#[test]
fn bench_speaks_https_with_a_private_ca() {
    let (s, _, files) = tls_server();
    let cert_path = files.path().join("cert.pem");
    let cert = cert_path.to_str().expect("path");
    let url = format!("https://localhost:{}", s.addr.port());
    let run = |extra: &[&str]| {
        common::run_to_exit(
            std::process::Command::new(common::binary())
                .args(["bench", "--url", &url, "--api-key", s.key(), "--json"])
                .args(["--duration", "1s", "--connections", "4"])
                .args(extra),
            std::time::Duration::from_secs(60),
        )
    };
    for protocol in ["http1", "http2"] {
        let out = run(&["--ca-file", cert, "--protocol", protocol]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{protocol}: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
        assert_eq!(report["success_pct"], 100.0, "{protocol}: {report}");
        assert!(
            report["statuses"]["201"].as_u64().unwrap_or(0) > 0,
            "{report}"
        );
    }
    // The system's roots do not know this certificate: nothing connects, exit 2.
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

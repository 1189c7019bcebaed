//! The VM's Docker daemon, reached the way `minikube docker-env` says: `DOCKER_HOST`
//! (`tcp://<vm-ip>:2376`), TLS with the client certificates in `DOCKER_CERT_PATH` when
//! `DOCKER_TLS_VERIFY=1`, or a plain unix socket when the host is `unix://…`. Images are built
//! there so pods run them without a registry, and containers' stats are read there.
//!
//! The daemon's API version is negotiated on connect: minikube's daemon and a developer's Docker
//! Engine are often older than the version bollard speaks by default (Docker 20.10 is API 1.41).
//! minikube is only asked through the process runner; the parsing is pure and tested on the
//! real output format.

pub mod build;
pub mod context;

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

use crate::minikube;
use crate::process::{ProcessError, Runner};

/// How long connecting (and negotiating the version) may take: the daemon answers in
/// milliseconds when it is up; an address that swallows packets must not hang devenv.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `DOCKER_CERT_PATH` holds: the CA that signed the daemon's certificate, and the client's
/// certificate and key.
const CERT_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// bollard's per-request time limit, in seconds. A build streams its output as it goes, so the
/// limit only bounds the wait for the daemon's first answer.
const REQUEST_TIMEOUT_SECS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `minikube docker-env` could not be run or failed.
    #[error("cannot ask minikube for the Docker daemon of {profile}")]
    Env {
        profile: String,
        #[source]
        source: ProcessError,
    },
    /// `minikube docker-env` printed something devenv does not understand.
    #[error("unexpected `minikube docker-env` output: {message}")]
    Parse { message: String },
    /// The client could not be set up (certificates missing or unreadable, bad address).
    #[error("cannot set up a Docker client for {host}")]
    Client {
        host: String,
        cert_path: Option<PathBuf>,
        #[source]
        source: bollard::errors::Error,
    },
    /// `DOCKER_CERT_PATH` lacks a file the TLS connection needs (the handshake would only say
    /// "canceled").
    #[error("{} has no {}", .path.display(), .missing.join(", "))]
    Certificates { path: PathBuf, missing: Vec<String> },
    /// The daemon did not answer.
    #[error("the Docker daemon at {host} does not answer{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Unreachable {
        host: String,
        reason: Option<String>,
    },
    /// A request to the daemon failed.
    #[error("Docker daemon at {host}: {what} failed")]
    Request {
        host: String,
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl DockerError {
    /// `docker-env` refused because the VM's runtime is not Docker (MK_USAGE, exit 14).
    pub fn wrong_runtime(&self) -> bool {
        matches!(
            self,
            DockerError::Env {
                source: crate::process::ProcessError::Exited { code: Some(14), .. },
                ..
            }
        )
    }

    pub fn help(&self) -> Option<String> {
        match self {
            // MK_USAGE: docker-env works only with the docker runtime (minikube 1.39 defaults
            // to containerd).
            DockerError::Env { .. } if self.wrong_runtime() => Some(
                "the VM's container runtime is not Docker, and minikube's docker-env works only with Docker: `devenv up --recreate` creates the VM again with Docker (its cluster's contents are lost)".into(),
            ),
            DockerError::Env { profile, source } => Some(match source.help() {
                Some(h) => format!("{h}\nis the VM running? `devenv status` (or `minikube -p {profile} status`)"),
                None => format!("is the VM running? `devenv status` (or `minikube -p {profile} status`)"),
            }),
            DockerError::Parse { .. } => Some(
                "run `minikube -p <profile> docker-env --shell none` to see what it prints; devenv expects DOCKER_HOST and, with TLS, DOCKER_CERT_PATH".into(),
            ),
            DockerError::Client { cert_path, .. } => Some(match cert_path {
                Some(p) => format!(
                    "check that {} holds ca.pem, cert.pem and key.pem (`minikube update-context` or a `devenv up` regenerates them)",
                    p.display()
                ),
                None => "check DOCKER_HOST in `minikube docker-env --shell none`".into(),
            }),
            DockerError::Certificates { path, .. } => Some(format!(
                "minikube keeps the Docker client certificates in {}: `minikube -p <profile> docker-env` names the directory, and `minikube start` (or `devenv up`) writes them again",
                path.display()
            )),
            DockerError::Unreachable { .. } => Some(
                "the VM may be stopped or still booting: `devenv status`, then `devenv up`".into(),
            ),
            DockerError::Request { .. } => None,
        }
    }
}

/// Where the daemon is and how to talk to it, from `minikube docker-env --shell none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEnv {
    /// `DOCKER_HOST`: `tcp://IP:2376` for minikube's VM, or `unix:///path`.
    pub host: String,
    /// `DOCKER_TLS_VERIFY=1`.
    pub tls_verify: bool,
    /// `DOCKER_CERT_PATH`: ca.pem, cert.pem and key.pem.
    pub cert_path: Option<PathBuf>,
}

/// How the client connects, decided from a [`DockerEnv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A local socket, no TLS.
    Unix(String),
    /// TCP with TLS and client certificates (minikube's daemon).
    Tls { address: String, certs: PathBuf },
    /// TCP without TLS (a daemon that asks for none).
    Tcp(String),
}

/// Read `minikube docker-env --shell none` (`KEY=value` lines). The `--shell bash` form
/// (`export KEY="value"`, `#` comments) is read too, so output pasted from a terminal works.
pub fn parse_env(text: &str) -> Result<DockerEnv, DockerError> {
    let mut host = None;
    let mut tls_verify = false;
    let mut cert_path = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("unset ") {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "DOCKER_HOST" => host = Some(value.to_string()),
            "DOCKER_TLS_VERIFY" => tls_verify = !value.is_empty() && value != "0",
            "DOCKER_CERT_PATH" if !value.is_empty() => cert_path = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    let host = host.ok_or_else(|| DockerError::Parse {
        message: format!(
            "no DOCKER_HOST in {:?}",
            crate::process::tail_lines(text, 3)
        ),
    })?;
    Ok(DockerEnv {
        host,
        tls_verify,
        cert_path,
    })
}

impl DockerEnv {
    /// Ask minikube where the profile's daemon is (`minikube docker-env`). Not read-only in
    /// minikube (it runs `docker version` and may restart dockerd in the VM), so a command asks
    /// once and keeps the answer (or the failure).
    pub async fn for_profile(runner: &dyn Runner, profile: &str) -> Result<DockerEnv, DockerError> {
        let env_error = |source| DockerError::Env {
            profile: profile.to_string(),
            source,
        };
        let out = runner
            .run(&minikube::docker_env(profile))
            .await
            .map_err(env_error)?;
        parse_env(&out.stdout)
    }

    /// The endpoint this environment describes.
    pub fn endpoint(&self) -> Result<Endpoint, DockerError> {
        if let Some(path) = self.host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(path.to_string()));
        }
        let Some(address) = self.host.strip_prefix("tcp://") else {
            return Err(DockerError::Parse {
                message: format!("DOCKER_HOST={} is neither tcp:// nor unix://", self.host),
            });
        };
        if !self.tls_verify {
            return Ok(Endpoint::Tcp(address.to_string()));
        }
        let certs = self.cert_path.clone().ok_or_else(|| DockerError::Parse {
            message: "DOCKER_TLS_VERIFY=1 without DOCKER_CERT_PATH".into(),
        })?;
        Ok(Endpoint::Tls {
            address: address.to_string(),
            certs,
        })
    }
}

/// A connected client and the address it talks to (for messages).
#[derive(Debug, Clone)]
pub struct Daemon {
    pub docker: Docker,
    pub host: String,
}

impl Daemon {
    /// Connect to the daemon `env` describes and negotiate the API version.
    pub async fn connect(env: &DockerEnv) -> Result<Daemon, DockerError> {
        let client_error = |source| DockerError::Client {
            host: env.host.clone(),
            cert_path: env.cert_path.clone(),
            source,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match env.endpoint()? {
            Endpoint::Unix(path) => Docker::connect_with_unix(&path, REQUEST_TIMEOUT_SECS, version)
                .map_err(client_error)?,
            Endpoint::Tcp(address) => {
                Docker::connect_with_http(&address, REQUEST_TIMEOUT_SECS, version)
                    .map_err(client_error)?
            }
            Endpoint::Tls { address, certs } => {
                let missing: Vec<String> = CERT_FILES
                    .iter()
                    .filter(|f| !certs.join(f).is_file())
                    .map(|f| f.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Err(DockerError::Certificates {
                        path: certs,
                        missing,
                    });
                }
                Docker::connect_with_ssl(
                    &address,
                    &certs.join("key.pem"),
                    &certs.join("cert.pem"),
                    &certs.join("ca.pem"),
                    REQUEST_TIMEOUT_SECS,
                    version,
                )
                .map_err(client_error)?
            }
        };
        let unreachable = |reason: Option<String>| DockerError::Unreachable {
            host: env.host.clone(),
            reason,
        };
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| {
                unreachable(Some(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            })?
            .map_err(|e| unreachable(Some(e.to_string())))?;
        Ok(Daemon {
            docker,
            host: env.host.clone(),
        })
    }

    /// The API version agreed with the daemon (`1.41` for Docker 20.10).
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// A failed request, named.
    pub fn request_error(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let host = self.host.clone();
        let what = what.into();
        move |source| DockerError::Request { host, what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `minikube -p devenv-shop docker-env --shell none` on a kvm2 VM (contracts §5).
    const NONE: &str = "DOCKER_TLS_VERIFY=1\nDOCKER_HOST=tcp://192.168.39.10:2376\nDOCKER_CERT_PATH=/home/ann/.minikube/certs\nMINIKUBE_ACTIVE_DOCKERD=devenv-shop\n";

    /// The same with `--shell bash`, as a developer sees it in a terminal.
    const BASH: &str = "export DOCKER_TLS_VERIFY=\"1\"\nexport DOCKER_HOST=\"tcp://192.168.39.10:2376\"\nexport DOCKER_CERT_PATH=\"/home/ann/.minikube/certs\"\nexport MINIKUBE_ACTIVE_DOCKERD=\"devenv-shop\"\n\n# To point your shell to minikube's docker-daemon, run:\n# eval $(minikube -p devenv-shop docker-env)\n";

    #[test]
    fn docker_env_refused_for_another_runtime_points_at_recreate() {
        let e = DockerError::Env {
            profile: "devenv-shop".into(),
            source: crate::process::ProcessError::Exited {
                command: "minikube docker-env -p devenv-shop --shell none".into(),
                code: Some(14),
                tail: "❌  Exiting due to MK_USAGE: The docker-env command is only compatible with the \"docker\" runtime".into(),
            },
        };
        let help = e.help().unwrap();
        assert!(
            help.contains("not Docker") && help.contains("devenv up --recreate"),
            "{help}"
        );
    }

    #[test]
    fn minikubes_vm_daemon_is_tcp_with_tls_and_client_certificates() {
        let env = parse_env(NONE).unwrap();
        assert_eq!(
            env.endpoint().unwrap(),
            Endpoint::Tls {
                address: "192.168.39.10:2376".into(),
                certs: PathBuf::from("/home/ann/.minikube/certs"),
            }
        );
    }

    #[test]
    fn the_bash_form_reads_the_same() {
        assert_eq!(parse_env(BASH).unwrap(), parse_env(NONE).unwrap());
    }

    #[test]
    fn crlf_line_ends_and_extra_lines_are_tolerated() {
        let text = NONE.replace('\n', "\r\n") + "NO_PROXY=192.168.39.10\r\n";
        assert_eq!(parse_env(&text).unwrap(), parse_env(NONE).unwrap());
    }

    #[test]
    fn a_unix_socket_needs_no_tls() {
        let env = parse_env("DOCKER_HOST=unix:///var/run/docker.sock\n").unwrap();
        assert_eq!(
            env.endpoint().unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
    }

    #[test]
    fn tls_without_a_certificate_path_is_refused() {
        let env = parse_env("DOCKER_TLS_VERIFY=1\nDOCKER_HOST=tcp://10.0.0.1:2376\n").unwrap();
        assert!(matches!(env.endpoint(), Err(DockerError::Parse { .. })));
    }

    #[test]
    fn output_without_a_host_is_an_error_that_quotes_it() {
        let err = parse_env("🤷  Profile \"x\" not found.\n").unwrap_err();
        assert!(err.to_string().contains("no DOCKER_HOST"), "{err}");
    }

    #[test]
    fn an_unknown_scheme_is_refused() {
        let env = parse_env("DOCKER_HOST=ssh://me@vm\n").unwrap();
        assert!(env.endpoint().is_err());
    }
}

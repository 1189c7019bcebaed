//! Image builds inside the VM's Docker daemon (`POST /build` with the context as a tar stream),
//! so pods run the image with `imagePullPolicy: Never` and no registry is involved.
//!
//! Each image gets two tags: the one devenv.toml names (for people: `docker images`,
//! `docker run`) and `<repository>:devenv-<context hash>`, which the release uses so that a
//! changed context rolls the pods out and an unchanged one leaves them alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptions};
use futures_util::StreamExt;

use super::context::{Context, ContextError};
use super::{Daemon, DockerError};
use crate::config::split_reference;

/// The tag the release runs: the context's hash, so it changes exactly when the context does.
pub fn content_tag(hash: &str) -> String {
    format!("devenv-{hash}")
}

/// One image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub service: String,
    /// The context directory on the host.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// The reference devenv.toml names (`shop-api:dev`).
    pub reference: String,
    /// The context's hash when the plan was made.
    pub hash: String,
}

impl ImageSpec {
    /// The image of `service` as devenv.toml describes it, with its context's current hash.
    pub fn read(
        root: &std::path::Path,
        service: &str,
        image: &crate::config::Image,
    ) -> Result<ImageSpec, ContextError> {
        let context = root.join(&image.context);
        let hash = Context::scan(&context, &image.dockerfile)?.hash(&image.dockerfile)?;
        Ok(ImageSpec {
            service: service.to_string(),
            context,
            dockerfile: image.dockerfile.clone(),
            reference: image.tag.clone(),
            hash,
        })
    }

    pub fn repository(&self) -> &str {
        split_reference(&self.reference).0
    }

    /// `<repository>:devenv-<hash>`, the reference the release runs.
    pub fn content_reference(&self) -> String {
        format!("{}:{}", self.repository(), content_tag(&self.hash))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The Dockerfile failed: the daemon's message and the step it failed at.
    #[error("building {reference} failed{}: {message}", .step.as_ref().map(|s| format!(" at {s}")).unwrap_or_default())]
    Failed {
        reference: String,
        step: Option<String>,
        message: String,
        /// The failing command's exit code, when the daemon says it.
        code: Option<i64>,
    },
}

impl BuildError {
    pub fn help(&self) -> Option<String> {
        match self {
            BuildError::Docker(e) => e.help(),
            BuildError::Context(ContextError::NoDockerfile { .. }) => {
                Some("set `dockerfile` in [services.NAME.image] (relative to `context`)".into())
            }
            BuildError::Context(_) => None,
            BuildError::Failed { .. } => Some(
                "fix the Dockerfile or the files it uses; `devenv up | cat` prints every line of the build".into(),
            ),
        }
    }
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The content reference the release runs.
    pub reference: String,
    pub elapsed: Duration,
    /// Bytes of context sent.
    pub context_bytes: usize,
}

/// The exit code in the classic builder's message ("… returned a non-zero code: 3").
pub fn exit_code(message: &str) -> Option<i64> {
    let (_, rest) = message.rsplit_once("non-zero code: ")?;
    rest.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Build `spec` in the daemon from its context as it is now, tagged with both references. The
/// content tag is the one the plan computed (and gave the release), even if a file changed
/// since: the next `up` sees the new hash and builds again.
/// `on_line` sees each line of build output as it arrives.
pub async fn build(
    daemon: &Daemon,
    spec: &ImageSpec,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Built, BuildError> {
    let started = Instant::now();
    let context = Context::scan(&spec.context, &spec.dockerfile)?;
    let tar = context.tar()?;
    let context_bytes = tar.len();
    let content = spec.content_reference();
    let options = BuildImageOptionsBuilder::new()
        .dockerfile(&spec.dockerfile)
        .t(&content)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = daemon
        .docker
        .build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut step = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                for line in info
                    .stream
                    .iter()
                    .chain(info.status.iter())
                    .flat_map(|s| s.lines())
                {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    if line.starts_with("Step ") {
                        step = Some(line.to_string());
                    }
                    on_line(line);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(BuildError::Failed {
                    reference: spec.reference.clone(),
                    code: exit_code(&error),
                    step,
                    message: error.trim().to_string(),
                });
            }
            Err(e) => {
                return Err(daemon.request_error(format!("building {}", spec.reference))(e).into());
            }
        }
    }
    let (repo, tag) = split_reference(&spec.reference);
    let options = TagImageOptions {
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
    };
    daemon
        .docker
        .tag_image(&content, Some(options))
        .await
        .map_err(daemon.request_error(format!("tagging {content} as {}", spec.reference)))?;
    Ok(Built {
        reference: content,
        elapsed: started.elapsed(),
        context_bytes,
    })
}

/// Whether the daemon has `reference` (an image removed or a VM recreated needs a rebuild).
pub async fn exists(daemon: &Daemon, reference: &str) -> Result<bool, DockerError> {
    match daemon.docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(daemon.request_error(format!("looking up {reference}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_read_from_the_classic_builders_message() {
        assert_eq!(
            exit_code("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
            Some(3)
        );
        assert_eq!(exit_code("COPY failed: file not found"), None);
    }
}

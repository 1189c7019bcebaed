//! Readiness as pure functions over Kubernetes objects, so they are tested on YAML fixtures and
//! the caller owns the timeout. They follow what `kubectl rollout status` checks.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;

/// A Deployment is rolled out when the controller has seen its latest spec and every replica is
/// updated, ready and available. A `ProgressDeadlineExceeded` condition is an error: it will
/// not get there by itself.
pub fn deployment_ready(d: &Deployment) -> Result<bool, crate::unreadable::Unreadable> {
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Ok(false);
    };
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Err(crate::unreadable::Unreadable::new(
            c.message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".into()),
        ));
    }
    Ok(status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.replicas.unwrap_or(0) <= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
        && status.ready_replicas.unwrap_or(0) >= wanted)
}

/// A StatefulSet is rolled out when every replica is ready and on the current revision.
pub fn statefulset_ready(s: &StatefulSet) -> bool {
    let generation = s.metadata.generation.unwrap_or(0);
    let wanted = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else {
        return false;
    };
    let revision_done = match (&status.current_revision, &status.update_revision) {
        (Some(current), Some(update)) => current == update,
        _ => true,
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.ready_replicas.unwrap_or(0) >= wanted
        && status.updated_replicas.unwrap_or(wanted) >= wanted
        && revision_done
}

/// Why a pod's container cannot start by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    pub container: String,
    pub reason: String,
    pub message: String,
}

/// Waiting reasons that only a change (image, config, code) fixes: surfaced at once instead of
/// waiting for the timeout.
const STUCK: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "RunContainerError",
];

/// The first container of `pod` that is stuck, if any.
pub fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            STUCK.contains(&reason.as_str()).then(|| PodProblem {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                container: c.name.clone(),
                reason,
                message: waiting.message.clone().unwrap_or_default(),
            })
        })
}

/// Whether a pod takes traffic: Running, Ready, and not being deleted.
pub fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn a_deployment_is_ready_once_every_replica_is_updated_and_available() {
        let d: Deployment = yaml(
            "metadata: {name: api, generation: 2}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2}\n",
        );
        assert_eq!(deployment_ready(&d), Ok(true));
    }

    #[test]
    fn a_deployment_whose_new_spec_was_not_seen_yet_is_not_ready() {
        let d: Deployment = yaml(
            "metadata: {name: api, generation: 3}\nspec: {replicas: 1, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1}\n",
        );
        assert_eq!(deployment_ready(&d), Ok(false));
    }

    #[test]
    fn old_replicas_still_running_keep_a_deployment_in_progress() {
        let d: Deployment = yaml(
            "metadata: {name: api, generation: 2}\nspec: {replicas: 1, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 1, readyReplicas: 2, availableReplicas: 2}\n",
        );
        assert_eq!(deployment_ready(&d), Ok(false));
    }

    #[test]
    fn an_exceeded_progress_deadline_is_an_error() {
        let d: Deployment = yaml(
            "metadata: {name: api, generation: 1}\nspec: {replicas: 1, selector: {}, template: {}}\nstatus:\n  observedGeneration: 1\n  conditions:\n  - {type: Progressing, status: 'False', reason: ProgressDeadlineExceeded, message: 'ReplicaSet \"api-5d9\" has timed out progressing.'}\n",
        );
        assert!(
            deployment_ready(&d)
                .unwrap_err()
                .to_string()
                .contains("timed out progressing")
        );
    }

    #[test]
    fn a_statefulset_is_ready_when_all_replicas_run_the_update_revision() {
        let s: StatefulSet = yaml(
            "metadata: {name: postgres, generation: 1}\nspec: {replicas: 1, selector: {}, serviceName: postgres, template: {}}\nstatus: {observedGeneration: 1, replicas: 1, readyReplicas: 1, updatedReplicas: 1, currentRevision: postgres-7c9, updateRevision: postgres-7c9}\n",
        );
        assert!(statefulset_ready(&s));
        let mut rolling = s.clone();
        rolling.status.as_mut().unwrap().update_revision = Some("postgres-8d1".into());
        assert!(!statefulset_ready(&rolling));
    }

    #[test]
    fn a_crash_looping_container_is_a_problem_and_a_starting_one_is_not() {
        let p: Pod = yaml(
            "metadata: {name: api-5d9-x7}\nstatus:\n  containerStatuses:\n  - name: api\n    image: shop-api:dev\n    imageID: ''\n    ready: false\n    restartCount: 4\n    state: {waiting: {reason: CrashLoopBackOff, message: 'back-off 40s restarting failed container'}}\n",
        );
        assert_eq!(
            pod_problem(&p),
            Some(PodProblem {
                pod: "api-5d9-x7".into(),
                container: "api".into(),
                reason: "CrashLoopBackOff".into(),
                message: "back-off 40s restarting failed container".into(),
            })
        );
        let starting: Pod = yaml(
            "metadata: {name: api-5d9-x8}\nstatus:\n  containerStatuses:\n  - {name: api, image: a, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ContainerCreating}}}\n",
        );
        assert_eq!(pod_problem(&starting), None);
    }

    #[test]
    fn only_a_running_ready_pod_that_is_not_terminating_takes_connections() {
        let ready = "metadata: {name: p}\nstatus:\n  phase: Running\n  conditions: [{type: Ready, status: \"True\"}]\n";
        assert!(pod_ready(&yaml::<Pod>(ready)));
        assert!(!pod_ready(&yaml::<Pod>(
            "metadata: {name: p}\nstatus:\n  phase: Running\n  conditions: [{type: Ready, status: \"False\"}]\n"
        )));
        assert!(!pod_ready(&yaml::<Pod>(
            "metadata: {name: p}\nstatus:\n  phase: Pending\n"
        )));
        assert!(!pod_ready(&yaml::<Pod>(&ready.replace(
            "metadata: {name: p}",
            "metadata: {name: p, deletionTimestamp: \"2026-01-01T00:00:00Z\"}"
        ))));
    }
}

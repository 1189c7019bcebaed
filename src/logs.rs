//! The log lines of many containers as one stream: each line timed by the kubelet
//! (`timestamps=true`), labelled with its service (and pod and container when the service has
//! several), merged in time order, coloured per service.
//!
//! The kubelet's timestamp is RFC 3339 with nanoseconds and trailing zeros dropped
//! (`2026-12-07T08:01:02.5Z`), so the text cannot be compared as text (`02.5Z` sorts after
//! `02.45Z` but `02Z` after both): lines are ordered by the parsed time.

use std::collections::BTreeMap;

use anstyle::AnsiColor;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::config::Placement;

/// One line of one container's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub time: Timestamp,
    pub service: String,
    pub pod: String,
    pub container: String,
    #[serde(rename = "where")]
    pub place: Placement,
    pub line: String,
}

/// A line as the API sends it with `timestamps=true`: the time, one space, the text. A line
/// without a readable time (a server that ignored the option) keeps its whole text and `None`.
pub fn split_timestamp(raw: &str) -> (Option<Timestamp>, &str) {
    match raw.split_once(' ') {
        Some((time, text)) => match time.parse::<Timestamp>() {
            Ok(t) => (Some(t), text),
            Err(_) => (None, raw),
        },
        None => match raw.parse::<Timestamp>() {
            // An empty line: only the time.
            Ok(t) => (Some(t), ""),
            Err(_) => (None, raw),
        },
    }
}

/// Order lines by time; lines of the same instant keep the order they came in (one container's
/// lines never swap).
pub fn merge(mut lines: Vec<Line>) -> Vec<Line> {
    lines.sort_by_key(|l| l.time);
    lines
}

/// The colours services get, in a fixed order; red is left out (it reads as an error).
const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::Blue,
    AnsiColor::Magenta,
    AnsiColor::BrightCyan,
];

/// A service's colour: the same on every run and every machine (a hash of the name, not the
/// order services were found in).
pub fn colour(service: &str) -> AnsiColor {
    // FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
    let hash = service.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

/// How much of a line's origin its label shows: the service always; the pod when the service
/// has several pods; the container when the pod has several containers.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    pods: BTreeMap<String, usize>,
    /// Each pod's service and containers.
    seen: BTreeMap<String, (String, Vec<String>)>,
}

impl Labels {
    /// `service` has `pods` pods, and one of them, `pod`, has `containers`.
    pub fn saw(&mut self, service: &str, pods: usize, pod: &str, containers: &[String]) {
        let p = self.pods.entry(service.to_string()).or_default();
        *p = (*p).max(pods);
        self.seen
            .insert(pod.to_string(), (service.to_string(), containers.to_vec()));
    }

    /// The longest label of any container seen, so texts line up.
    pub fn widest(&self) -> usize {
        self.seen
            .iter()
            .flat_map(|(pod, (service, containers))| {
                containers
                    .iter()
                    .map(move |c| self.label_of(service, pod, c).chars().count())
            })
            .max()
            .unwrap_or(0)
    }

    /// `api`, `api/api-7d9f-x2`, `api/api-7d9f-x2/sidecar`.
    pub fn label(&self, line: &Line) -> String {
        self.label_of(&line.service, &line.pod, &line.container)
    }

    fn label_of(&self, service: &str, pod: &str, container: &str) -> String {
        let mut label = service.to_string();
        if self.pods.get(service).copied().unwrap_or(0) > 1 {
            label.push('/');
            label.push_str(pod);
        }
        if self.seen.get(pod).is_some_and(|(_, cs)| cs.len() > 1) {
            label.push('/');
            label.push_str(container);
        }
        label
    }
}

/// One line for the screen: the label in the service's colour (when colour is on), then the
/// text. `width` pads labels so the texts line up.
pub fn render(labels: &Labels, line: &Line, color: bool, width: usize) -> String {
    let label = labels.label(line);
    let padded = format!("{label:<width$}");
    if color {
        let style = colour(&line.service).on_default();
        format!("{style}{padded}{style:#} │ {}", line.line)
    } else {
        format!("{padded} │ {}", line.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(service: &str, pod: &str, time: &str, text: &str) -> Line {
        Line {
            time: time.parse().unwrap(),
            service: service.into(),
            pod: pod.into(),
            container: "main".into(),
            place: Placement::Local,
            line: text.into(),
        }
    }

    #[test]
    fn the_kubelets_timestamp_is_split_from_the_text() {
        let (t, text) = split_timestamp("2026-12-07T08:01:02.5Z GET /health 200");
        assert_eq!(t, Some("2026-12-07T08:01:02.5Z".parse().unwrap()));
        assert_eq!(text, "GET /health 200");
        assert_eq!(split_timestamp("no time here").0, None);
        assert_eq!(split_timestamp("no time here").1, "no time here");
        assert_eq!(split_timestamp("2026-12-07T08:01:02Z").1, "");
    }

    #[test]
    fn lines_are_merged_by_time_not_by_text() {
        // As text, "02.45Z" < "02.5Z" < "02Z"; as times, 02 < 02.45 < 02.5.
        let merged = merge(vec![
            line("api", "a", "2026-12-07T08:01:02.5Z", "third"),
            line("worker", "w", "2026-12-07T08:01:02Z", "first"),
            line("api", "a", "2026-12-07T08:01:02.45Z", "second"),
        ]);
        let texts: Vec<&str> = merged.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, ["first", "second", "third"]);
    }

    #[test]
    fn lines_of_the_same_instant_keep_their_order() {
        let t = "2026-12-07T08:01:02Z";
        let merged = merge(vec![line("api", "a", t, "1"), line("api", "a", t, "2")]);
        assert_eq!(merged[0].line, "1");
    }

    #[test]
    fn a_service_keeps_its_colour_whatever_else_runs() {
        assert_eq!(colour("api"), colour("api"));
        let all: std::collections::BTreeSet<_> = ["api", "worker", "postgres", "search"]
            .iter()
            .map(|s| format!("{:?}", colour(s)))
            .collect();
        assert!(all.len() > 1, "every service got the same colour");
    }

    #[test]
    fn the_label_names_the_pod_only_when_the_service_has_several() {
        let mut labels = Labels::default();
        let one = ["main".to_string()];
        let two = ["main".to_string(), "sidecar".to_string()];
        labels.saw("api", 2, "api-1", &one);
        labels.saw("api", 2, "api-2", &one);
        labels.saw("worker", 1, "worker-1", &two);
        assert_eq!(labels.widest(), "worker/sidecar".len());
        let l = |s: &str, p: &str| labels.label(&line(s, p, "2026-12-07T08:01:02Z", ""));
        assert_eq!(l("api", "api-1"), "api/api-1");
        assert_eq!(l("worker", "worker-1"), "worker/main");
        assert_eq!(
            render(
                &labels,
                &line("worker", "worker-1", "2026-12-07T08:01:02Z", "hi"),
                false,
                14
            ),
            "worker/main    │ hi"
        );
    }
}

//! How macOS's mountd (BSD) reads `/etc/exports` for what devenv checks: logical lines joined
//! from continuations, each with its paths and options, and the options and clients devenv's
//! own lines may use (exports(5) of macOS).

use super::*;

impl ExportsFile {
    /// The logical lines of a macOS file that export something.
    pub(super) fn mac_exports(&self) -> Vec<MacExport> {
        let lines: Vec<&Line> = self.lines().map(|(line, _)| line).collect();
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_slice()).collect();
        macos::logical_lines(&texts)
            .into_iter()
            .filter(|logical| !logical.is_comment())
            .map(|logical| {
                let words = macos::split_words(&logical.text);
                let mut paths = Vec::new();
                let mut rest = Vec::new();
                for (i, word) in words.words.into_iter().enumerate() {
                    if rest.is_empty() && (i == 0 || word.text.first() == Some(&b'/')) {
                        paths.push(word.text);
                    } else {
                        rest.push(word.text);
                    }
                }
                MacExport {
                    line: logical.lines[0] + 1,
                    physical: logical.lines.iter().map(|i| i + 1).collect(),
                    comment_inside: logical
                        .lines
                        .iter()
                        .skip(1)
                        .map(|&i| i + 1)
                        .find(|&no| trim_blanks(texts[no - 1]).first() == Some(&b'#')),
                    paths,
                    rest,
                    unterminated_quote: words.unterminated_quote,
                }
            })
            .collect()
    }

    pub(super) fn check_macos(&self) -> Vec<LineProblem> {
        let owners = self.owners();
        let owner = |line: usize| owners.get(line - 1).cloned().flatten();
        let mut problems = Vec::new();
        let lines: Vec<&Line> = self.lines().map(|(line, _)| line).collect();
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_slice()).collect();
        for logical in macos::logical_lines(&texts) {
            if logical.is_comment() && logical.lines.len() > 1 {
                let first = logical.lines[0] + 1;
                let mut hides: Vec<BlockKey> =
                    logical.lines.iter().filter_map(|&i| owner(i + 1)).collect();
                hides.dedup();
                problems.push(LineProblem {
                    line: first,
                    block: owner(first),
                    message: format!(
                        "this comment ends with a backslash, so nfsd also ignores line {}",
                        logical.lines[1] + 1
                    ),
                    hides,
                });
            }
        }
        for export in self.mac_exports() {
            let block = owner(export.line);
            let mut report = |message: String, hides: Vec<BlockKey>| {
                problems.push(LineProblem {
                    line: export.line,
                    block: block.clone(),
                    message,
                    hides,
                })
            };
            if let Some(comment) = export.comment_inside {
                report(
                    format!(
                        "the line before line {comment} ends with a backslash, so nfsd reads the comment on line {comment} as part of this export"
                    ),
                    vec![],
                );
            }
            let mut joined: Vec<BlockKey> = export
                .physical
                .iter()
                .map(|&no| owner(no))
                .filter(|key| *key != block)
                .flatten()
                .collect();
            joined.dedup();
            if export.physical.iter().any(|&no| owner(no) != block) {
                report(
                    "a trailing backslash joins this line with a line of another block".to_string(),
                    joined,
                );
            }
            if export.unterminated_quote {
                report("unterminated quote".to_string(), vec![]);
            }
            if let Some(first) = export.paths.first()
                && first.first() != Some(&b'/')
            {
                report(
                    format!("export path {} is not absolute", lossy(first)),
                    vec![],
                );
            }
            if block.is_some() {
                for message in mac_devenv_problems(&export.rest) {
                    report(message, vec![]);
                }
            }
        }
        problems.sort_by_key(|p| p.line);
        problems
    }
}

pub(super) struct MacExport {
    pub(super) line: usize,
    physical: Vec<usize>,
    comment_inside: Option<usize>,
    pub(super) paths: Vec<Vec<u8>>,
    pub(super) rest: Vec<Vec<u8>>,
    unterminated_quote: bool,
}

/// Options and clients of one of devenv's macOS lines: options nfsd knows (exports(5) of macOS),
/// and clients within [`check_client_scope`]. Foreign macOS lines are not checked this closely:
/// without nfsd here, an incomplete list of options must not make devenv refuse someone's file.
fn mac_devenv_problems(rest: &[Vec<u8>]) -> Vec<String> {
    const FLAGS: &[&str] = &[
        "-alldirs",
        "-ro",
        "-o",
        "-kerberos",
        "-32bitclients",
        "-manglednames",
        "-offline",
    ];
    const VALUED: &[&str] = &["-maproot=", "-mapall=", "-sec=", "-fspath=", "-fsuuid="];
    let mut problems = Vec::new();
    let mut network: Option<String> = None;
    let mut mask: Option<String> = None;
    let mut hosts = 0;
    let mut words = rest.iter().map(|w| lossy(w));
    while let Some(word) = words.next() {
        if FLAGS.contains(&word.as_str()) {
            continue;
        }
        if let Some(prefix) = VALUED.iter().find(|p| word.starts_with(**p)) {
            let value = &word[prefix.len()..];
            if value.is_empty() || value.split(':').any(str::is_empty) {
                problems.push(format!("option {word} needs a value"));
            }
            continue;
        }
        let mut valued = |name: &str, slot: &mut Option<String>| -> bool {
            let value = if word == name {
                words.next()
            } else if let Some(v) = word.strip_prefix(&format!("{name}=")) {
                Some(v.to_string())
            } else {
                return false;
            };
            match value {
                Some(v) => *slot = Some(v),
                None => problems.push(format!("option {name} needs a value")),
            }
            true
        };
        if valued("-network", &mut network) || valued("-mask", &mut mask) {
            continue;
        }
        if word.starts_with('-') {
            problems.push(format!("unknown option {word}"));
            continue;
        }
        hosts += 1;
        if let Err(e) = check_client_scope(&word) {
            problems.push(e.to_string());
        }
    }
    match (network, mask) {
        (Some(net), Some(mask)) => {
            if let Err(e) = check_client_scope(&format!("{net}/{mask}")) {
                problems.push(e.to_string());
            }
        }
        (Some(net), None) if net.contains('/') => {
            if let Err(e) = check_client_scope(&net) {
                problems.push(e.to_string());
            }
        }
        (Some(net), None) => problems.push(format!(
            "-network {net} needs -mask (or a /prefix) so that it does not take its class's mask"
        )),
        (None, Some(_)) => problems.push("-mask without -network".to_string()),
        (None, None) if hosts == 0 => problems
            .push("no host or -network: the directory would be exported to every host".to_string()),
        (None, None) => {}
    }
    problems
}

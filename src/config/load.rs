//! Reading devenv.toml: finding it, parsing it with every problem located by file, line,
//! column and dotted key (toml's messages rewritten in plain words), and the validation that
//! turns a parsed file into a [`Loaded`] one.

use super::*;

/// A devenv.toml that parsed and passed validation, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file, as found or given.
    pub file: PathBuf,
    /// The project root: the directory holding the file. Relative paths start here.
    pub root: PathBuf,
    pub config: Config,
}

impl Loaded {
    pub fn chart_dir(&self) -> PathBuf {
        self.root.join(&self.config.project.chart)
    }

    pub fn source_dir(&self) -> PathBuf {
        self.root.join(&self.config.mount.source)
    }
}

/// One thing wrong with the file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted key path, empty when the problem is not about one key (a syntax error).
    pub key: String,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, for display.
    pub snippet: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {FILE_NAME} in {} or any parent directory", .start.display())]
    NotFound { start: PathBuf },
    #[error("cannot read {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(.file, .problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn help(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => Some(
                "run `devenv init` to write a starter devenv.toml (or `devenv init --example` for a complete example project), or point at one with --config".to_string(),
            ),
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { .. } => {
                Some(format!(
                    "every key is described in {}",
                    crate::docs::url("config.md")
                ))
            }
        }
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let key = if p.key.is_empty() {
            String::new()
        } else {
            format!("{}: ", p.key)
        };
        out.push_str(&format!(
            "{}:{}:{}: {key}{}",
            file.display(),
            p.line,
            p.column,
            p.message
        ));
        if !p.snippet.is_empty() {
            out.push_str(&format!(
                "\n  {:>4} | {}\n       | {}^",
                p.line,
                p.snippet,
                " ".repeat(p.column.saturating_sub(1))
            ));
        }
        if let Some(h) = &p.help {
            out.push_str(&format!("\n       = help: {h}"));
        }
    }
    out
}

/// Find devenv.toml in `start` or the nearest parent directory.
pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ConfigError::NotFound {
        start: start.to_path_buf(),
    })
}

/// Read, parse and validate a devenv.toml.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let bytes = std::fs::read(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let source = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems: vec![not_utf8(e.as_bytes(), e.utf8_error())],
    })?;
    let root = file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let (config, mut problems) = parse_all(&source);
    let Some(config) = config else {
        return Err(invalid(problems));
    };
    let loaded = Loaded {
        file: file.to_path_buf(),
        root,
        config,
    };
    // What the checks find in the rest of the file is reported with the type errors: one run
    // shows every problem. A key set aside for its type error is at its default here, and
    // its line already has a problem.
    let reported: Vec<usize> = problems.iter().map(|p| p.line).collect();
    problems.extend(
        validate::validate(&loaded, &source)
            .into_iter()
            .filter(|p| !reported.contains(&p.line)),
    );
    problems.sort_by_key(|p| (p.line, p.column));
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(invalid(problems))
    }
}

/// TOML is UTF-8: the first byte that is not, with its line and column (the text before it on
/// that line shown as the snippet).
fn not_utf8(bytes: &[u8], err: std::str::Utf8Error) -> Problem {
    let valid = &bytes[..err.valid_up_to()];
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let before = String::from_utf8_lossy(&valid[line_start..]).into_owned();
    Problem {
        line,
        column: before.chars().count() + 1,
        key: String::new(),
        message: format!(
            "byte 0x{:02X} is not UTF-8 text (TOML files are UTF-8)",
            bytes[err.valid_up_to()]
        ),
        help: Some("save devenv.toml as UTF-8 (an editor's \"encoding\" setting, or `iconv -f latin1 -t utf-8`)".into()),
        snippet: before,
    }
}

/// The most problems one read reports; a file with more is mostly something else.
const MAX_PROBLEMS: usize = 20;

/// Parse the text, reporting every key whose value cannot be read rather than the first: the
/// line of each problem is set aside (blanked, so offsets and line numbers stay) and the text
/// parsed again, a table header with its whole table. Returns the [`Config`] of what is left,
/// when that parses, and the problems. Recovery stops at a problem that cannot be set aside (a
/// syntax error, a required key missing, one set aside) so no problem is an echo of another.
pub fn parse_all(source: &str) -> (Option<Config>, Vec<Problem>) {
    let mut text = source.to_string();
    let mut problems: Vec<Problem> = Vec::new();
    let mut set_aside: Vec<usize> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let err = match toml::from_str::<Config>(&text) {
            Ok(config) => return (Some(config), problems),
            Err(err) => err,
        };
        let syntax = toml::from_str::<toml::Table>(&text).is_err();
        let problem = problem_from_toml(source, &err);
        if !problems.is_empty() && (syntax || set_aside.contains(&problem.line)) {
            break;
        }
        let missing = err.message().starts_with("missing field");
        if missing && !problems.is_empty() {
            // Perhaps the key set aside for its type: an echo, not a problem of its own.
            break;
        }
        let line = problem.line;
        problems.push(problem);
        if syntax || missing || !blank_out(&mut text, line) {
            break;
        }
        set_aside.push(line);
    }
    (None, problems)
}

/// Replace line `line` (1-based) with spaces, and when it is a table header the lines of its
/// table too; false when there is nothing to blank.
fn blank_out(text: &mut String, line: usize) -> bool {
    let mut out = String::with_capacity(text.len());
    let mut in_table = false;
    let mut blanked = false;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        let header = l.trim_start().starts_with('[');
        if i + 1 == line {
            in_table = header;
        } else if header {
            in_table = false;
        }
        if i + 1 == line || (in_table && i + 1 > line) {
            let body = l.trim_end_matches(['\n', '\r']);
            out.push_str(&" ".repeat(body.len()));
            out.push_str(&l[body.len()..]);
            blanked = true;
        } else {
            out.push_str(l);
        }
    }
    *text = out;
    blanked
}

/// Parse the text into a [`Config`], locating any error.
pub fn parse(source: &str) -> Result<Config, Problem> {
    toml::from_str::<Config>(source).map_err(|e| problem_from_toml(source, &e))
}

fn problem_from_toml(source: &str, err: &toml::de::Error) -> Problem {
    let offset = err.span().map(|s| s.start).unwrap_or(0);
    let doc = locate::Doc::parse(source);
    let mut key = doc
        .as_ref()
        .and_then(|d| d.path_at(offset))
        .unwrap_or_default();
    let message = err.message().trim().to_string();
    let mut help = None;
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        help = Some(format!(
            "add `{field} = …` here; see {}",
            crate::docs::url("config.md")
        ));
    } else if let Some((word, expected)) = unknown_and_expected(&message) {
        if let Some(best) = closest(&word, expected.iter().map(String::as_str)) {
            help = Some(format!("did you mean `{best}`?"));
        } else {
            help = Some(format!("expected one of: {}", expected.join(", ")));
        }
    }
    let (line, column) = line_col(source, offset);
    let snippet = locate::line_text(source, line).to_string();
    Problem {
        line,
        column,
        key,
        message: plain_words(&message, &snippet),
        help,
        snippet,
    }
}

/// The parser's and serde's messages in the words of devenv.toml rather than of Rust:
/// "invalid type: floating point `2.5`, expected u32" becomes "expected a whole number, found
/// 2.5"; "duplicate key" names the table or key that is there twice.
fn plain_words(message: &str, line: &str) -> String {
    fn kind(rust: &str) -> String {
        let rust = rust.trim();
        let number = |t: &str| {
            matches!(
                t,
                "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
            )
        };
        if number(rust) {
            return match rust {
                "u16" => "a whole number from 0 to 65535".into(),
                r if r.starts_with('u') => "a whole number, 0 or more".into(),
                _ => "a whole number".into(),
            };
        }
        if let Some(v) = rust.strip_prefix("floating point ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("integer ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("boolean ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("string ") {
            return format!("the text {v}");
        }
        match rust {
            "f32" | "f64" => "a number".into(),
            "a sequence" | "sequence" => "a list".into(),
            "a map" | "map" => "a table".into(),
            "a boolean" | "bool" => "true or false".into(),
            r if r.starts_with("struct ") => "a table".into(),
            r => r.to_string(),
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            return format!("expected {}, found {}", kind(expected), kind(found));
        }
    }
    if message == "duplicate key" {
        let line = line.trim();
        if line.starts_with('[') {
            return format!("{line} appears twice: each table is written once (merge the two)");
        }
        if let Some((key, _)) = line.split_once('=') {
            return format!("`{}` is set twice in this table", key.trim());
        }
    }
    message.to_string()
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the
/// misspelt word and the valid ones.
fn unknown_and_expected(message: &str) -> Option<(String, Vec<String>)> {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return None;
    }
    let words: Vec<String> = message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let (first, rest) = words.split_first()?;
    Some((first.clone(), rest.to_vec()))
}

/// Build a [`Problem`] at a key path of `source` (used by validation).
pub(super) fn problem_at(
    source: &str,
    doc: Option<&locate::Doc<'_>>,
    path: &[&str],
    message: impl Into<String>,
    help: Option<String>,
) -> Problem {
    let offset = doc
        .and_then(|d| d.span_of(path).or_else(|| d.key_span_of(path)))
        .or_else(|| {
            // A key left at its default is not in the file: point at its table instead.
            doc.and_then(|d| d.key_span_of(&path[..path.len().saturating_sub(1)]))
        })
        .map(|s| s.start)
        .unwrap_or(0);
    let (line, column) = line_col(source, offset);
    Problem {
        line,
        column,
        key: path.join("."),
        message: message.into(),
        help,
        snippet: locate::line_text(source, line).to_string(),
    }
}

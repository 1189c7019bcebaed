//! Label and field selectors, as the real server parses them from `labelSelector=` and
//! `fieldSelector=`.
//!
//! Label selectors take the whole grammar clients produce from `matchLabels` and
//! `matchExpressions`: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`. (The
//! numeric `a>1`/`a<1` forms are refused with 400.) Field selectors are `path=value`,
//! `path==value` and `path!=value` on any dotted path of the object; the real server only
//! accepts a few paths per type (`metadata.name`, `metadata.namespace`, `status.phase`,
//! `involvedObject.name`…), all of which work here.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Split on commas that are not inside a `( … )` set.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, found {text:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(text) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::DoesNotExist,
                }
            } else if let Some((key, set)) = split_word(part, "notin") {
                Requirement {
                    key,
                    op: Op::NotIn(parse_set(set)?),
                }
            } else if let Some((key, set)) = split_word(part, "in") {
                Requirement {
                    key,
                    op: Op::In(parse_set(set)?),
                }
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::NotEquals(value.trim().to_string()),
                }
            } else if let Some((key, value)) = part.split_once("==").or(part.split_once('=')) {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::Equals(value.trim().to_string()),
                }
            } else if part.contains(['<', '>']) {
                return Err(format!("unsupported label selector operator in {part:?}"));
            } else {
                Requirement {
                    key: part.to_string(),
                    op: Op::Exists,
                }
            };
            if req.key.is_empty() {
                return Err(format!("empty key in label selector {text:?}"));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Does an object (its `metadata.labels`) satisfy every requirement?
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.0.iter().all(|r| {
            let value = labels.get(&r.key).and_then(Value::as_str);
            match (&r.op, value) {
                (Op::Equals(want), Some(v)) => v == want,
                (Op::Equals(_), None) => false,
                (Op::NotEquals(want), v) => v != Some(want.as_str()),
                (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
                (Op::In(_), None) => false,
                (Op::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                (Op::Exists, v) => v.is_some(),
                (Op::DoesNotExist, v) => v.is_none(),
            }
        })
    }
}

/// `key in (…)` → (`key`, `(…)`), matching the operator only as a whole word.
fn split_word<'a>(part: &'a str, word: &str) -> Option<(String, &'a str)> {
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next()?;
    let rest = words.next()?.trim_start();
    let set = rest.strip_prefix(word)?;
    set.trim_start()
        .starts_with('(')
        .then(|| (key.to_string(), set))
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in split_top_level(text) {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==").or(part.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!("invalid field selector {part:?}"));
            };
            terms.push((path.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let mut v = obj;
            for step in path.split('.') {
                v = &v[step];
            }
            let actual = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *want) == *equal
        })
    }
}

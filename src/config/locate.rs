//! Positions in devenv.toml: which key an error's byte offset belongs to, and where a key is, so
//! every config error can say `devenv.toml:12:10: vm.memory: …` whether it comes from the TOML
//! parser, from serde, or from devenv's own validation.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

/// The text of a 1-based line, without its line ending.
pub fn line_text(source: &str, line: usize) -> &str {
    source
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim_end_matches('\r')
}

/// A parsed document that can answer questions about positions.
pub struct Doc<'i> {
    root: DeTable<'i>,
}

impl<'i> Doc<'i> {
    /// `None` for a document that does not parse (the parse error then speaks for itself).
    pub fn parse(source: &'i str) -> Option<Self> {
        DeTable::parse(source).ok().map(|t| Doc {
            root: t.into_inner(),
        })
    }

    /// The dotted key path (`services.api.on_change`) whose key or value contains `offset`: the
    /// deepest one, so an error inside an inline table names the inner key.
    pub fn path_at(&self, offset: usize) -> Option<String> {
        let mut path = Vec::new();
        descend(&self.root, offset, &mut path);
        (!path.is_empty()).then(|| path.join("."))
    }

    /// Where a key path is: the span of its value (or of its key when it has no value span).
    pub fn span_of(&self, path: &[&str]) -> Option<Range<usize>> {
        let (last, parents) = path.split_last()?;
        let mut table = &self.root;
        for p in parents {
            let (_, v) = table.iter().find(|(k, _)| k.get_ref() == p)?;
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == last)?;
        let span = v.span();
        Some(if span.is_empty() { k.span() } else { span })
    }

    /// The span of the key itself (for "unknown key" and "duplicate" messages).
    pub fn key_span_of(&self, path: &[&str]) -> Option<Range<usize>> {
        let (last, parents) = path.split_last()?;
        let mut table = &self.root;
        for p in parents {
            let (_, v) = table.iter().find(|(k, _)| k.get_ref() == p)?;
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
        table
            .iter()
            .find(|(k, _)| k.get_ref() == last)
            .map(|(k, _)| k.span())
    }
}

fn descend(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) {
    for (k, v) in table.iter() {
        let in_key = k.span().contains(&offset);
        let in_value = v.span().contains(&offset);
        if in_key || in_value {
            path.push(k.get_ref().to_string());
            if let (false, DeValue::Table(inner)) = (in_key, v.get_ref()) {
                descend(inner, offset, path);
            }
            return;
        }
        // A `[table]` header's value span may not cover the keys written below it.
        if let DeValue::Table(inner) = v.get_ref() {
            let mut sub = Vec::new();
            descend(inner, offset, &mut sub);
            if !sub.is_empty() {
                path.push(k.get_ref().to_string());
                path.extend(sub);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[project]\nname = \"shop\"\n\n[vm]\ncpus = 4\nmemory = \"6g\"\n\n[services.api]\non_change = \"restart\"\n";

    #[test]
    fn line_and_column_are_one_based() {
        let off = DOC.find("memory").unwrap();
        assert_eq!(line_col(DOC, off), (6, 1));
        assert_eq!(line_col(DOC, 0), (1, 1));
    }

    #[test]
    fn an_offset_inside_a_value_names_its_dotted_key() {
        let doc = Doc::parse(DOC).unwrap();
        let off = DOC.find("\"6g\"").unwrap() + 1;
        assert_eq!(doc.path_at(off).as_deref(), Some("vm.memory"));
        let off = DOC.find("\"restart\"").unwrap();
        assert_eq!(doc.path_at(off).as_deref(), Some("services.api.on_change"));
    }

    #[test]
    fn a_key_path_is_found_back() {
        let doc = Doc::parse(DOC).unwrap();
        let span = doc.span_of(&["vm", "cpus"]).unwrap();
        assert_eq!(&DOC[span], "4");
        assert_eq!(
            line_col(DOC, doc.key_span_of(&["vm", "cpus"]).unwrap().start),
            (5, 1)
        );
    }
}

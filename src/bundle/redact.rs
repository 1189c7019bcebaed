//! What must never leave the laptop in a bundle: passwords, tokens, keys, certificates and
//! kubeconfig credentials. Everything put in a bundle goes through here, text and JSON alike;
//! the rules err on the side of hiding (a `tokens: 3` counter is hidden too), because a ticket
//! with one value too few is a small loss and a leaked credential is not.

use serde_json::Value;

/// What a hidden value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Key names (compared in lowercase, `-` and `_` dropped) whose values are secrets.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "clientkey",
    "keydata",
    "certificatedata",
    "credential",
    "auth",
    "cookie",
    "session",
    "bearer",
];

/// Whether a key (`DB_PASSWORD`, `client-key-data`, `"apiToken"`) names a secret.
pub fn secret_key(key: &str) -> bool {
    let squashed: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_WORDS.iter().any(|w| squashed.contains(w))
}

/// `value` with every string redacted and every value under a secret key hidden.
pub fn json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(_) | Value::Number(_) if secret_key(k) => {
                            Value::String(REDACTED.into())
                        }
                        other => json(other),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        Value::String(s) => Value::String(text(s)),
        other => other.clone(),
    }
}

/// `input` with PEM blocks, `key: value` / `key=value` secrets, `Bearer`/`Basic` credentials,
/// `--token X` flags, JWTs and passwords in URLs replaced by [`REDACTED`].
pub fn text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut in_pem = false;
    // A secret's key at the end of a line hides the first word of the next (YAML, logs).
    let mut hide_next = false;
    for line in input.split_inclusive('\n') {
        if in_pem {
            if line.contains("-----END ") {
                in_pem = false;
            }
            continue;
        }
        if let Some(at) = line.find("-----BEGIN ") {
            out.push_str(&line[..at]);
            out.push_str("[REDACTED PEM BLOCK]");
            in_pem = !line[at..].contains("-----END ");
            if line.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        out.push_str(&redact_line(line, &mut hide_next));
    }
    out
}

fn redact_line(line: &str, hide_next: &mut bool) -> String {
    let line = url_passwords(line);
    let words: Vec<&str> = line.split_inclusive(char::is_whitespace).collect();
    let mut out = String::with_capacity(line.len());
    // The word before was a secret's key on its own (`api_token = "x"`, TOML and INI style).
    let mut after_key = false;
    for word in words {
        let bare = word.trim_end();
        let tail = &word[bare.len()..];
        if after_key && matches!(bare, "=" | ":" | "=>" | ":=") {
            out.push_str(word);
            *hide_next = true;
            after_key = false;
            continue;
        }
        after_key = !bare.is_empty()
            && !bare.contains(['=', ':'])
            && secret_key(bare.trim_matches(['"', '\'']));
        let lower = bare.to_ascii_lowercase();
        if *hide_next && matches!(lower.as_str(), "bearer" | "basic") {
            // `Authorization: Bearer X`: the scheme may show, the credential not.
            out.push_str(word);
            continue;
        }
        if *hide_next && !bare.is_empty() {
            out.push_str(REDACTED);
            out.push_str(tail);
            *hide_next = false;
            continue;
        }
        // `Bearer X`, `Basic X`, `--token X`, `--password X`.
        if matches!(lower.as_str(), "bearer" | "basic")
            || (lower.starts_with("--") && !lower.contains('=') && secret_key(&lower))
        {
            out.push_str(word);
            *hide_next = true;
            continue;
        }
        if looks_like_jwt(bare) {
            out.push_str(REDACTED);
            out.push_str(tail);
            continue;
        }
        out.push_str(&key_values(word, hide_next));
    }
    out
}

/// `key=value`, `key: value`, `"key": "value"` inside one word; a `key:` at the end of the word
/// hides the next word.
fn key_values(word: &str, hide_next: &mut bool) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find([':', '=']) {
        let (key, after) = rest.split_at(at);
        let sep = &after[..1];
        let after = &after[1..];
        // `://` in a URL is not a key.
        if sep == ":" && after.starts_with("//") {
            out.push_str(key);
            out.push_str(sep);
            rest = after;
            continue;
        }
        out.push_str(key);
        out.push_str(sep);
        let name = key
            .trim_end_matches(['"', '\''])
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .next()
            .unwrap_or("");
        if !secret_key(name) {
            rest = after;
            continue;
        }
        let value = after.trim_start_matches(['"', '\'']);
        let quote = &after[..after.len() - value.len()];
        if value.trim().is_empty() {
            // `password:` then the value as the next word (YAML, logs).
            *hide_next = true;
            out.push_str(after);
            return out;
        }
        let end = value
            .find(|c: char| {
                c == '"'
                    || c == '\''
                    || c == ','
                    || c == '&'
                    || c == ';'
                    || c == '}'
                    || c.is_whitespace()
            })
            .unwrap_or(value.len());
        out.push_str(quote);
        out.push_str(REDACTED);
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` → `scheme://[REDACTED]@host`.
fn url_passwords(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, after) = rest.split_at(at + 3);
        out.push_str(head);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(user_end) if authority[..user_end].contains(':') => {
                out.push_str(REDACTED);
                out.push_str(&authority[user_end..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn looks_like_jwt(word: &str) -> bool {
    let w =
        word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_');
    w.starts_with("eyJ")
        && w.split('.').count() == 3
        && w.len() > 30
        && w.split('.').all(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_secrets_are_hidden_in_every_common_spelling() {
        for (line, secret) in [
            ("DB_PASSWORD=hunter2 PORT=5432", "hunter2"),
            ("password: hunter2", "hunter2"),
            ("  token: \"abc.def\"", "abc.def"),
            ("{\"apiToken\":\"s3cr3t\",\"port\":1}", "s3cr3t"),
            ("client-key-data: LS0tLS1CRUdJTi", "LS0tLS1CRUdJTi"),
            ("url?access_key=AKIA123&x=1", "AKIA123"),
            ("password:\n", ""),
            ("export GITHUB_TOKEN='ghp_abcdef'", "ghp_abcdef"),
            ("api_token = \"toml-value\"", "toml-value"),
            ("\"password\" : \"spaced\"", "spaced"),
        ] {
            let out = text(line);
            if !secret.is_empty() {
                assert!(!out.contains(secret), "{line} -> {out}");
                assert!(out.contains(REDACTED), "{line} -> {out}");
            }
        }
        assert_eq!(text("PORT=5432 host: db"), "PORT=5432 host: db");
        assert!(text("{\"apiToken\":\"s3cr3t\",\"port\":1}").contains("\"port\":1"));
    }

    #[test]
    fn a_secret_on_the_next_word_and_credentials_after_a_scheme_are_hidden() {
        assert_eq!(text("password:\n  hunter2\n"), "password:\n  [REDACTED]\n");
        assert_eq!(text("password: hunter2"), "password: [REDACTED]");
        assert_eq!(
            text("Authorization: Bearer abc123 done"),
            "Authorization: Bearer [REDACTED] done"
        );
        assert_eq!(
            text("curl -H x Bearer abc123"),
            "curl -H x Bearer [REDACTED]"
        );
        assert_eq!(
            text("helm --password hunter2 x"),
            "helm --password [REDACTED] x"
        );
        assert_eq!(
            text("dial postgres://app:hunter2@db:5432/app"),
            "dial postgres://[REDACTED]@db:5432/app"
        );
        assert_eq!(
            text("see https://example.com/a:b"),
            "see https://example.com/a:b"
        );
    }

    #[test]
    fn pem_blocks_and_jwts_are_hidden_whole() {
        let pem = "cert:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQEF\n-----END PRIVATE KEY-----\nafter\n";
        assert_eq!(text(pem), "cert:\n[REDACTED PEM BLOCK]\nafter\n");
        let jwt = "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXBhcnQ here";
        assert!(!text(jwt).contains("eyJhbGci"), "{}", text(jwt));
    }

    #[test]
    fn json_hides_values_under_secret_keys_and_redacts_strings() {
        let v = serde_json::json!({
            "users": [{"name": "dev", "user": {"token": "abc", "client-key-data": "LS0t"}}],
            "env": {"DB_PASSWORD": "x1", "PORT": "5432"},
            "line": "password=inline",
            "count": 3,
        });
        let out = json(&v).to_string();
        for secret in ["abc", "LS0t", "x1", "inline"] {
            assert!(!out.contains(&format!("\"{secret}")), "{out}");
            assert!(!out.contains(&format!("={secret}")), "{out}");
        }
        assert!(out.contains("\"PORT\":\"5432\""), "{out}");
        assert!(out.contains("\"count\":3"), "{out}");
    }
}

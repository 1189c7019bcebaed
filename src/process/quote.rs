//! Quoting for command lines that a shell will parse: `minikube ssh` joins its arguments with single
//! spaces and hands the result to the VM's login shell (contracts §4), and error messages show
//! commands the user may copy. Both go through [`quote`], so a path or a name is never interpreted.

/// Quote one word for a POSIX shell (sh, dash, bash, zsh). Words made only of characters no shell
/// treats specially are left bare so messages stay readable; anything else is wrapped in single
/// quotes, inside which nothing is special except the single quote itself, written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-+=:,./@%".contains(&b));
    if safe {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The one string to pass after `minikube ssh -p <profile> --`: every argument quoted, joined by
/// spaces, so the VM's shell splits it back into exactly `argv`.
pub fn ssh_command_line<S: AsRef<str>>(argv: &[S]) -> String {
    join(argv.iter().map(|a| a.as_ref()))
}

/// Join words into a command line a user can paste into a shell.
pub fn join<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(quote("vers=3,tcp"), "vers=3,tcp");
        assert_eq!(quote("/src/app-1.2"), "/src/app-1.2");
    }

    #[test]
    fn empty_word_is_kept_as_an_argument() {
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn single_quotes_are_closed_escaped_and_reopened() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn metacharacters_are_wrapped() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote("`id`;x"), "'`id`;x'");
    }
}

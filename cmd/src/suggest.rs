//! "Did you mean" for mistyped keys, shared by every `key=value` parser of the CLI.

/// The closest of `known` to `got`, if it is close enough to be a plausible typo
/// (at most two edits, and fewer edits than the word has letters).
pub fn did_you_mean<'a>(got: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(got, k), *k))
        .filter(|(d, _)| *d <= 2 && *d < got.chars().count())
        .min()
        .map(|(_, k)| k)
}

/// `; did you mean "x"?` or nothing, to append to an error message.
pub fn hint(got: &str, known: &[&str]) -> String {
    match did_you_mean(got, known) {
        Some(k) => format!("; did you mean {k:?}?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(did_you_mean("scr", &["id", "src", "env"]), Some("src"));
        assert_eq!(
            did_you_mean("mirors", &["mirrors", "http"]),
            Some("mirrors")
        );
        assert_eq!(did_you_mean("zzzzzz", &["mirrors", "http"]), None);
        // A one-letter key is not "close" to every other one-letter-away key.
        assert_eq!(did_you_mean("x", &["id"]), None);
        assert_eq!(hint("ide", &["id", "src"]), "; did you mean \"id\"?");
        assert_eq!(hint("qqq", &["id", "src"]), "");
    }
}

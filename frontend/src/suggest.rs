//! "Did you mean …?" for misspelt instruction names, flags, stage names and option values.

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
///
/// Closeness is optimal-string-alignment distance (Levenshtein plus adjacent transpositions); a candidate qualifies when the distance is at most a
/// third of the longer word (at least 1) and is not zero (an exact match is not a typo).
/// With `case_insensitive`, letters are compared lower-cased. Ties keep the first candidate
/// in the order given, so callers pass candidates in a stable order.
pub fn closest<'a, I>(word: &str, candidates: I, case_insensitive: bool) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let norm = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let c = norm(cand);
        let dist = strsim::osa_distance(&w, &c);
        if dist == 0 {
            continue;
        }
        let limit = (w.chars().count().max(c.chars().count()) / 3).max(1);
        if dist > limit {
            continue;
        }
        if best.is_none_or(|(d, _)| dist < d) {
            best = Some((dist, cand));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_near_spellings_only() {
        let names = ["FROM", "RUN", "COPY", "WORKDIR"];
        assert_eq!(closest("RUNN", names, true).as_deref(), Some("RUN"));
        assert_eq!(closest("workdri", names, true).as_deref(), Some("WORKDIR"));
        assert_eq!(closest("XYZZY", names, true), None);
        assert_eq!(
            closest("run", names, true),
            None,
            "an exact match is not a typo"
        );
        assert_eq!(
            closest("chmown", ["chown", "chmod"], false).as_deref(),
            Some("chown")
        );
    }
}

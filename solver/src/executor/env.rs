//! Environment assembly the way Docker and BuildKit do it.

/// The `PATH` BuildKit adds when the environment has none (`util/system`, Unix).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Merges an image's `Env` with a step's own variables: a later `K=V` replaces an
/// earlier one with the same key in place (Docker's `ReplaceOrAppendEnvValues`), new
/// keys are appended, and `PATH` is added when neither side sets it.
///
/// An entry without `=` is a key with an empty value for replacement purposes but is
/// kept as written, as Docker does.
pub fn merge_env(image: &[String], exec: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(image.len() + exec.len() + 1);
    for kv in image.iter().chain(exec) {
        let key = env_key(kv);
        match out.iter_mut().find(|e| env_key(e) == key) {
            Some(slot) => slot.clone_from(kv),
            None => out.push(kv.clone()),
        }
    }
    if !out.iter().any(|e| env_key(e) == "PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    out
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn exec_overrides_image_in_place_and_path_is_added() {
        let got = merge_env(&s(&["A=1", "B=2"]), &s(&["B=3", "C=4"]));
        assert_eq!(
            got,
            s(&["A=1", "B=3", "C=4", &format!("PATH={DEFAULT_PATH}")])
        );
    }

    #[test]
    fn existing_path_is_kept() {
        let got = merge_env(&s(&["PATH=/x"]), &s(&["A=b=c"]));
        assert_eq!(got, s(&["PATH=/x", "A=b=c"]));
    }
}

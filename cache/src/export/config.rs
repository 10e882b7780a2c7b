//! The frontend's changes to an image's runtime config (`config` inside the image config),
//! applied to the base image's config with Docker's field names and semantics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// What a build changes in the runtime config. `None` / empty leaves the base's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChanges {
    /// `KEY=VALUE` entries, in order; an entry replaces the base's entry of the same key.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Added to (and overriding) the base's labels.
    pub labels: BTreeMap<String, String>,
    /// `80`, `80/tcp`, `53/udp`; a port without a protocol is `tcp`, as Docker stores it.
    pub exposed_ports: Vec<String>,
    /// Added to the base's volumes.
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub shell: Option<Vec<String>>,
    /// The image's own `ONBUILD` triggers. The base's triggers ran in this build, so they
    /// never carry over (the Dockerfile frontend clears them too).
    pub onbuild: Vec<String>,
    /// `--cache-to type=inline`: the build cache of this image's own layers, stored in
    /// the config under [`crate::remote::INLINE_FIELD`]. A base image's is never kept.
    pub inline_cache: Option<Value>,
}

/// `HEALTHCHECK`, stored as Docker writes it: durations in nanoseconds, zero ones omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl Healthcheck {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("Test".into(), json!(self.test));
        let durations = [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ];
        for (k, d) in durations {
            if let Some(d) = d.filter(|d| !d.is_zero()) {
                m.insert(
                    k.into(),
                    json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                );
            }
        }
        if let Some(r) = self.retries.filter(|r| *r > 0) {
            m.insert("Retries".into(), json!(r));
        }
        Value::Object(m)
    }
}

impl ConfigChanges {
    /// Applies the changes to `config` (the runtime config object of an image config).
    pub(crate) fn apply(&self, config: &mut Map<String, Value>) {
        if !self.env.is_empty() {
            let mut env: Vec<String> = string_list(config.get("Env"));
            for entry in &self.env {
                let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
                {
                    Some(slot) => slot.clone_from(entry),
                    None => env.push(entry.clone()),
                }
            }
            config.insert("Env".into(), json!(env));
        }
        set_list(config, "Entrypoint", &self.entrypoint);
        set_list(config, "Cmd", &self.cmd);
        set_list(config, "Shell", &self.shell);
        if let Some(w) = &self.working_dir {
            config.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &self.user {
            config.insert("User".into(), json!(u));
        }
        if let Some(s) = &self.stop_signal {
            config.insert("StopSignal".into(), json!(s));
        }
        if !self.labels.is_empty() {
            let labels = object_entry(config, "Labels");
            for (k, v) in &self.labels {
                labels.insert(k.clone(), json!(v));
            }
        }
        if !self.exposed_ports.is_empty() {
            let ports = object_entry(config, "ExposedPorts");
            for p in &self.exposed_ports {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, json!({}));
            }
        }
        if !self.volumes.is_empty() {
            let vols = object_entry(config, "Volumes");
            for v in &self.volumes {
                vols.insert(v.clone(), json!({}));
            }
        }
        if let Some(h) = &self.healthcheck {
            config.insert("Healthcheck".into(), h.to_json());
        }
        if self.onbuild.is_empty() {
            config.remove("OnBuild");
        } else {
            config.insert("OnBuild".into(), json!(self.onbuild));
        }
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn set_list(config: &mut Map<String, Value>, key: &str, v: &Option<Vec<String>>) {
    if let Some(list) = v {
        config.insert(key.into(), json!(list));
    }
}

/// The object under `key`, replacing a missing or `null` (or malformed) value with `{}`.
fn object_entry<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key.to_owned()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("replaced by an object just above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_docker_semantics() {
        let mut cfg: Map<String, Value> = serde_json::from_str(
            r#"{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"Labels":{"base":"x","keep":"y"},"OnBuild":["RUN x"],"ExposedPorts":null,"Custom":7}"#,
        )
        .unwrap();
        let changes = ConfigChanges {
            env: vec!["A=2".into(), "B=3".into()],
            entrypoint: Some(vec!["/init".into()]),
            working_dir: Some("/app".into()),
            user: Some("1000:1000".into()),
            labels: [("base".to_owned(), "over".to_owned())].into(),
            exposed_ports: vec!["80".into(), "53/udp".into()],
            volumes: vec!["/data".into()],
            stop_signal: Some("SIGTERM".into()),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Some(Duration::from_secs(30)),
                timeout: Some(Duration::ZERO),
                retries: Some(3),
                ..Healthcheck::default()
            }),
            shell: Some(vec!["/bin/bash".into(), "-c".into()]),
            ..ConfigChanges::default()
        };
        changes.apply(&mut cfg);
        let v = Value::Object(cfg);
        assert_eq!(v["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(v["Cmd"], json!(["sh"]), "untouched");
        assert_eq!(v["Entrypoint"], json!(["/init"]));
        assert_eq!(v["Labels"], json!({"base": "over", "keep": "y"}));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Volumes"], json!({"/data": {}}));
        assert_eq!(
            v["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000u64, "Retries": 3})
        );
        assert_eq!(v["Shell"], json!(["/bin/bash", "-c"]));
        assert_eq!(v["WorkingDir"], "/app");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["StopSignal"], "SIGTERM");
        assert!(
            v.get("OnBuild").is_none(),
            "base triggers do not carry over"
        );
        assert_eq!(v["Custom"], 7, "unknown fields are kept");
    }
}

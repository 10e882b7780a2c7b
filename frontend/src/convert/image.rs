//! The image config a Dockerfile build produces (Docker's flavour of the OCI image config),
//! accumulated per stage and handed to the exporter next to the LLB definition.
//!
//! Field names follow the JSON the exporters write. Fields of a base image's config that
//! cairn does not model are kept in `extra` so they survive into the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The comment BuildKit writes on history entries it creates.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Docker's `HealthConfig`; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The runtime configuration part (`config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(rename = "ArgsEscaped", default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        rename = "OnBuild",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub on_build: Vec<String>,
    #[serde(
        rename = "Shell",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub shell: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// `rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// A whole image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(default)]
    pub config: ImageConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Image {
    /// The config of `FROM scratch`.
    pub fn empty(os: &str, architecture: &str, variant: &str) -> Self {
        Self {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.to_string(),
            ..Self::default()
        }
    }

    /// An image with no layers (or only empty ones) is treated as scratch.
    pub fn is_scratch(&self) -> bool {
        self.rootfs.diff_ids.is_empty() && self.history.iter().all(|h| h.empty_layer)
    }

    /// Sets `key` in `Env`, replacing an earlier definition in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .config
            .env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key))
        {
            Some(slot) => *slot = entry,
            None => self.config.env.push(entry),
        }
    }

    /// Appends a history entry as BuildKit's frontend does.
    pub fn add_history(&mut self, created_by: String, with_layer: bool) {
        self.history.push(History {
            created_by,
            comment: HISTORY_COMMENT.to_string(),
            empty_layer: !with_layer,
            ..History::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_registry_config() {
        let raw = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w","Hostname":"x"},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD x"}],"created":"2024-01-01T00:00:00Z"}"#;
        let img: Image = serde_json::from_str(raw).expect("parses");
        assert_eq!(img.config.env, ["PATH=/bin"]);
        assert_eq!(
            img.config.extra.get("Hostname"),
            Some(&serde_json::json!("x"))
        );
        assert!(!img.is_scratch());
        let back = serde_json::to_value(&img).expect("serialises");
        assert_eq!(back["config"]["Hostname"], "x");
        let nulls: Image = serde_json::from_str(
            r#"{"config":{"Env":null},"rootfs":{"type":"layers","diff_ids":null}}"#,
        )
        .expect("nulls");
        assert!(nulls.is_scratch());
    }
}

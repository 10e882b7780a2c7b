//! The settings every command that touches state starts from: the state root and the
//! config file, resolved from the global flags and the environment.

use anyhow::Context;

use crate::cli::Cli;
use crate::config::Config;
use crate::exit::UsageError;
use crate::root::{ConfigPath, Inputs, StateRoot, config_path, state_root};

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: StateRoot,
    pub config_path: ConfigPath,
    pub config: Config,
}

impl Settings {
    /// Resolves root and config for this process. A bad config file is a usage error
    /// (exit 2): like a bad flag, nothing was attempted and the fix is in what the user
    /// wrote.
    pub fn for_process(cli: &Cli) -> anyhow::Result<Settings> {
        Settings::resolve(&Inputs::from_process(cli.root.clone(), cli.config.clone()))
    }

    /// [`Settings::for_process`] with explicit inputs.
    pub fn resolve(inputs: &Inputs) -> anyhow::Result<Settings> {
        let root = state_root(inputs).map_err(UsageError::new)?;
        let config_path = config_path(inputs, &root.path);
        let config = Config::load(&config_path).map_err(UsageError::new)?;
        tracing::debug!(root = %root.path.display(), source = ?root.source, config = %config_path.path.display(), "settings resolved");
        Ok(Settings {
            root,
            config_path,
            config,
        })
    }

    /// Creates the state root if it does not exist yet, readable by its owner only: it
    /// holds every build's files, which may include what secrets were used to fetch.
    pub fn ensure_root(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root.path)
            .with_context(|| format!("creating state root {}", self.root.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, classify};

    #[test]
    fn resolves_root_and_reads_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let inputs = Inputs {
            root_flag: Some(root.clone()),
            ..Inputs::default()
        };
        let s = Settings::resolve(&inputs).unwrap();
        assert_eq!(s.root.path, root);
        assert_eq!(s.config, Config::default());
        s.ensure_root().unwrap();
        std::fs::write(root.join("cairn.toml"), "[worker]\nmax-parallelism = 2\n").unwrap();
        let s = Settings::resolve(&inputs).unwrap();
        assert_eq!(s.config.worker.max_parallelism.map(|n| n.get()), Some(2));
    }

    #[test]
    fn bad_config_is_a_usage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("my.toml");
        std::fs::write(&cfg, "[gc]\nkeep_storage = \"1GB\"\n").unwrap();
        let inputs = Inputs {
            root_flag: Some(dir.path().into()),
            config_flag: Some(cfg),
            ..Inputs::default()
        };
        let err = Settings::resolve(&inputs).unwrap_err();
        assert_eq!(classify(&err), Exit::Usage);
        let msg = format!("{err:#}");
        assert!(
            msg.contains(
                "my.toml:2:1: unknown key \"keep_storage\"; did you mean \"keep-storage\"?"
            ),
            "{msg}"
        );

        let missing = Inputs {
            root_flag: Some(dir.path().into()),
            config_flag: Some(dir.path().join("absent.toml")),
            ..Inputs::default()
        };
        assert_eq!(
            classify(&Settings::resolve(&missing).unwrap_err()),
            Exit::Usage
        );
    }
}

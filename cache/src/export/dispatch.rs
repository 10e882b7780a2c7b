//! One entry point from a parsed `--output` to the writer or push it asks for, returning
//! the exporter response (the `--metadata-file` JSON).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::archive::{ImageNames, write_docker_archive_to, write_oci_archive_to, write_oci_dir};
use super::assemble::AssembledImage;
use super::error::ExportError;
use super::metadata_file::metadata_json;
use super::options::ImageOptions;
use super::push::{PushReport, push_image};
use super::spec::{Dest, ExportSpec};
use crate::content::ContentProvider;
use crate::registry::RegistryClient;

/// What an image export needs besides the image.
#[derive(Clone)]
pub struct ExportContext {
    /// Where blob bytes come from (the content store, or lazy sources behind it).
    pub provider: Arc<dyn ContentProvider>,
    /// Needed only by `push=true`.
    pub client: Option<RegistryClient>,
    /// Temp space for large blobs during a push (inside the state root).
    pub spool_dir: PathBuf,
    pub source_date_epoch: Option<i64>,
}

impl std::fmt::Debug for ExportContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportContext")
            .field("provider", &self.provider)
            .field("spool_dir", &self.spool_dir)
            .field("source_date_epoch", &self.source_date_epoch)
            .finish_non_exhaustive()
    }
}

impl ExportSpec {
    /// The image options of an image output (to assemble with); `None` for file outputs.
    pub fn image_options(&self) -> Option<ImageOptions> {
        match self {
            ExportSpec::Oci { image, .. }
            | ExportSpec::Docker { image, .. }
            | ExportSpec::Image { image, .. } => Some(*image),
            ExportSpec::Local { .. } | ExportSpec::Tar { .. } => None,
        }
    }
}

/// What [`export_image`] did: the metadata JSON, and per-name push reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportResponse {
    pub metadata: Value,
    pub pushed: Vec<PushReport>,
}

/// Writes or pushes `image` as `spec` says. `local` and `tar` outputs are the result's
/// files, not an image: call [`export_local`](super::export_local) /
/// [`export_tar_to`](super::export_tar_to) for them.
pub async fn export_image(
    spec: &ExportSpec,
    image: &AssembledImage,
    ctx: &ExportContext,
) -> Result<ExportResponse, ExportError> {
    let names = ImageNames::parse(spec.names())?;
    let provider = ctx.provider.as_ref();
    let epoch = ctx.source_date_epoch;
    let mut pushed = Vec::new();
    let mut display_names: Vec<String> = spec.names().to_vec();
    match spec {
        ExportSpec::Oci {
            dest, tar: true, ..
        } => write_oci_archive_to(dest, image, &names, provider, epoch).await?,
        ExportSpec::Oci {
            dest: Dest::Path(dir),
            tar: false,
            ..
        } => write_oci_dir(dir, image, &names, provider).await?,
        ExportSpec::Oci {
            dest: Dest::Stdout,
            tar: false,
            ..
        } => {
            return Err(ExportError::NotAnImageOutput {
                kind: "oci with tar=false to stdout",
            });
        }
        ExportSpec::Docker { dest, .. } => {
            write_docker_archive_to(dest, image, &names, provider, epoch).await?
        }
        ExportSpec::Image {
            push,
            name_canonical,
            ..
        } => {
            if *name_canonical {
                display_names.extend(
                    names
                        .references()
                        .iter()
                        .map(|r| format!("{}@{}", r.name(), image.manifest.digest)),
                );
            }
            if *push {
                let client = ctx.client.as_ref().ok_or(ExportError::NoRegistryClient)?;
                pushed =
                    push_image(client, names.references(), image, provider, &ctx.spool_dir).await?;
            }
        }
        ExportSpec::Local { .. } => return Err(ExportError::NotAnImageOutput { kind: "local" }),
        ExportSpec::Tar { .. } => return Err(ExportError::NotAnImageOutput { kind: "tar" }),
    }
    let mut metadata = metadata_json(image, &display_names);
    if !pushed.is_empty() {
        metadata["containerimage.pushed"] = json!(
            pushed
                .iter()
                .map(|p| p.target.to_string())
                .collect::<Vec<_>>()
        );
    }
    Ok(ExportResponse { metadata, pushed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{AssembleInput, BaseConfig, ConfigChanges, assemble};

    fn ctx(dir: &std::path::Path) -> ExportContext {
        ExportContext {
            provider: Arc::new(crate::content::LayoutProvider::new(dir)),
            client: None,
            spool_dir: dir.join("spool"),
            source_date_epoch: Some(0),
        }
    }

    fn scratch() -> AssembledImage {
        assemble(&AssembleInput {
            base: BaseConfig::Scratch,
            changes: ConfigChanges::default(),
            layers: Vec::new(),
            history: Vec::new(),
            platform: None,
            options: ImageOptions::default(),
            source_date_epoch: Some(0),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn dispatches_to_writers_and_reports_metadata() {
        let t = tempfile::tempdir().unwrap();
        let image = scratch();
        let spec = ExportSpec::parse(&format!(
            "type=oci,dest={},tar=false,name=a/b:c",
            t.path().join("lay").display()
        ))
        .unwrap();
        let resp = export_image(&spec, &image, &ctx(t.path())).await.unwrap();
        assert_eq!(
            resp.metadata["containerimage.digest"],
            image.manifest.digest.as_str()
        );
        assert_eq!(resp.metadata["image.name"], "a/b:c");
        let index: Value =
            serde_json::from_slice(&std::fs::read(t.path().join("lay/index.json")).unwrap())
                .unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "c"
        );
        assert!(
            t.path()
                .join("lay/blobs/sha256")
                .join(image.config.digest.hex())
                .is_file()
        );

        let spec = ExportSpec::parse("type=image,name=r/x:1,name-canonical=true").unwrap();
        let resp = export_image(&spec, &image, &ctx(t.path())).await.unwrap();
        assert_eq!(
            resp.metadata["image.name"],
            format!("r/x:1,docker.io/r/x@{}", image.manifest.digest)
        );

        let spec = ExportSpec::parse("type=image,name=r/x:1,push=true").unwrap();
        assert!(matches!(
            export_image(&spec, &image, &ctx(t.path())).await,
            Err(ExportError::NoRegistryClient)
        ));
        let spec = ExportSpec::parse("type=local,dest=x").unwrap();
        assert!(matches!(
            export_image(&spec, &image, &ctx(t.path())).await,
            Err(ExportError::NotAnImageOutput { .. })
        ));
        assert_eq!(spec.image_options(), None);
    }
}

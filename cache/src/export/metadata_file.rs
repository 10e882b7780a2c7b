//! The `--metadata-file` JSON, with buildx's keys, so scripts written for buildx read it.

use std::path::Path;

use serde_json::{Value, json};

use super::assemble::AssembledImage;
use super::error::ExportError;

/// `containerimage.digest`, `containerimage.descriptor`, `containerimage.config.digest`
/// and (when the image has names) `image.name`, comma-joined as buildx writes it.
pub fn metadata_json(image: &AssembledImage, names: &[String]) -> Value {
    let mut v = json!({
        "containerimage.config.digest": image.config.digest.as_str(),
        "containerimage.descriptor": {
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest.as_str(),
            "size": image.manifest.size,
        },
        "containerimage.digest": image.manifest.digest.as_str(),
    });
    if !names.is_empty() {
        v["image.name"] = json!(names.join(","));
    }
    v
}

/// Writes `value` (indented, as buildx does) to `path` through a temp file and a rename.
pub fn write_metadata_file(path: &Path, value: &Value) -> Result<(), ExportError> {
    let dir = super::archive::parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(ExportError::io("creating", &dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".cairn-metadata-")
        .tempfile_in(&dir)
        .map_err(ExportError::io("creating temp file in", &dir))?;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| ExportError::Encode {
        what: "metadata file",
        source: e,
    })?;
    bytes.push(b'\n');
    std::io::Write::write_all(&mut tmp, &bytes)
        .map_err(ExportError::io("writing", tmp.path().to_path_buf()))?;
    tmp.as_file()
        .sync_all()
        .map_err(ExportError::io("syncing", tmp.path().to_path_buf()))?;
    tmp.persist(path)
        .map_err(|e| ExportError::io("renaming into place at", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{AssembleInput, BaseConfig, ConfigChanges, ImageOptions, assemble};

    #[test]
    fn has_buildx_keys_and_is_written_atomically() {
        let image = assemble(&AssembleInput {
            base: BaseConfig::Scratch,
            changes: ConfigChanges::default(),
            layers: Vec::new(),
            history: Vec::new(),
            platform: None,
            options: ImageOptions::default(),
            source_date_epoch: Some(0),
        })
        .unwrap();
        let v = metadata_json(&image, &["a:1".into(), "b:2".into()]);
        assert_eq!(v["containerimage.digest"], image.manifest.digest.as_str());
        assert_eq!(
            v["containerimage.config.digest"],
            image.config.digest.as_str()
        );
        assert_eq!(v["containerimage.descriptor"]["size"], image.manifest.size);
        assert_eq!(v["image.name"], "a:1,b:2");
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.json");
        write_metadata_file(&p, &v).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, v);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}

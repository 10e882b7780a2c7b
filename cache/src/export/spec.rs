//! `--output` values in buildx's syntax: comma-separated `key=value` fields (CSV quoting
//! allowed, so `"name=a,b"` carries two names), `type=` choosing the exporter. As in
//! buildx, a bare `-` means `type=tar,dest=-` and a bare path means `type=local,dest=PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::SpecError;
use super::options::{ImageOptions, parse_bool};

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// `dest=-`
    Stdout,
    Path(PathBuf),
}

/// One parsed `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSpec {
    /// The result's files copied into a directory.
    Local { dest: PathBuf },
    /// The result's files as one tar stream.
    Tar { dest: Dest },
    /// An OCI image layout, as a tar (default) or a directory (`tar=false`).
    Oci {
        dest: Dest,
        tar: bool,
        names: Vec<String>,
        image: ImageOptions,
    },
    /// A `docker save`-style archive.
    Docker {
        dest: Dest,
        names: Vec<String>,
        image: ImageOptions,
    },
    /// An image by name, pushed when `push` (`type=registry` is `type=image,push=true`).
    Image {
        names: Vec<String>,
        push: bool,
        name_canonical: bool,
        insecure: bool,
        image: ImageOptions,
    },
}

const TYPES: [&str; 6] = ["local", "tar", "oci", "docker", "image", "registry"];

impl std::str::FromStr for ExportSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<ExportSpec, SpecError> {
        ExportSpec::parse(s)
    }
}

impl ExportSpec {
    pub fn parse(spec: &str) -> Result<ExportSpec, SpecError> {
        if spec.trim().is_empty() {
            return Err(SpecError::Empty);
        }
        if !spec.contains('=') && !spec.contains(',') {
            return Ok(if spec == "-" {
                ExportSpec::Tar { dest: Dest::Stdout }
            } else {
                ExportSpec::Local {
                    dest: PathBuf::from(spec),
                }
            });
        }
        let mut fields = BTreeMap::new();
        let mut kind_raw = None;
        for field in split_csv(spec)? {
            let Some((k, v)) = field.split_once('=') else {
                return Err(SpecError::NotKeyValue {
                    spec: spec.to_owned(),
                    field,
                });
            };
            let k = k.trim().to_ascii_lowercase();
            if k == "type" {
                kind_raw = Some(v.to_owned());
                continue;
            }
            if fields.insert(k.clone(), v.to_owned()).is_some() {
                // Reported against the type once it is known.
                fields.insert(format!("\0dup:{k}"), String::new());
            }
        }
        let kind_raw = kind_raw.ok_or_else(|| SpecError::MissingType {
            spec: spec.to_owned(),
        })?;
        let kind = known_type(&kind_raw)?;
        if let Some(dup) = fields.keys().find_map(|k| k.strip_prefix("\0dup:")) {
            return Err(SpecError::Duplicate {
                kind,
                key: dup.to_owned(),
            });
        }
        Fields { kind, map: fields }.into_spec()
    }

    /// Gives an image output that names no image the `-t` names, as buildx does; outputs
    /// with names of their own, and file outputs, are left alone.
    pub fn add_default_names(&mut self, tags: &[String]) {
        match self {
            ExportSpec::Oci { names, .. }
            | ExportSpec::Docker { names, .. }
            | ExportSpec::Image { names, .. }
                if names.is_empty() =>
            {
                *names = tags.to_vec();
            }
            _ => {}
        }
    }

    /// Whether this output writes to stdout (`dest=-`), which then carries nothing else.
    pub fn writes_stdout(&self) -> bool {
        match self {
            ExportSpec::Tar { dest }
            | ExportSpec::Oci { dest, .. }
            | ExportSpec::Docker { dest, .. } => {
                matches!(dest, Dest::Stdout)
            }
            ExportSpec::Local { .. } | ExportSpec::Image { .. } => false,
        }
    }

    /// The image names of an image-producing output (empty for `local`/`tar`).
    pub fn names(&self) -> &[String] {
        match self {
            ExportSpec::Oci { names, .. }
            | ExportSpec::Docker { names, .. }
            | ExportSpec::Image { names, .. } => names,
            ExportSpec::Local { .. } | ExportSpec::Tar { .. } => &[],
        }
    }
}

fn known_type(got: &str) -> Result<&'static str, SpecError> {
    if let Some(t) = TYPES.iter().find(|t| **t == got) {
        return Ok(t);
    }
    let best = TYPES
        .iter()
        .map(|t| (strsim::damerau_levenshtein(got, t), *t))
        .min()
        .filter(|(d, _)| *d <= 2 && !got.is_empty());
    Err(match best {
        Some((_, suggestion)) => SpecError::UnknownTypeSuggest {
            got: got.to_owned(),
            suggestion,
        },
        None => SpecError::UnknownType {
            got: got.to_owned(),
        },
    })
}

struct Fields {
    kind: &'static str,
    map: BTreeMap<String, String>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    fn bool(&mut self, key: &str, default: bool) -> Result<bool, SpecError> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => parse_bool(&v).ok_or(SpecError::BadValue {
                kind: self.kind,
                key: key.to_owned(),
                value: v,
                expected: "true or false",
            }),
        }
    }

    fn dest(&mut self) -> Result<Dest, SpecError> {
        match self.take("dest") {
            None => Err(SpecError::Missing {
                kind: self.kind,
                key: "dest",
            }),
            Some(v) if v.is_empty() => Err(SpecError::Missing {
                kind: self.kind,
                key: "dest",
            }),
            Some(v) if v == "-" => Ok(Dest::Stdout),
            Some(v) => Ok(Dest::Path(PathBuf::from(v))),
        }
    }

    fn names(&mut self) -> Vec<String> {
        self.take("name")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn image_options(&mut self, mut image: ImageOptions) -> Result<ImageOptions, SpecError> {
        let keys: Vec<String> = self.map.keys().cloned().collect();
        for k in keys {
            let v = self.map.get(&k).cloned().unwrap_or_default();
            if image.apply(self.kind, &k, &v)? {
                self.map.remove(&k);
            }
        }
        image.validate(self.kind)?;
        Ok(image)
    }

    fn finish(self, spec: ExportSpec) -> Result<ExportSpec, SpecError> {
        match self.map.into_keys().next() {
            Some(key) => Err(SpecError::UnknownKey {
                kind: self.kind,
                key,
            }),
            None => Ok(spec),
        }
    }

    fn into_spec(mut self) -> Result<ExportSpec, SpecError> {
        let spec = match self.kind {
            "local" => match self.dest()? {
                Dest::Path(dest) => ExportSpec::Local { dest },
                Dest::Stdout => {
                    return Err(SpecError::Conflict {
                        kind: "local",
                        reason: "dest=- is not a directory; use type=tar".into(),
                    });
                }
            },
            "tar" => ExportSpec::Tar { dest: self.dest()? },
            "oci" => {
                let dest = self.dest()?;
                let tar = self.bool("tar", true)?;
                if !tar && dest == Dest::Stdout {
                    return Err(SpecError::Conflict {
                        kind: "oci",
                        reason: "tar=false needs a directory dest, not -".into(),
                    });
                }
                let names = self.names();
                let image = self.image_options(ImageOptions::default())?;
                ExportSpec::Oci {
                    dest,
                    tar,
                    names,
                    image,
                }
            }
            "docker" => {
                let dest = self.dest()?;
                let names = self.names();
                let image = self.image_options(ImageOptions::docker())?;
                ExportSpec::Docker { dest, names, image }
            }
            kind @ ("image" | "registry") => {
                let names = self.names();
                if names.is_empty() {
                    return Err(SpecError::Missing { kind, key: "name" });
                }
                let push = self.bool("push", kind == "registry")?;
                let name_canonical = self.bool("name-canonical", false)?;
                let insecure = self.bool("registry.insecure", false)?;
                let image = self.image_options(ImageOptions::default())?;
                ExportSpec::Image {
                    names,
                    push,
                    name_canonical,
                    insecure,
                    image,
                }
            }
            other => {
                return Err(SpecError::UnknownType {
                    got: other.to_owned(),
                });
            }
        };
        self.finish(spec)
    }
}

/// Splits one CSV record (`"` quotes, `""` an escaped quote) as Go's `encoding/csv` reads
/// the single line buildx gives it.
fn split_csv(spec: &str) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err(SpecError::Unterminated {
            spec: spec.to_owned(),
        });
    }
    out.push(cur);
    Ok(out.into_iter().filter(|f| !f.trim().is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_snapshot::Compression;

    fn p(s: &str) -> Result<ExportSpec, SpecError> {
        ExportSpec::parse(s)
    }

    #[test]
    fn parses_each_type() {
        assert_eq!(
            p("type=local,dest=out").unwrap(),
            ExportSpec::Local { dest: "out".into() }
        );
        assert_eq!(
            p("type=tar,dest=-").unwrap(),
            ExportSpec::Tar { dest: Dest::Stdout }
        );
        assert_eq!(p("-").unwrap(), ExportSpec::Tar { dest: Dest::Stdout });
        assert_eq!(
            p("outdir").unwrap(),
            ExportSpec::Local {
                dest: "outdir".into()
            }
        );
        match p("type=oci,dest=i.tar,tar=false,name=a:1,compression=zstd,compression-level=3")
            .unwrap()
        {
            ExportSpec::Oci {
                dest,
                tar,
                names,
                image,
            } => {
                assert_eq!(dest, Dest::Path("i.tar".into()));
                assert!(!tar);
                assert_eq!(names, ["a:1"]);
                assert_eq!(image.compression, Compression::Zstd);
                assert_eq!(image.compression_level, Some(3));
            }
            other => panic!("{other:?}"),
        }
        match p("type=docker,dest=d.tar,name=x").unwrap() {
            ExportSpec::Docker { image, names, .. } => {
                assert!(
                    !image.oci_mediatypes,
                    "docker defaults to Docker media types"
                );
                assert_eq!(names, ["x"]);
            }
            other => panic!("{other:?}"),
        }
        match p(
            r#"type=image,"name=r/a:1,r/b:2",push=true,name-canonical=true,oci-mediatypes=false"#,
        )
        .unwrap()
        {
            ExportSpec::Image {
                names,
                push,
                name_canonical,
                image,
                ..
            } => {
                assert_eq!(names, ["r/a:1", "r/b:2"]);
                assert!(push && name_canonical && !image.oci_mediatypes);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p("type=registry,name=r/a").unwrap(),
            ExportSpec::Image { push: true, .. }
        ));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            p("type=lcoal,dest=x").unwrap_err().to_string(),
            r#"unknown output type "lcoal"; did you mean "local"?"#
        );
        assert_eq!(
            p("type=dcoker,dest=x").unwrap_err().to_string(),
            r#"unknown output type "dcoker"; did you mean "docker"?"#
        );
        assert!(matches!(
            p("type=zzzzzzz,dest=x").unwrap_err(),
            SpecError::UnknownType { .. }
        ));
        assert_eq!(
            p("type=local,dest=x,colour=red").unwrap_err().to_string(),
            r#"output type local: unknown key "colour""#
        );
        assert_eq!(
            p("type=tar").unwrap_err(),
            SpecError::Missing {
                kind: "tar",
                key: "dest"
            }
        );
        assert_eq!(
            p("type=image").unwrap_err(),
            SpecError::Missing {
                kind: "image",
                key: "name"
            }
        );
        assert!(matches!(
            p("type=oci,dest=-,tar=false").unwrap_err(),
            SpecError::Conflict { .. }
        ));
        assert!(matches!(
            p("type=oci,dest=a,dest=b").unwrap_err(),
            SpecError::Duplicate { .. }
        ));
        assert!(matches!(
            p("dest=a,tar=1").unwrap_err(),
            SpecError::MissingType { .. }
        ));
        assert!(matches!(
            p("type=oci,dest").unwrap_err(),
            SpecError::NotKeyValue { .. }
        ));
        assert!(matches!(
            p(r#"type=oci,"dest=a"#).unwrap_err(),
            SpecError::Unterminated { .. }
        ));
        assert!(matches!(
            p("type=oci,dest=a,push=maybe").unwrap_err(),
            SpecError::UnknownKey { .. }
        ));
        assert!(matches!(
            p("type=image,name=a,push=maybe").unwrap_err(),
            SpecError::BadValue { .. }
        ));
        assert_eq!(p("").unwrap_err(), SpecError::Empty);
    }
}

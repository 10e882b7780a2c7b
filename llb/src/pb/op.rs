//! The vertex envelope (`Op`, `Input`, `Platform`, `WorkerConstraints`) and the small ops:
//! merge, diff, passthrough and the experimental nested build.

use std::collections::BTreeMap;

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use serde::Serialize;

use super::map_codec::{self, message_map_value};
use super::{Definition, ExecOp, FileOp, SourceOp};

/// One vertex of the graph. The last op of a definition is a bare marker whose only
/// input is the build result.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Op {
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    #[prost(oneof = "OpKind", tags = "2, 3, 4, 5, 6, 7, 8")]
    #[serde(rename = "Op")]
    pub op: Option<OpKind>,
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<WorkerConstraints>,
}

/// What a vertex does (the `op` oneof).
// Unboxed on purpose: one value per vertex, matched everywhere; boxing the exec variant
// would cost an allocation per op and a `Box` in every pattern for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, prost::Oneof, Serialize)]
pub enum OpKind {
    #[prost(message, tag = "2")]
    #[serde(rename = "exec")]
    Exec(ExecOp),
    #[prost(message, tag = "3")]
    #[serde(rename = "source")]
    Source(SourceOp),
    #[prost(message, tag = "4")]
    #[serde(rename = "file")]
    File(FileOp),
    #[prost(message, tag = "5")]
    #[serde(rename = "build")]
    Build(BuildOp),
    #[prost(message, tag = "6")]
    #[serde(rename = "merge")]
    Merge(MergeOp),
    #[prost(message, tag = "7")]
    #[serde(rename = "diff")]
    Diff(DiffOp),
    #[prost(message, tag = "8")]
    #[serde(rename = "passthrough")]
    Passthrough(PassthroughOp),
}

impl OpKind {
    /// The kind's name as BuildKit's oneof field spells it.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Exec(_) => "exec",
            OpKind::Source(_) => "source",
            OpKind::File(_) => "file",
            OpKind::Build(_) => "build",
            OpKind::Merge(_) => "merge",
            OpKind::Diff(_) => "diff",
            OpKind::Passthrough(_) => "passthrough",
        }
    }
}

/// An edge: output `index` of the op whose marshalled bytes hash to `digest`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message, Serialize)]
pub struct Input {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub index: i64,
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message, Serialize)]
pub struct Platform {
    #[prost(string, tag = "1")]
    #[serde(rename = "Architecture", skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    #[prost(string, tag = "2")]
    #[serde(rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[prost(string, tag = "3")]
    #[serde(rename = "Variant", skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[prost(string, tag = "4")]
    #[serde(rename = "OSVersion", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    #[prost(string, repeated, tag = "5")]
    #[serde(rename = "OSFeatures", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

/// containerd-style filters a worker must match.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message, Serialize)]
pub struct WorkerConstraints {
    #[prost(string, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct MergeInput {
    #[prost(int64, tag = "1")]
    pub input: i64,
}

/// Layers its inputs in order; later inputs win.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct MergeOp {
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<MergeInput>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct LowerDiffInput {
    #[prost(int64, tag = "1")]
    pub input: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct UpperDiffInput {
    #[prost(int64, tag = "1")]
    pub input: i64,
}

/// The changes that turn `lower` into `upper`.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct DiffOp {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<LowerDiffInput>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<UpperDiffInput>,
}

/// Output `i` is a clone of input `outputs[i]` (identity and labelling; BuildKit v0.31+).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct PassthroughOp {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[prost(int64, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<i64>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct BuildInput {
    #[prost(int64, tag = "1")]
    pub input: i64,
}

message_map_value!(BuildInput);

/// A nested build (experimental in BuildKit; cairn decodes it but does not run it).
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct BuildOp {
    pub builder: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, BuildInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub def: Option<Definition>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl prost::Message for BuildOp {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.builder != 0 {
            encoding::int64::encode(1, &self.builder, buf);
        }
        map_codec::encode(2, &self.inputs, buf);
        if let Some(def) = &self.def {
            encoding::message::encode(3, def, buf);
        }
        map_codec::encode(4, &self.attrs, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let r = match tag {
            1 => encoding::int64::merge(wire_type, &mut self.builder, buf, ctx),
            2 => map_codec::merge(wire_type, &mut self.inputs, buf, ctx),
            3 => encoding::message::merge(
                wire_type,
                self.def.get_or_insert_with(Definition::default),
                buf,
                ctx,
            ),
            4 => map_codec::merge(wire_type, &mut self.attrs, buf, ctx),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        r.map_err(|mut e| {
            e.push(
                "BuildOp",
                ["builder", "inputs", "def", "attrs"][(tag - 1) as usize],
            );
            e
        })
    }

    fn encoded_len(&self) -> usize {
        (if self.builder != 0 {
            encoding::int64::encoded_len(1, &self.builder)
        } else {
            0
        }) + map_codec::encoded_len(2, &self.inputs)
            + self
                .def
                .as_ref()
                .map_or(0, |d| encoding::message::encoded_len(3, d))
            + map_codec::encoded_len(4, &self.attrs)
    }

    fn clear(&mut self) {
        *self = BuildOp::default();
    }
}

impl Platform {
    /// A platform from OS and architecture in OCI spelling (`linux`, `amd64`).
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            ..Default::default()
        }
    }

    /// The platform this process runs on, spelled as OCI and containerd's
    /// `platforms.DefaultSpec` do (`amd64`, `arm64` with variant `v8`, …).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", "v8"),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            "riscv64" => ("riscv64", ""),
            "s390x" => ("s390x", ""),
            "loongarch64" => ("loong64", ""),
            other => (other, ""),
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
            ..Default::default()
        }
    }
}

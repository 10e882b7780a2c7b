//! Per-op metadata (not part of any digest) and source maps.

use std::collections::BTreeMap;

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use serde::Serialize;

use super::map_codec::{self, message_map_value};
use super::{
    Definition, is_false, is_zero_i32, is_zero_i64, is_zero_u64, serialize_base64,
    serialize_map_or_null,
};

/// Display names, cache hints and required capabilities of one op, keyed in
/// `Definition.metadata` by the op's digest.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct OpMetadata {
    /// Run the op even when a cached result exists.
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_cache: bool,
    /// `llb.customname` (display name) and frontend-specific keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub description: BTreeMap<String, String>,
    // Field 3 is reserved (the old per-op WorkerConstraint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_cache: Option<ExportCache>,
    /// Capabilities the solver must support for this op (`exec.mount.cache`, …).
    #[serde(serialize_with = "serialize_map_or_null")]
    pub caps: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_group: Option<ProgressGroup>,
    /// Per-step cgroup limits; never part of a cache key (BuildKit v0.31+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_resources: Option<LinuxResources>,
}

const OP_METADATA_FIELDS: [&str; 7] = [
    "ignore_cache",
    "description",
    "reserved",
    "export_cache",
    "caps",
    "progress_group",
    "linux_resources",
];

impl prost::Message for OpMetadata {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.ignore_cache {
            encoding::bool::encode(1, &self.ignore_cache, buf);
        }
        map_codec::encode(2, &self.description, buf);
        if let Some(v) = &self.export_cache {
            encoding::message::encode(4, v, buf);
        }
        map_codec::encode(5, &self.caps, buf);
        if let Some(v) = &self.progress_group {
            encoding::message::encode(6, v, buf);
        }
        if let Some(v) = &self.linux_resources {
            encoding::message::encode(7, v, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let r = match tag {
            1 => encoding::bool::merge(wire_type, &mut self.ignore_cache, buf, ctx),
            2 => map_codec::merge(wire_type, &mut self.description, buf, ctx),
            4 => encoding::message::merge(
                wire_type,
                self.export_cache.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            5 => map_codec::merge(wire_type, &mut self.caps, buf, ctx),
            6 => encoding::message::merge(
                wire_type,
                self.progress_group.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            7 => encoding::message::merge(
                wire_type,
                self.linux_resources.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        r.map_err(|mut e| {
            e.push("OpMetadata", OP_METADATA_FIELDS[(tag - 1) as usize]);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        (if self.ignore_cache {
            encoding::bool::encoded_len(1, &self.ignore_cache)
        } else {
            0
        }) + map_codec::encoded_len(2, &self.description)
            + self
                .export_cache
                .as_ref()
                .map_or(0, |v| encoding::message::encoded_len(4, v))
            + map_codec::encoded_len(5, &self.caps)
            + self
                .progress_group
                .as_ref()
                .map_or(0, |v| encoding::message::encoded_len(6, v))
            + self
                .linux_resources
                .as_ref()
                .map_or(0, |v| encoding::message::encoded_len(7, v))
    }

    fn clear(&mut self) {
        *self = OpMetadata::default();
    }
}

message_map_value!(OpMetadata, Locations);

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct ExportCache {
    #[prost(bool, tag = "1")]
    #[serde(rename = "Value", skip_serializing_if = "is_false")]
    pub value: bool,
}

/// Groups vertices under one progress line.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct ProgressGroup {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub weak: bool,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct LinuxResources {
    #[prost(int64, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub memory: i64,
    #[prost(int64, tag = "2")]
    #[serde(rename = "memorySwap", skip_serializing_if = "is_zero_i64")]
    pub memory_swap: i64,
    #[prost(uint64, tag = "3")]
    #[serde(rename = "cpuShares", skip_serializing_if = "is_zero_u64")]
    pub cpu_shares: u64,
    #[prost(uint64, tag = "4")]
    #[serde(rename = "cpuPeriod", skip_serializing_if = "is_zero_u64")]
    pub cpu_period: u64,
    #[prost(int64, tag = "5")]
    #[serde(rename = "cpuQuota", skip_serializing_if = "is_zero_i64")]
    pub cpu_quota: i64,
    #[prost(string, tag = "6")]
    #[serde(rename = "cpusetCpus", skip_serializing_if = "String::is_empty")]
    pub cpuset_cpus: String,
    #[prost(string, tag = "7")]
    #[serde(rename = "cpusetMems", skip_serializing_if = "String::is_empty")]
    pub cpuset_mems: String,
}

/// Source maps: which lines of which file (a Dockerfile) produced each op.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct Source {
    /// Keyed by op digest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub locations: BTreeMap<String, Locations>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub infos: Vec<SourceInfo>,
}

impl prost::Message for Source {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        map_codec::encode(1, &self.locations, buf);
        encoding::message::encode_repeated(2, &self.infos, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => map_codec::merge(wire_type, &mut self.locations, buf, ctx).map_err(|mut e| {
                e.push("Source", "locations");
                e
            }),
            2 => encoding::message::merge_repeated(wire_type, &mut self.infos, buf, ctx).map_err(
                |mut e| {
                    e.push("Source", "infos");
                    e
                },
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        map_codec::encoded_len(1, &self.locations)
            + encoding::message::encoded_len_repeated(2, &self.infos)
    }

    fn clear(&mut self) {
        *self = Source::default();
    }
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct Locations {
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SourceInfo {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filename: String,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_base64"
    )]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub language: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct Location {
    /// Index into `Source.infos`.
    #[prost(int32, tag = "1")]
    #[serde(rename = "sourceIndex", skip_serializing_if = "is_zero_i32")]
    pub source_index: i32,
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct Range {
    #[prost(message, optional, tag = "1")]
    pub start: Option<Position>,
    #[prost(message, optional, tag = "2")]
    pub end: Option<Position>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct Position {
    #[prost(int32, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub line: i32,
    #[prost(int32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub character: i32,
}

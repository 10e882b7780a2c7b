//! `Definition`: the whole graph as sent over the wire.

use std::collections::BTreeMap;

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use serde::Serialize;

use super::map_codec;
use super::{OpMetadata, Source, base64_std};

/// Go writes `[][]byte` as a list of base64 strings.
fn serialize_base64_list<S: serde::Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|b| base64_std(b)))
}

/// `def` holds each op's marshalled bytes (inputs before consumers, the output marker
/// last); `metadata` is keyed by op digest string.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct Definition {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_base64_list"
    )]
    pub def: Vec<Vec<u8>>,
    #[serde(serialize_with = "super::serialize_map_or_null")]
    pub metadata: BTreeMap<String, OpMetadata>,
    #[serde(rename = "Source", skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl prost::Message for Definition {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::bytes::encode_repeated(1, &self.def, buf);
        map_codec::encode(2, &self.metadata, buf);
        if let Some(source) = &self.source {
            encoding::message::encode(3, source, buf);
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
            1 => encoding::bytes::merge_repeated(wire_type, &mut self.def, buf, ctx),
            2 => map_codec::merge(wire_type, &mut self.metadata, buf, ctx),
            3 => encoding::message::merge(
                wire_type,
                self.source.get_or_insert_with(Source::default),
                buf,
                ctx,
            ),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        r.map_err(|mut e| {
            e.push(
                "Definition",
                ["def", "metadata", "Source"][(tag - 1) as usize],
            );
            e
        })
    }

    fn encoded_len(&self) -> usize {
        encoding::bytes::encoded_len_repeated(1, &self.def)
            + map_codec::encoded_len(2, &self.metadata)
            + self
                .source
                .as_ref()
                .map_or(0, |s| encoding::message::encoded_len(3, s))
    }

    fn clear(&mut self) {
        *self = Definition::default();
    }
}

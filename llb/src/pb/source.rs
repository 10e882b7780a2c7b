//! `SourceOp`: an identifier (`docker-image://…`, `local://…`, `git://…`, `https://…`)
//! plus attributes. Hand-written codec: `attrs` is a map (see `map_codec`).

use std::collections::BTreeMap;

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use serde::Serialize;

use super::map_codec;

#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct SourceOp {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identifier: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl prost::Message for SourceOp {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.identifier.is_empty() {
            encoding::string::encode(1, &self.identifier, buf);
        }
        map_codec::encode(2, &self.attrs, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.identifier, buf, ctx).map_err(
                |mut e| {
                    e.push("SourceOp", "identifier");
                    e
                },
            ),
            2 => map_codec::merge(wire_type, &mut self.attrs, buf, ctx).map_err(|mut e| {
                e.push("SourceOp", "attrs");
                e
            }),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.identifier.is_empty() {
            0
        } else {
            encoding::string::encoded_len(1, &self.identifier)
        }) + map_codec::encoded_len(2, &self.attrs)
    }

    fn clear(&mut self) {
        *self = SourceOp::default();
    }
}

//! Encoding of proto `map<string, V>` fields the way Go's protobuf runtimes do.
//!
//! Both gogo (BuildKit ≤ v0.16) and protobuf-go with `Deterministic: true` write entries
//! sorted by key and **always** write the entry's key (tag 1) and value (tag 2), even when
//! empty. prost skips default keys and values, which would change the bytes, and so the
//! digest, of any op with an empty attribute value. Maps are `BTreeMap`s, so iteration
//! order is already the sorted order.

use std::collections::BTreeMap;

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    self, DecodeContext, WireType, check_wire_type, encode_key, encode_varint, encoded_len_varint,
    key_len,
};

/// A type usable as a map value, encoded unconditionally as field 2 of the entry.
pub(crate) trait MapValue: Default {
    fn encode_value(&self, buf: &mut impl BufMut);
    fn value_len(&self) -> usize;
    fn merge_value(
        wire_type: WireType,
        value: &mut Self,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError>;
}

impl MapValue for String {
    fn encode_value(&self, buf: &mut impl BufMut) {
        encoding::string::encode(2, self, buf);
    }
    fn value_len(&self) -> usize {
        encoding::string::encoded_len(2, self)
    }
    fn merge_value(
        wire_type: WireType,
        value: &mut Self,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::string::merge(wire_type, value, buf, ctx)
    }
}

impl MapValue for bool {
    fn encode_value(&self, buf: &mut impl BufMut) {
        encoding::bool::encode(2, self, buf);
    }
    fn value_len(&self) -> usize {
        encoding::bool::encoded_len(2, self)
    }
    fn merge_value(
        wire_type: WireType,
        value: &mut Self,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::bool::merge(wire_type, value, buf, ctx)
    }
}

/// Implements [`MapValue`] for message types (a blanket impl would overlap with prost's
/// own `Message` impls for `String` and `bool`).
macro_rules! message_map_value {
    ($($ty:ty),*) => {$(
        impl $crate::pb::map_codec::MapValue for $ty {
            fn encode_value(&self, buf: &mut impl ::prost::bytes::BufMut) {
                ::prost::encoding::message::encode(2, self, buf);
            }
            fn value_len(&self) -> usize {
                ::prost::encoding::message::encoded_len(2, self)
            }
            fn merge_value(
                wire_type: ::prost::encoding::WireType,
                value: &mut Self,
                buf: &mut impl ::prost::bytes::Buf,
                ctx: ::prost::encoding::DecodeContext,
            ) -> Result<(), ::prost::DecodeError> {
                ::prost::encoding::message::merge(wire_type, value, buf, ctx)
            }
        }
    )*};
}
pub(crate) use message_map_value;

fn entry_len<V: MapValue>(key: &String, value: &V) -> usize {
    encoding::string::encoded_len(1, key) + value.value_len()
}

/// Writes every entry of `map` as field `tag`, key and value always present.
pub(crate) fn encode<V: MapValue>(tag: u32, map: &BTreeMap<String, V>, buf: &mut impl BufMut) {
    for (key, value) in map {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(entry_len(key, value) as u64, buf);
        encoding::string::encode(1, key, buf);
        value.encode_value(buf);
    }
}

/// The encoded length of `map` as field `tag`.
pub(crate) fn encoded_len<V: MapValue>(tag: u32, map: &BTreeMap<String, V>) -> usize {
    map.iter()
        .map(|(key, value)| {
            let len = entry_len(key, value);
            key_len(tag) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

/// Decodes one map entry into `map` (a later duplicate key wins, as in Go).
pub(crate) fn merge<V: MapValue>(
    wire_type: WireType,
    map: &mut BTreeMap<String, V>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    encoding::btree_map::merge(encoding::string::merge, V::merge_value, map, buf, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_and_value_are_still_written() {
        let mut map = BTreeMap::new();
        map.insert(String::new(), String::new());
        let mut buf = Vec::new();
        encode(2, &map, &mut buf);
        // tag 2 (LEN), len 4, key "" (0a 00), value "" (12 00)
        assert_eq!(buf, [0x12, 0x04, 0x0a, 0x00, 0x12, 0x00]);
        assert_eq!(encoded_len(2, &map), buf.len());
        let mut back: BTreeMap<String, String> = BTreeMap::new();
        let mut rd = &buf[1..]; // after the tag: length, then the entry
        merge(
            WireType::LengthDelimited,
            &mut back,
            &mut rd,
            DecodeContext::default(),
        )
        .unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn entries_come_out_sorted_and_false_is_written() {
        let mut map = BTreeMap::new();
        map.insert("b".to_owned(), false);
        map.insert("a".to_owned(), true);
        let mut buf = Vec::new();
        encode(5, &map, &mut buf);
        assert_eq!(
            buf,
            [
                0x2a, 0x05, 0x0a, 0x01, b'a', 0x10, 0x01, 0x2a, 0x05, 0x0a, 0x01, b'b', 0x10, 0x00
            ]
        );
    }

    #[test]
    fn wrong_wire_type_is_an_error() {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        let mut rd: &[u8] = &[0x01];
        assert!(
            merge(
                WireType::Varint,
                &mut map,
                &mut rd,
                DecodeContext::default()
            )
            .is_err()
        );
    }
}

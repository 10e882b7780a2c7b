//! BuildKit's `solver/pb` wire messages, written by hand as prost messages.
//!
//! Field numbers, types and the Go JSON names (used by `dump-llb`) follow BuildKit's
//! `ops.proto`. Messages holding `map<>` fields implement `prost::Message` by hand
//! (see `map_codec`) because Go always writes a map entry's key and value, where
//! prost's derived code skips empty ones; the digest of an op depends on those bytes.
//!
//! The serde `Serialize` impls reproduce the JSON that Go's `encoding/json` writes for
//! BuildKit's generated structs (the `buildctl debug dump-llb` shape): declaration
//! order, `omitempty` where Go has it, enums as numbers, bytes as base64.

mod definition;
mod exec;
mod file;
pub(crate) mod map_codec;
mod metadata;
mod op;
mod source;

pub use definition::Definition;
pub use exec::{
    CacheOpt, CacheSharingOpt, CdiDevice, ExecOp, HostIp, Meta, Mount, MountContentCache,
    MountType, NetMode, ProxyEnv, SecretEnv, SecretOpt, SecurityMode, SshOpt, TmpfsOpt, Ulimit,
};
pub use file::{
    ChownOpt, FileAction, FileActionCopy, FileActionKind, FileActionMkDir, FileActionMkFile,
    FileActionRm, FileActionSymlink, FileOp, NamedUserOpt, UserOpt, UserOptKind,
};
pub use metadata::{
    ExportCache, LinuxResources, Location, Locations, OpMetadata, Position, ProgressGroup, Range,
    Source, SourceInfo,
};
pub use op::{
    BuildInput, BuildOp, DiffOp, Input, LowerDiffInput, MergeInput, MergeOp, Op, OpKind,
    PassthroughOp, Platform, UpperDiffInput, WorkerConstraints,
};
pub use source::SourceOp;

/// `-1` as an input index: no input, i.e. scratch (BuildKit's `pb.Empty`).
pub const EMPTY_INPUT: i64 = -1;
/// `-1` as an output index: the mount or action produces no output (`pb.SkipOutput`).
pub const SKIP_OUTPUT: i64 = -1;
/// `BuildOp.builder` value meaning "build the LLB directly" (`pb.LLBBuilder`).
pub const LLB_BUILDER: i64 = -1;

// Helpers for serde's `skip_serializing_if`, mirroring Go's `omitempty`.
pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}
pub(crate) fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
pub(crate) fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Go's `encoding/json` writes `[]byte` as standard padded base64.
pub(crate) fn serialize_base64<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64_std(v))
}

pub(crate) fn base64_std(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go writes a nil map without `omitempty` as `null`; a decoded empty map is nil in Go.
pub(crate) fn serialize_map_or_null<S, V>(
    m: &std::collections::BTreeMap<String, V>,
    s: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    V: serde::Serialize,
{
    if m.is_empty() {
        s.serialize_none()
    } else {
        s.collect_map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::base64_std;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, enc) in cases {
            assert_eq!(base64_std(raw.as_bytes()), enc, "input {raw:?}");
        }
        assert_eq!(base64_std(&[0xff, 0xfe]), "//4=");
    }
}

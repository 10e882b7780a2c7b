//! `FileOp`: a chain of file-system actions (copy, mkfile, mkdir, rm, symlink).

use serde::Serialize;

use super::{is_false, is_zero_i32, is_zero_i64, serialize_base64};

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileOp {
    // Field 1 is unused in BuildKit.
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<FileAction>,
}

/// One action. `input`/`secondary_input` are an op input `0..N`, the result of an earlier
/// action `N + i`, or -1 (scratch); `output >= 0` exposes the result as that output.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileAction {
    #[prost(int64, tag = "1")]
    pub input: i64,
    #[prost(int64, tag = "2")]
    #[serde(rename = "secondaryInput")]
    pub secondary_input: i64,
    #[prost(int64, tag = "3")]
    pub output: i64,
    #[prost(oneof = "FileActionKind", tags = "4, 5, 6, 7, 8")]
    #[serde(rename = "Action")]
    pub action: Option<FileActionKind>,
}

#[derive(Clone, PartialEq, prost::Oneof, Serialize)]
pub enum FileActionKind {
    #[prost(message, tag = "4")]
    #[serde(rename = "copy")]
    Copy(FileActionCopy),
    #[prost(message, tag = "5")]
    #[serde(rename = "mkfile")]
    Mkfile(FileActionMkFile),
    #[prost(message, tag = "6")]
    #[serde(rename = "mkdir")]
    Mkdir(FileActionMkDir),
    #[prost(message, tag = "7")]
    #[serde(rename = "rm")]
    Rm(FileActionRm),
    #[prost(message, tag = "8")]
    #[serde(rename = "symlink")]
    Symlink(FileActionSymlink),
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileActionCopy {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dest: String,
    #[prost(message, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    /// Permission bits, or -1 to keep the source's.
    #[prost(int32, tag = "4")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub mode: i32,
    #[prost(bool, tag = "5")]
    #[serde(rename = "followSymlink", skip_serializing_if = "is_false")]
    pub follow_symlink: bool,
    #[prost(bool, tag = "6")]
    #[serde(rename = "dirCopyContents", skip_serializing_if = "is_false")]
    pub dir_copy_contents: bool,
    #[prost(bool, tag = "7")]
    #[serde(
        rename = "attemptUnpackDockerCompatibility",
        skip_serializing_if = "is_false"
    )]
    pub attempt_unpack_docker_compatibility: bool,
    #[prost(bool, tag = "8")]
    #[serde(rename = "createDestPath", skip_serializing_if = "is_false")]
    pub create_dest_path: bool,
    #[prost(bool, tag = "9")]
    #[serde(rename = "allowWildcard", skip_serializing_if = "is_false")]
    pub allow_wildcard: bool,
    #[prost(bool, tag = "10")]
    #[serde(rename = "allowEmptyWildcard", skip_serializing_if = "is_false")]
    pub allow_empty_wildcard: bool,
    /// Unix nanoseconds for every copied file, or -1 to keep the source's.
    #[prost(int64, tag = "11")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timestamp: i64,
    #[prost(string, repeated, tag = "12")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_patterns: Vec<String>,
    #[prost(string, repeated, tag = "13")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    #[prost(bool, tag = "14")]
    #[serde(
        rename = "alwaysReplaceExistingDestPaths",
        skip_serializing_if = "is_false"
    )]
    pub always_replace_existing_dest_paths: bool,
    /// Symbolic chmod such as `u+x` (BuildKit v0.17+).
    #[prost(string, tag = "15")]
    #[serde(rename = "modeStr", skip_serializing_if = "String::is_empty")]
    pub mode_str: String,
    #[prost(string, repeated, tag = "16")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_paths: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileActionMkFile {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[prost(int32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub mode: i32,
    #[prost(bytes = "vec", tag = "3")]
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_base64"
    )]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    #[prost(int64, tag = "5")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileActionMkDir {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[prost(int32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub mode: i32,
    #[prost(bool, tag = "3")]
    #[serde(rename = "makeParents", skip_serializing_if = "is_false")]
    pub make_parents: bool,
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    #[prost(int64, tag = "5")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct FileActionRm {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[prost(bool, tag = "2")]
    #[serde(rename = "allowNotFound", skip_serializing_if = "is_false")]
    pub allow_not_found: bool,
    #[prost(bool, tag = "3")]
    #[serde(rename = "allowWildcard", skip_serializing_if = "is_false")]
    pub allow_wildcard: bool,
}

/// A symbolic link `newpath` → `oldpath` (BuildKit v0.19+).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct FileActionSymlink {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub oldpath: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub newpath: String,
    #[prost(message, optional, tag = "3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    #[prost(int64, tag = "4")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct ChownOpt {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserOpt>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<UserOpt>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct UserOpt {
    #[prost(oneof = "UserOptKind", tags = "1, 2")]
    #[serde(rename = "User")]
    pub user: Option<UserOptKind>,
}

#[derive(Clone, PartialEq, Eq, prost::Oneof)]
pub enum UserOptKind {
    /// A name resolved through `/etc/passwd` or `/etc/group` of an input.
    #[prost(message, tag = "1")]
    ByName(NamedUserOpt),
    #[prost(uint32, tag = "2")]
    ById(u32),
}

/// Go's wrapper structs for this oneof carry `omitempty`, so uid 0 prints as `{}`.
impl Serialize for UserOptKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            UserOptKind::ByName(named) => map.serialize_entry("byName", named)?,
            UserOptKind::ById(0) => {}
            UserOptKind::ById(id) => map.serialize_entry("byID", id)?,
        }
        map.end()
    }
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct NamedUserOpt {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The input (same index space as `FileAction.input`) whose files resolve the name.
    #[prost(int64, tag = "2")]
    pub input: i64,
}

//! The two spellings of a deletion: OCI tar whiteouts (`.wh.<name>`, `.wh..wh..opq`) and
//! overlayfs's on-disk ones (a 0/0 character device, `trusted.overlay.opaque=y` on a dir).

use std::os::fd::AsFd;

use rustix::fs::{FileType, Mode, mknodat};

/// Prefix of a tar whiteout entry's base name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Base name of the tar entry that marks its directory opaque.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to hide everything below a directory in lower layers.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a tar entry's base name means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TarWhiteout<'a> {
    None,
    /// `.wh.<name>`: `<name>` in the same directory is deleted.
    Delete(&'a [u8]),
    /// `.wh..wh..opq`: the directory's lower contents are hidden.
    Opaque,
}

pub(crate) fn classify(base: &[u8]) -> TarWhiteout<'_> {
    if base == OPAQUE_WHITEOUT.as_bytes() {
        TarWhiteout::Opaque
    } else if let Some(rest) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        TarWhiteout::Delete(rest)
    } else {
        TarWhiteout::None
    }
}

/// Creates an overlay whiteout (char device 0/0) named `name` in `dir`.
pub(crate) fn make_overlay_whiteout(
    dir: impl AsFd,
    name: &std::ffi::OsStr,
) -> rustix::io::Result<()> {
    mknodat(
        dir,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tar_names() {
        assert_eq!(classify(b"foo"), TarWhiteout::None);
        assert_eq!(classify(b".wh.foo"), TarWhiteout::Delete(b"foo"));
        assert_eq!(classify(b".wh..wh..opq"), TarWhiteout::Opaque);
    }
}

//! Layer compression: detected by magic bytes on the way in (media types lie, or are absent
//! in docker archives), chosen by the caller on the way out.

use std::io::{self, BufRead, Read};

/// A layer blob's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Recognises the gzip (`1f 8b`) and zstd (`28 b5 2f fd`) frame magics; anything else is
    /// taken as an uncompressed tar, which the tar reader then validates.
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// OCI media type suffix (`+gzip`, `+zstd`, or none).
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }
}

/// Peeks at `reader` and wraps it in the matching decompressor.
pub(crate) fn decompress<'a, R: BufRead + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut prefix = [0u8; 4];
    let mut have = 0;
    // fill_buf may return fewer bytes than the magic; keep the peek non-consuming.
    {
        let buf = reader.fill_buf()?;
        let n = buf.len().min(4);
        prefix[..n].copy_from_slice(&buf[..n]);
        have += n;
    }
    let kind = Compression::detect(&prefix[..have]);
    let r: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    };
    Ok((kind, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_each_kind_and_round_trips() {
        let data = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (blob, kind) in [
            (data.clone(), Compression::None),
            (gz, Compression::Gzip),
            (zs, Compression::Zstd),
        ] {
            let (k, mut r) = decompress(io::BufReader::new(&blob[..])).unwrap();
            assert_eq!(k, kind);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
        assert_eq!(Compression::detect(&[]), Compression::None);
    }
}

//! Parallel gzip: the stream is cut into fixed-size chunks, each compressed on its own
//! thread as one gzip member, and the members written in order. A sequence of members is
//! a valid gzip file (RFC 1952 §2.2) that every layer reader decodes as one stream (Go's
//! `gzip.Reader`, GNU gzip, flate2's `MultiGzDecoder`), and the output depends only on
//! the input, the level and the chunk size, never on timing: layer digests stay
//! reproducible. Compression is most of a layer export's time, so on N cores this makes
//! big layers up to N times faster; a layer smaller than one chunk is a single member,
//! byte-identical to a plain gzip stream.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

/// Bytes per member: large enough that per-member headers and the lost back-references
/// at chunk edges cost well under 0.1 % of size.
const CHUNK: usize = 1 << 20;

pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    buf: Vec<u8>,
    pending: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    max_pending: usize,
}

impl<W: Write> ParallelGzip<W> {
    pub(crate) fn new(out: W, level: u32) -> ParallelGzip<W> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParallelGzip {
            out,
            level,
            buf: Vec::with_capacity(CHUNK),
            pending: VecDeque::new(),
            max_pending: cores.max(1) * 2,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let level = self.level;
        self.pending.push_back(std::thread::spawn(move || {
            let mut enc = flate2::GzBuilder::new().write(
                Vec::with_capacity(chunk.len() / 2),
                flate2::Compression::new(level),
            );
            enc.write_all(&chunk)?;
            enc.finish()
        }));
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.pop_front() {
            let member = h
                .join()
                .map_err(|_| io::Error::other("a gzip compression thread panicked"))??;
            self.out.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the writer. An empty stream still gets one
    /// (empty) member, as a plain gzip encoder writes.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.pending.is_empty() && self.buf.is_empty() {
            let enc =
                flate2::GzBuilder::new().write(&mut self.out, flate2::Compression::new(self.level));
            enc.finish()?;
        } else {
            self.submit()?;
            while !self.pending.is_empty() {
                self.write_oldest()?;
            }
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    /// Members are only written whole; a flush cannot force out a partial chunk without
    /// changing the bytes, so it only flushes what is complete.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 31) % 251) as u8 ^ (i / 7000) as u8)
            .collect()
    }

    fn compress(input: &[u8], piece: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6);
        for part in input.chunks(piece.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_the_same_however_it_is_fed() {
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12345] {
            let input = data(size);
            let a = compress(&input, 4096);
            let b = compress(&input, 1_000_003);
            assert_eq!(a, b, "size {size}: output depends only on the input");
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&a[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "size {size}");
        }
    }

    #[test]
    fn a_small_stream_is_a_plain_gzip_stream() {
        let input = data(1000);
        let mut plain = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        plain.write_all(&input).unwrap();
        assert_eq!(compress(&input, 100), plain.finish().unwrap());
        let mut empty = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        empty.write_all(b"").unwrap();
        assert_eq!(compress(b"", 1), empty.finish().unwrap());
    }

    /// `cargo test --release -p cairn-snapshot pgzip -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement"]
    fn throughput_against_one_thread() {
        // Text-like bytes: 64 symbols from a xorshift, which deflate shrinks by about a
        // quarter at a speed like real source trees'.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let input: Vec<u8> = (0..64 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'0' + (x % 64) as u8
            })
            .collect();
        let t = std::time::Instant::now();
        let mut one = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        one.write_all(&input).unwrap();
        let one = one.finish().unwrap();
        let serial = t.elapsed();
        let t = std::time::Instant::now();
        let par = compress(&input, 256 * 1024);
        let parallel = t.elapsed();
        println!(
            "64 MiB, level 6: one thread {serial:?} ({} bytes), parallel {parallel:?} ({} bytes), {:.2}x",
            one.len(),
            par.len(),
            serial.as_secs_f64() / parallel.as_secs_f64()
        );
    }
}

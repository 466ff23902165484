//! Parallel layer compression with a fixed block layout: the input is cut into blocks of a
//! fixed size and each block becomes an independent gzip member (or zstd frame). Concatenated
//! members are one valid gzip stream (RFC 1952; Go's and containerd's readers accept them),
//! and since block boundaries never depend on the number of threads, neither do the bytes.

use std::collections::VecDeque;
use std::io::Write;
use std::thread::{Scope, ScopedJoinHandle};

use crate::oci::media;

/// Input bytes per block: large enough that the ratio stays close to one stream.
pub const BLOCK_SIZE: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Codec::Gzip => media::OCI_LAYER_GZIP,
            Codec::Zstd => media::OCI_LAYER_ZSTD,
        }
    }

    fn compress(self, block: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Codec::Gzip => {
                // No name, mtime 0: the bytes depend on the content only.
                let mut gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(
                        Vec::with_capacity(block.len() / 2),
                        flate2::Compression::default(),
                    );
                gz.write_all(block)?;
                gz.finish()
            }
            Codec::Zstd => zstd::bulk::compress(block, 3),
        }
    }
}

/// Threads to compress with: `HOIST_COMPRESS_THREADS`, else every core.
pub fn default_threads() -> usize {
    std::env::var("HOIST_COMPRESS_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A writer that compresses blocks on up to `threads` scoped threads and writes them to
/// `out` in order.
pub struct BlockWriter<'scope, 'env, W: Write + Send> {
    scope: &'scope Scope<'scope, 'env>,
    out: W,
    codec: Codec,
    threads: usize,
    block: Vec<u8>,
    in_flight: VecDeque<ScopedJoinHandle<'scope, std::io::Result<Vec<u8>>>>,
}

impl<'scope, 'env, W: Write + Send> BlockWriter<'scope, 'env, W> {
    pub fn new(scope: &'scope Scope<'scope, 'env>, out: W, codec: Codec, threads: usize) -> Self {
        BlockWriter {
            scope,
            out,
            codec,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK_SIZE),
            in_flight: VecDeque::new(),
        }
    }

    fn dispatch(&mut self) -> std::io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let codec = self.codec;
        if self.threads == 1 {
            let compressed = codec.compress(&block)?;
            return self.out.write_all(&compressed);
        }
        while self.in_flight.len() >= self.threads {
            self.write_oldest()?;
        }
        self.in_flight
            .push_back(self.scope.spawn(move || codec.compress(&block)));
        Ok(())
    }

    fn write_oldest(&mut self) -> std::io::Result<()> {
        if let Some(handle) = self.in_flight.pop_front() {
            let compressed = handle
                .join()
                .map_err(|_| std::io::Error::other("a compression thread panicked"))??;
            self.out.write_all(&compressed)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.block.is_empty() {
            self.dispatch()?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        Ok(self.out)
    }
}

impl<W: Write + Send> Write for BlockWriter<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = BLOCK_SIZE - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK_SIZE {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress_with(codec: Codec, data: &[u8], threads: usize) -> Vec<u8> {
        std::thread::scope(|scope| {
            let mut w = BlockWriter::new(scope, Vec::new(), codec, threads);
            // Odd write sizes: block boundaries must not depend on them either.
            for chunk in data.chunks(77_777) {
                w.write_all(chunk).unwrap();
            }
            w.finish().unwrap()
        })
    }

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, a little over 3 blocks.
        (0..(3 * BLOCK_SIZE + 12_345))
            .map(|i| ((i * 7 + i / 1000) % 251) as u8)
            .collect()
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_and_decompress() {
        let data = sample();
        let one = compress_with(Codec::Gzip, &data, 1);
        for threads in [2, 3, 8] {
            assert_eq!(
                compress_with(Codec::Gzip, &data, threads),
                one,
                "{threads} threads"
            );
        }
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads_and_decompress() {
        let data = sample();
        let one = compress_with(Codec::Zstd, &data, 1);
        assert_eq!(compress_with(Codec::Zstd, &data, 4), one);
        let mut back = Vec::new();
        zstd::stream::read::Decoder::new(&one[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}

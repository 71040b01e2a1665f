//! Layer compression on every core with deterministic output: the tar stream of a layer is cut into
//! fixed-size blocks that worker threads compress independently (gzip: raw deflate blocks ended by a sync
//! flush inside one gzip member, as pigz does; zstd: one frame per block), and a finisher thread writes
//! them in order. Block boundaries depend only on the input, so the bytes never depend on the number of
//! threads or on timing. The producer (the tar writer) hands a layer over and goes on with the next one
//! while its last blocks are still being compressed.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::layout::{LAYER_GZIP_MEDIA_TYPE, LAYER_ZSTD_MEDIA_TYPE};

/// Input bytes per independently compressed block: large enough that restarting the compressor's
/// history costs well under 0.1% of size, small enough to keep both cores busy on layers of a few MB.
pub const BLOCK_SIZE: usize = 2 << 20;
/// Blocks queued between the producer and the finisher: bounds memory to about this many blocks of
/// input plus output while giving the workers enough work to never wait.
const BLOCKS_IN_FLIGHT: usize = 16;
/// gzip's default level (`gzip -6`, and what ostree-ext writes).
pub const GZIP_LEVEL: u32 = 6;
/// zstd's default level.
pub const ZSTD_LEVEL: i32 = 3;
/// gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (so the bytes do
/// not depend on the build host).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Output headroom per block beyond the input size (deflate's worst case adds 5 bytes per 16 KiB).
const OUTPUT_HEADROOM: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => LAYER_GZIP_MEDIA_TYPE,
            Compression::Zstd => LAYER_ZSTD_MEDIA_TYPE,
        }
    }

    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A compressed layer written to a file.
#[derive(Debug)]
pub struct CompressedLayer {
    /// `sha256:` of the compressed bytes (the blob digest).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `diff_ids` entry).
    pub diff_id: String,
    pub size: u64,
    pub uncompressed_size: u64,
    pub file: tempfile::NamedTempFile,
}

struct Job {
    input: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

enum FinisherMessage {
    Begin(tempfile::NamedTempFile),
    Block(Receiver<io::Result<Vec<u8>>>),
    End { diff_id: String, uncompressed_size: u64, crc: u32 },
}

/// Runs `produce` with a [`Pipeline`] whose layers are compressed on `workers` threads; returns what
/// `produce` returned and the finished layers in the order they were begun.
pub fn compress_layers<R>(
    compression: Compression,
    workers: usize,
    create_file: &(dyn Fn() -> io::Result<tempfile::NamedTempFile> + Sync),
    produce: impl FnOnce(&mut Pipeline<'_>) -> io::Result<R>,
) -> io::Result<(R, Vec<CompressedLayer>)> {
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let (job_sender, job_receiver) = sync_channel::<Job>(BLOCKS_IN_FLIGHT);
        let job_receiver = Arc::new(Mutex::new(job_receiver));
        for _ in 0..workers {
            let job_receiver = Arc::clone(&job_receiver);
            scope.spawn(move || compress_jobs(compression, &job_receiver));
        }
        let (finisher_sender, finisher_receiver) = sync_channel::<FinisherMessage>(BLOCKS_IN_FLIGHT);
        let finisher = scope.spawn(move || finish_layers(compression, finisher_receiver));
        let mut pipeline = Pipeline { compression, create_file, job_sender, finisher_sender };
        let produced = produce(&mut pipeline);
        drop(pipeline);
        let layers =
            finisher.join().unwrap_or_else(|_| Err(io::Error::other("the layer finisher thread panicked")));
        let produced = produced?;
        Ok((produced, layers?))
    })
}

/// The producer's side: begin a layer, write its tar bytes, finish it.
pub struct Pipeline<'a> {
    compression: Compression,
    create_file: &'a (dyn Fn() -> io::Result<tempfile::NamedTempFile> + Sync),
    job_sender: SyncSender<Job>,
    finisher_sender: SyncSender<FinisherMessage>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Pipeline").field("compression", &self.compression).finish_non_exhaustive()
    }
}

fn pipeline_closed() -> io::Error {
    io::Error::other("the compression pipeline stopped (a worker or the finisher failed)")
}

impl Pipeline<'_> {
    pub fn begin_layer(&mut self) -> io::Result<LayerStream<'_, '_>> {
        let file = (self.create_file)()?;
        self.finisher_sender.send(FinisherMessage::Begin(file)).map_err(|_| pipeline_closed())?;
        Ok(LayerStream {
            pipeline: self,
            buffer: Vec::with_capacity(BLOCK_SIZE),
            diff_id: Sha256::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    fn submit(&self, input: Vec<u8>, last: bool) -> io::Result<()> {
        let (reply, result) = sync_channel(1);
        self.job_sender.send(Job { input, last, reply }).map_err(|_| pipeline_closed())?;
        self.finisher_sender.send(FinisherMessage::Block(result)).map_err(|_| pipeline_closed())
    }
}

/// The uncompressed tar bytes of one layer; hashes them (diff id, CRC) and queues full blocks.
pub struct LayerStream<'pipeline, 'files> {
    pipeline: &'pipeline Pipeline<'files>,
    buffer: Vec<u8>,
    diff_id: Sha256,
    crc: crc32fast::Hasher,
    size: u64,
}

impl std::fmt::Debug for LayerStream<'_, '_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LayerStream").field("size", &self.size).finish_non_exhaustive()
    }
}

impl LayerStream<'_, '_> {
    /// Queues the last block and the trailer; the layer is complete once the pipeline ends.
    pub fn finish(mut self) -> io::Result<()> {
        let last = std::mem::take(&mut self.buffer);
        self.pipeline.submit(last, true)?;
        let diff_id = format!("sha256:{}", hex::encode(self.diff_id.finalize_reset()));
        let crc = std::mem::take(&mut self.crc).finalize();
        self.pipeline
            .finisher_sender
            .send(FinisherMessage::End { diff_id, uncompressed_size: self.size, crc })
            .map_err(|_| pipeline_closed())
    }
}

impl Write for LayerStream<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.diff_id.update(bytes);
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = BLOCK_SIZE - self.buffer.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buffer.extend_from_slice(now);
            rest = later;
            if self.buffer.len() == BLOCK_SIZE {
                let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(BLOCK_SIZE));
                self.pipeline.submit(full, false)?;
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress_jobs(compression: Compression, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let output = match compression {
            Compression::Gzip => deflate_block(&job.input, job.last),
            Compression::Zstd => zstd::bulk::compress(&job.input, ZSTD_LEVEL),
        };
        // The finisher may have given up on this layer after an error; nothing to do then.
        let _ = job.reply.send(output);
    }
}

/// Raw deflate of one block: ends byte-aligned with a sync flush so the next block can follow, or with
/// the final block when `last`.
pub fn deflate_block(input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut compressor = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    let mut output = Vec::with_capacity(input.len() + OUTPUT_HEADROOM);
    let flush = if last { flate2::FlushCompress::Finish } else { flate2::FlushCompress::Sync };
    loop {
        let consumed = compressor.total_in() as usize;
        let status = compressor
            .compress_vec(&input[consumed..], &mut output, flush)
            .map_err(|error| io::Error::other(format!("deflate: {error}")))?;
        let all_consumed = compressor.total_in() as usize == input.len();
        let done = match status {
            flate2::Status::StreamEnd => true,
            _ => !last && all_consumed && output.len() < output.capacity(),
        };
        if done {
            return Ok(output);
        }
        output.reserve(OUTPUT_HEADROOM);
    }
}

struct OpenLayer {
    file: tempfile::NamedTempFile,
    output: io::BufWriter<std::fs::File>,
    digest: Sha256,
    size: u64,
}

impl OpenLayer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.write_all(bytes)?;
        self.digest.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Writes blocks in order into each layer's file; keeps draining after an error so no thread waits forever.
fn finish_layers(
    compression: Compression,
    messages: Receiver<FinisherMessage>,
) -> io::Result<Vec<CompressedLayer>> {
    let mut finished = Vec::new();
    let mut open: Option<OpenLayer> = None;
    let mut failure: Option<io::Error> = None;
    for message in messages {
        if failure.is_some() {
            continue;
        }
        let step = match message {
            FinisherMessage::Begin(file) => file.as_file().try_clone().and_then(|handle| {
                let mut layer =
                    OpenLayer { file, output: io::BufWriter::new(handle), digest: Sha256::new(), size: 0 };
                if compression == Compression::Gzip {
                    layer.write(&GZIP_HEADER)?;
                }
                open = Some(layer);
                Ok(())
            }),
            FinisherMessage::Block(result) => match (open.as_mut(), result.recv()) {
                (Some(layer), Ok(Ok(bytes))) => layer.write(&bytes),
                (_, Ok(Err(error))) => Err(error),
                _ => Err(pipeline_closed()),
            },
            FinisherMessage::End { diff_id, uncompressed_size, crc } => match open.take() {
                Some(mut layer) => (|| {
                    if compression == Compression::Gzip {
                        layer.write(&crc.to_le_bytes())?;
                        // ISIZE is the input size modulo 2^32 (RFC 1952).
                        layer.write(&(uncompressed_size as u32).to_le_bytes())?;
                    }
                    layer.output.flush()?;
                    finished.push(CompressedLayer {
                        digest: format!("sha256:{}", hex::encode(layer.digest.finalize())),
                        diff_id,
                        size: layer.size,
                        uncompressed_size,
                        file: layer.file,
                    });
                    Ok(())
                })(),
                None => Err(pipeline_closed()),
            },
        };
        if let Err(error) = step {
            failure = Some(error);
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(finished),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample(length: usize, seed: u64) -> Vec<u8> {
        // Compressible but not trivial: words from a small vocabulary chosen by an LCG.
        let words: [&[u8]; 6] = [b"ostree ", b"layer ", b"commit ", b"\x00\x01\x02", b"usr/lib/", b"zz "];
        let mut state = seed;
        let mut bytes = Vec::with_capacity(length);
        while bytes.len() < length {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            bytes.extend_from_slice(words[(state >> 33) as usize % words.len()]);
        }
        bytes.truncate(length);
        bytes
    }

    fn compress(
        compression: Compression,
        workers: usize,
        layers: &[Vec<u8>],
    ) -> Vec<(CompressedLayer, Vec<u8>)> {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().to_path_buf();
        let create = move || tempfile::NamedTempFile::new_in(&path);
        let ((), finished) = compress_layers(compression, workers, &create, |pipeline| {
            for layer in layers {
                let mut stream = pipeline.begin_layer()?;
                for piece in layer.chunks(777_777) {
                    stream.write_all(piece)?;
                }
                stream.finish()?;
            }
            Ok(())
        })
        .expect("compress");
        finished
            .into_iter()
            .map(|layer| {
                let bytes = std::fs::read(layer.file.path()).expect("read");
                (layer, bytes)
            })
            .collect()
    }

    #[test]
    fn gzip_layers_decompress_to_their_input_and_do_not_depend_on_thread_count() {
        let layers = vec![sample(5 * BLOCK_SIZE + 123, 1), Vec::new(), sample(BLOCK_SIZE, 2), sample(10, 3)];
        let one = compress(Compression::Gzip, 1, &layers);
        let three = compress(Compression::Gzip, 3, &layers);
        assert_eq!(one.len(), layers.len());
        for ((layer, bytes), (other, other_bytes)) in one.iter().zip(&three) {
            assert_eq!(bytes, other_bytes);
            assert_eq!(layer.digest, other.digest);
            assert_eq!(layer.digest, crate::layout::sha256_digest(bytes));
            assert_eq!(layer.size, bytes.len() as u64);
        }
        for ((layer, bytes), input) in one.iter().zip(&layers) {
            let mut decoded = Vec::new();
            // A single-member decoder, as ostree-ext uses: everything must be in one gzip member.
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut decoded).expect("gunzip");
            assert_eq!(&decoded, input);
            assert_eq!(layer.diff_id, crate::layout::sha256_digest(input));
            assert_eq!(layer.uncompressed_size, input.len() as u64);
        }
    }

    #[test]
    fn gzip_output_is_as_small_as_one_stream() {
        let input = sample(8 * BLOCK_SIZE, 7);
        let parallel = compress(Compression::Gzip, 2, std::slice::from_ref(&input));
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        single.write_all(&input).expect("write");
        let single = single.finish().expect("finish");
        let ratio = parallel[0].1.len() as f64 / single.len() as f64;
        assert!(ratio < 1.01, "parallel output is {ratio}x a single stream");
    }

    #[test]
    fn zstd_layers_decompress_to_their_input() {
        let layers = vec![sample(3 * BLOCK_SIZE + 5, 4), Vec::new()];
        for ((_, bytes), input) in compress(Compression::Zstd, 2, &layers).iter().zip(&layers) {
            let decoded = zstd::stream::decode_all(&bytes[..]).expect("unzstd");
            assert_eq!(&decoded, input);
        }
    }

    #[test]
    fn a_producer_error_is_returned_and_nothing_hangs() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().to_path_buf();
        let create = move || tempfile::NamedTempFile::new_in(&path);
        let result = compress_layers(Compression::Gzip, 2, &create, |pipeline| {
            let mut stream = pipeline.begin_layer()?;
            stream.write_all(&sample(3 * BLOCK_SIZE, 9))?;
            Err::<(), _>(io::Error::other("reading an object failed"))
        });
        let error = result.expect_err("error");
        assert!(error.to_string().contains("reading an object failed"), "{error}");
    }
}

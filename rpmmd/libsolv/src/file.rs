//! [`CFile`]: a C `FILE *` stream opened with `solv_xfopen`, which decompresses (or compresses)
//! by file name suffix (`.gz`, `.xz`, `.zst`, `.bz2`, else plain). Compressed files read for parsing
//! are decompressed on a thread of their own and handed to libsolv through a pipe, so that
//! decompression (a quarter of loading a large primary.xml) runs beside the parser.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::thread::JoinHandle;

use libsolv_sys as sys;

/// `mode` argument of `solv_xfopen` for reading.
const READ_MODE: &std::ffi::CStr = c"r";
/// `mode` argument of `solv_xfopen_fd` for writing.
const WRITE_MODE: &std::ffi::CStr = c"w";

/// Buffer of a [`CFile`] stream.
const STREAM_BUFFER_BYTES: usize = 1 << 20;
/// Bytes the decompression thread hands over at a time.
const DECOMPRESSED_CHUNK_SIZE: usize = 256 * 1024;
/// A name without a compression suffix, so that `solv_xfopen_fd` reads the pipe as it is.
const PLAIN_STREAM_NAME: &std::ffi::CStr = c"decompressed";

/// Wraps an open compressed file in its decoder.
type OpenDecoder = fn(File) -> io::Result<Box<dyn Read + Send>>;

/// The thread decompressing a file into a pipe; [`finish_decompressing`] tells how it went.
type Decompressor = JoinHandle<io::Result<()>>;

/// Starts decompressing `path` on a thread of its own into a pipe if its suffix is `.gz`, `.zst`
/// or `.xz`: the pipe's read end and the thread. `None` for other files.
fn start_decompressing(path: &Path) -> io::Result<Option<(io::PipeReader, Decompressor)>> {
    let name = path.as_os_str().as_bytes();
    let decoder: OpenDecoder = if name.ends_with(b".gz") {
        |file| Ok(Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file))))
    } else if name.ends_with(b".zst") {
        |file| Ok(Box::new(zstd::Decoder::new(file)?))
    } else if name.ends_with(b".xz") {
        |file| Ok(Box::new(liblzma::read::XzDecoder::new_multi_decoder(io::BufReader::new(file))))
    } else {
        return Ok(None);
    };
    let mut decoder = decoder(File::open(path)?)?;
    let (reader, mut writer) = io::pipe()?;
    let thread = std::thread::Builder::new().name("decompress".into()).spawn(move || {
        let mut buffer = vec![0; DECOMPRESSED_CHUNK_SIZE];
        loop {
            let count = match decoder.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            writer.write_all(&buffer[..count])?;
        }
    })?;
    Ok(Some((reader, thread)))
}

/// Waits for a decompression thread (the pipe's read end must be closed first) and reports
/// whether decompressing failed: a corrupt or truncated file. A reader that stopped early leaves
/// the thread writing into a closed pipe: that is the reader's choice, not an error.
fn finish_decompressing(thread: Decompressor) -> io::Result<()> {
    match thread.join() {
        Ok(Err(error)) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Ok(result) => result,
        Err(_) => Err(io::Error::other("decompression thread panicked")),
    }
}

/// A metadata file opened for reading: `.gz`, `.zst` and `.xz` decompressed on a thread of their
/// own ([`start_decompressing`]), anything else read as it is. Call [`MetadataReader::finish`] after
/// reading: a corrupt or truncated compressed file shows there (the reader just sees its end).
pub struct MetadataReader {
    reader: io::BufReader<Box<dyn Read + Send>>,
    decompressor: Option<Decompressor>,
}

impl std::fmt::Debug for MetadataReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MetadataReader").field("decompressing", &self.decompressor.is_some()).finish()
    }
}

/// Read buffer of a [`MetadataReader`]: large reads keep the pipe and the parser busy.
const METADATA_BUFFER_BYTES: usize = 1 << 20;

impl MetadataReader {
    /// Opens `path`, decompressing by suffix.
    pub fn open(path: &Path) -> io::Result<MetadataReader> {
        let (input, decompressor): (Box<dyn Read + Send>, _) = match start_decompressing(path)? {
            Some((reader, thread)) => (Box::new(reader), Some(thread)),
            None => (Box::new(File::open(path)?), None),
        };
        Ok(MetadataReader {
            reader: io::BufReader::with_capacity(METADATA_BUFFER_BYTES, input),
            decompressor,
        })
    }

    /// Closes the file and reports whether decompressing it failed.
    pub fn finish(self) -> io::Result<()> {
        let MetadataReader { reader, decompressor } = self;
        drop(reader);
        decompressor.map_or(Ok(()), finish_decompressing)
    }
}

impl Read for MetadataReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buffer)
    }
}

impl io::BufRead for MetadataReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.reader.consume(amount)
    }
}

/// An open C stream, closed on drop (use [`CFile::close`] to see the error of closing).
pub(crate) struct CFile {
    raw: NonNull<sys::FILE>,
    /// The thread decompressing into the stream's pipe, if any.
    decompressor: Option<Decompressor>,
    /// The stream's buffer ([`CFile::single_threaded`]); freed only after the stream is closed.
    buffer: Box<[u8]>,
}

impl CFile {
    /// Opens `path` for reading, decompressing by suffix: `.gz`, `.zst` and `.xz` on a thread of
    /// their own ([`start_decompressing`]), anything else (`.bz2`, plain) by libsolv. Call
    /// [`CFile::finish_reading`] after reading to learn whether decompression failed.
    pub(crate) fn open_for_reading(path: &Path) -> io::Result<CFile> {
        if let Some((reader, thread)) = start_decompressing(path)? {
            let descriptor = reader.into_raw_fd();
            // SAFETY: the strings are valid and NUL-terminated; `descriptor` is the open read end
            // of the pipe, whose ownership passes to the returned stream on success.
            let raw =
                unsafe { sys::solv_xfopen_fd(PLAIN_STREAM_NAME.as_ptr(), descriptor, READ_MODE.as_ptr()) };
            return match NonNull::new(raw) {
                Some(raw) => Ok(CFile::single_threaded(raw, Some(thread))),
                None => {
                    let error = io::Error::last_os_error();
                    // SAFETY: the stream was not created, so the descriptor is still ours to close;
                    // the thread then fails on the closed pipe and ends.
                    drop(unsafe { File::from_raw_fd(descriptor) });
                    Err(error)
                }
            };
        }
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
        let raw = unsafe { sys::solv_xfopen(c_path.as_ptr(), READ_MODE.as_ptr()) };
        NonNull::new(raw).map(|raw| CFile::single_threaded(raw, None)).ok_or_else(io::Error::last_os_error)
    }

    /// Wraps a stream just opened, telling the C library that only one thread uses it (a `CFile`
    /// is neither `Send` nor `Sync`): `getc`, which libsolv's `.solv` reader calls for most bytes,
    /// then skips taking the stream's lock, a third of the cost of reading a cache. The stream
    /// gets a [`STREAM_BUFFER_BYTES`] buffer: with stdio's 4 KiB, reading a 10 MB cache took
    /// 2,500 `read` calls.
    fn single_threaded(raw: NonNull<sys::FILE>, decompressor: Option<Decompressor>) -> CFile {
        let mut buffer = vec![0; STREAM_BUFFER_BYTES].into_boxed_slice();
        // SAFETY: `raw` is an open stream on which no I/O happened yet, as `setvbuf` requires; the
        // buffer is owned by the returned `CFile` and outlives the stream (freed after `fclose`; a
        // boxed slice does not move when the `CFile` does). Both calls only change how the stream
        // buffers and locks.
        unsafe {
            sys::setvbuf(raw.as_ptr(), buffer.as_mut_ptr().cast(), sys::_IOFBF as i32, buffer.len());
            sys::__fsetlocking(raw.as_ptr(), sys::FSETLOCKING_BYCALLER as i32);
        }
        CFile { raw, decompressor, buffer }
    }

    /// Closes a stream opened for reading and reports whether decompressing it failed
    /// ([`finish_decompressing`]).
    pub(crate) fn finish_reading(mut self) -> io::Result<()> {
        let decompressor = self.decompressor.take();
        drop(self);
        decompressor.map_or(Ok(()), finish_decompressing)
    }

    /// Creates (truncates) `path` for writing, compressing as the suffix of `name_for_suffix` says.
    pub(crate) fn create_for_writing(path: &Path, name_for_suffix: &Path) -> io::Result<CFile> {
        let c_name = CString::new(name_for_suffix.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let descriptor = File::create(path)?.into_raw_fd();
        // SAFETY: the strings are valid and NUL-terminated; `descriptor` is an open file
        // descriptor whose ownership passes to the returned stream on success.
        let raw = unsafe { sys::solv_xfopen_fd(c_name.as_ptr(), descriptor, WRITE_MODE.as_ptr()) };
        match NonNull::new(raw) {
            Some(raw) => Ok(CFile::single_threaded(raw, None)),
            None => {
                let error = io::Error::last_os_error();
                // SAFETY: the stream was not created, so the descriptor is still ours to close.
                drop(unsafe { File::from_raw_fd(descriptor) });
                Err(error)
            }
        }
    }

    /// The stream for libsolv's reading and writing functions.
    pub(crate) fn as_ptr(&self) -> *mut sys::FILE {
        self.raw.as_ptr()
    }

    /// Closes the stream, flushing buffered (compressed) output, and reports failure.
    pub(crate) fn close(mut self) -> io::Result<()> {
        let raw = self.raw;
        // Only streams opened for writing are closed this way; they have no decompressor.
        drop(self.decompressor.take());
        let buffer = std::mem::take(&mut self.buffer);
        std::mem::forget(self);
        // SAFETY: `raw` is an open stream; `self` was forgotten, so it is closed exactly once.
        let status = unsafe { sys::fclose(raw.as_ptr()) };
        let result = if status == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
        // The stream, which wrote its last bytes from the buffer, is closed now.
        drop(buffer);
        result
    }
}

impl Drop for CFile {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is an open stream, closed exactly once, here; its buffer, a field,
        // is freed only after this.
        unsafe { sys::fclose(self.raw.as_ptr()) };
    }
}

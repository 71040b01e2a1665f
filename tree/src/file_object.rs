//! Writing one regular file as an ostree content object: small files in one call, large ones streamed in
//! chunks so that no file needs a buffer of its size. Used by the commit of the assembled tree (files on
//! disk); the package import writes its objects itself (`pkgcache::objects`).

use std::io::Read;

use ostree::gio;
use ostree::gio::prelude::*;
use ostree::glib;

/// Files up to this size are read into memory and written in one call.
pub const INLINE_FILE_LIMIT: u64 = 4 << 20;
/// Read buffer for streamed files.
const STREAM_CHUNK: usize = 256 << 10;

/// The metadata of the object: owner, full `st_mode` and the extended attributes (`a(ayay)`).
#[derive(Debug)]
pub struct FileObjectMetadata<'a> {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub xattrs: &'a glib::Variant,
}

/// Content that is not exactly the size its metadata gives, or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("reading: {0}")]
    Read(std::io::Error),
    #[error("expected {expected} bytes, found only {found}")]
    Shorter { expected: u64, found: u64 },
    #[error("longer than the expected {expected} bytes")]
    Longer { expected: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum FileObjectError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("writing the object: {0}")]
    Ostree(glib::Error),
}

/// Reads exactly `size` bytes into memory (for files up to [`INLINE_FILE_LIMIT`]).
pub fn read_exactly(content: &mut dyn Read, size: u64) -> Result<Vec<u8>, ContentError> {
    let mut bytes = Vec::with_capacity(size as usize);
    content.take(size + 1).read_to_end(&mut bytes).map_err(ContentError::Read)?;
    let found = bytes.len() as u64;
    if found < size {
        return Err(ContentError::Shorter { expected: size, found });
    }
    if found > size {
        return Err(ContentError::Longer { expected: size });
    }
    Ok(bytes)
}

/// Hands exactly `size` bytes of `content` to `sink` in chunks, so that no file needs a buffer of its size;
/// more or fewer bytes is an error.
pub fn stream_exactly<E: From<ContentError>>(
    content: &mut dyn Read,
    size: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buffer = vec![0u8; STREAM_CHUNK];
    let mut remaining = size;
    while remaining > 0 {
        let wanted = remaining.min(buffer.len() as u64) as usize;
        let read = content.read(&mut buffer[..wanted]).map_err(ContentError::Read)?;
        if read == 0 {
            return Err(ContentError::Shorter { expected: size, found: size - remaining }.into());
        }
        sink(&buffer[..read])?;
        remaining -= read as u64;
    }
    if content.read(&mut [0u8; 1]).map_err(ContentError::Read)? != 0 {
        return Err(ContentError::Longer { expected: size }.into());
    }
    Ok(())
}

/// Writes exactly `size` bytes from `content` (more or fewer is an error) and returns the object checksum.
/// `observe` sees every byte, in order (e.g. to check a digest) before the object is finished.
pub fn write_file_object(
    repo: &ostree::Repo,
    metadata: &FileObjectMetadata<'_>,
    size: u64,
    content: &mut dyn Read,
    observe: &mut dyn FnMut(&[u8]),
) -> Result<String, FileObjectError> {
    let FileObjectMetadata { uid, gid, mode, xattrs } = *metadata;
    if size <= INLINE_FILE_LIMIT {
        let buffer = read_exactly(content, size)?;
        observe(&buffer);
        return repo
            .write_regfile_inline(None, uid, gid, mode, Some(xattrs), &buffer, gio::Cancellable::NONE)
            .map(|checksum| checksum.to_string())
            .map_err(FileObjectError::Ostree);
    }
    let writer =
        repo.write_regfile(None, uid, gid, mode, size, Some(xattrs)).map_err(FileObjectError::Ostree)?;
    stream_exactly(content, size, |bytes| {
        observe(bytes);
        writer.write_all(bytes, gio::Cancellable::NONE).map(|_| ()).map_err(FileObjectError::Ostree)
    })?;
    writer
        .finish(gio::Cancellable::NONE)
        .map(|checksum| checksum.to_string())
        .map_err(FileObjectError::Ostree)
}

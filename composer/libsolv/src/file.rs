//! [`CFile`]: a C `FILE *` stream opened with `solv_xfopen`, which decompresses (or compresses)
//! by file name suffix (`.gz`, `.xz`, `.zst`, `.bz2`, else plain).

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use libsolv_sys as sys;

/// `mode` argument of `solv_xfopen` for reading.
const READ_MODE: &std::ffi::CStr = c"r";
/// `mode` argument of `solv_xfopen_fd` for writing.
const WRITE_MODE: &std::ffi::CStr = c"w";

/// An open C stream, closed on drop (use [`CFile::close`] to see the error of closing).
pub(crate) struct CFile {
    raw: NonNull<sys::FILE>,
}

impl CFile {
    /// Opens `path` for reading, decompressing by suffix.
    pub(crate) fn open_for_reading(path: &Path) -> io::Result<CFile> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
        let raw = unsafe { sys::solv_xfopen(c_path.as_ptr(), READ_MODE.as_ptr()) };
        NonNull::new(raw).map(|raw| CFile { raw }).ok_or_else(io::Error::last_os_error)
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
            Some(raw) => Ok(CFile { raw }),
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
    pub(crate) fn close(self) -> io::Result<()> {
        let raw = self.raw;
        std::mem::forget(self);
        // SAFETY: `raw` is an open stream; `self` was forgotten, so it is closed exactly once.
        let status = unsafe { sys::fclose(raw.as_ptr()) };
        if status == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

impl Drop for CFile {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is an open stream, closed exactly once, here.
        unsafe { sys::fclose(self.raw.as_ptr()) };
    }
}

//! The unit of I/O every engine and backend moves: a core type, below the engines (io_uring,
//! the bounce stagers, cuFile) that take it and the plan that makes it.

/// One request: `len` bytes between file offset `file_offset` and byte `buf_offset` of the
/// thread's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Byte offset in the file.
    pub file_offset: u64,
    /// Byte offset in the thread's buffer.
    pub buf_offset: usize,
    /// Bytes to move.
    pub len: usize,
    /// Goes through the buffered descriptor because O_DIRECT cannot do its length.
    pub tail: bool,
}

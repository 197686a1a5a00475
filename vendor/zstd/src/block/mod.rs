//! Compress and decompress individual blocks.
//!
//! These methods process all the input data at once.
//! It is therefore best used with relatively small blocks
//! (like small network packets).

mod compressor;
mod decompressor;

pub use self::compressor::Compressor;
pub use self::decompressor::Decompressor;

use std::cell::RefCell;
use std::io;

// PATCHED (see PATCHED.md): upstream creates a fresh `ZSTD_CCtx`/`ZSTD_DCtx`
// on every call of the functions below. Creating a context runs `cpuid` and
// allocates its workspace, which costs more than compressing a small block.
// They now reuse one `Compressor` and one `Decompressor` per thread. Both are
// used without a dictionary, and zstd's one-shot functions start every call
// from a clean state, so the results are the same as with fresh contexts.
thread_local! {
    static COMPRESSOR: RefCell<Compressor> = RefCell::new(Compressor::new());
    static DECOMPRESSOR: RefCell<Decompressor> =
        RefCell::new(Decompressor::new());
}

fn with_compressor<T>(f: impl FnOnce(&mut Compressor) -> T) -> T {
    crate::with_reused(&COMPRESSOR, Compressor::new, f)
}

fn with_decompressor<T>(f: impl FnOnce(&mut Decompressor) -> T) -> T {
    crate::with_reused(&DECOMPRESSOR, Decompressor::new, f)
}

/// Compresses a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn compress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
    level: i32,
) -> io::Result<usize> {
    with_compressor(|compressor| {
        compressor.compress_to_buffer(source, destination, level)
    })
}

/// Compresses a block of data and returns the compressed result.
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    with_compressor(|compressor| compressor.compress(data, level))
}

/// Deompress a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
pub fn decompress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
) -> io::Result<usize> {
    with_decompressor(|decompressor| {
        decompressor.decompress_to_buffer(source, destination)
    })
}

/// Decompresses a block of data and returns the decompressed result.
///
/// The decompressed data should be less than `capacity` bytes,
/// or an error will be returned.
pub fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    with_decompressor(|decompressor| decompressor.decompress(data, capacity))
}

#[cfg(test)]
mod tests {
    use super::{compress, decompress};

    #[test]
    fn test_direct() {
        // Can we include_str!("assets/example.txt")?
        // It's excluded from the packaging step, so maybe not.
        let text = include_str!("../../assets/example.txt");
        crate::test_cycle_unwrap(
            text.as_bytes(),
            |data| compress(data, 1),
            |data| decompress(data, text.len()),
        );
    }
}

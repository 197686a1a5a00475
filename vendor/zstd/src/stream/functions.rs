use std::cell::RefCell;
use std::io;

use zstd_safe::{InBuffer, OutBuffer, ResetDirective};

use super::{Decoder, Encoder};
use crate::map_error_code;

/// Decompress from the given source as if using a `Decoder`.
///
/// The input data must be in the zstd frame format.
///
/// PATCHED (see PATCHED.md): upstream decodes through a `Decoder` with a fresh
/// context on every call. This decodes the same way (every frame until the
/// end of `source`; an error for an incomplete last frame, including an empty
/// `source`) with one context and input buffer per thread, reset before each
/// call.
pub fn decode_all<R: io::Read>(mut source: R) -> io::Result<Vec<u8>> {
    crate::with_reused(&DECODE_ALL, DecodeAll::new, |state| {
        state.decode_all(&mut source)
    })
}

thread_local! {
    static DECODE_ALL: RefCell<DecodeAll> = RefCell::new(DecodeAll::new());
}

/// What `decode_all` reuses on a thread.
struct DecodeAll {
    context: zstd_safe::DCtx<'static>,
    input: Vec<u8>,
}

impl DecodeAll {
    fn new() -> Self {
        DecodeAll {
            context: zstd_safe::DCtx::create(),
            input: vec![0; zstd_safe::DCtx::in_size()],
        }
    }

    /// Decodes like upstream's `Decoder` in `zio::Reader` (multiple frames):
    /// the context is reset before each frame after the first, and the end of
    /// the input must be the end of a frame.
    fn decode_all(
        &mut self,
        source: &mut dyn io::Read,
    ) -> io::Result<Vec<u8>> {
        /// The most output reserved up front from a frame's declared size.
        const MAX_RESERVED: usize = 1 << 20;
        /// What the output grows by (at least) when it is full.
        const MIN_GROWTH: usize = 16 * 1024;

        // Whatever a previous call left (an error mid-frame, a panic in its
        // reader), start like a new context with no dictionary.
        zstd_safe::dctx_reset(
            &mut self.context,
            ResetDirective::ZSTD_reset_session_and_parameters,
        )
        .map_err(map_error_code)?;

        let mut output = Vec::new();
        let mut finished_frame = false;
        let mut first_chunk = true;
        loop {
            let filled = match source.read(&mut self.input) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &self.input[..filled];
            if first_chunk {
                first_chunk = false;
                let declared = zstd_safe::get_frame_content_size(chunk);
                if declared <= MAX_RESERVED as u64 {
                    output.reserve_exact(declared as usize);
                }
            }
            let mut input = InBuffer::around(chunk);
            loop {
                if finished_frame && input.pos() < filled {
                    self.context.reset().map_err(map_error_code)?;
                    finished_frame = false;
                }
                if output.len() == output.capacity() {
                    output.reserve(MIN_GROWTH);
                }
                let (hint, output_full) = {
                    let pos = output.len();
                    let mut out = OutBuffer::around_pos(&mut output, pos);
                    let hint = self
                        .context
                        .decompress_stream(&mut out, &mut input)
                        .map_err(map_error_code)?;
                    (hint, out.pos() == out.dst.capacity())
                };
                if hint == 0 {
                    finished_frame = true;
                }
                // More input to decode, or decoded data zstd could not write
                // yet for want of room (only possible mid-frame).
                if input.pos() < filled || (output_full && hint != 0) {
                    continue;
                }
                break;
            }
        }
        if finished_frame {
            Ok(output)
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "incomplete frame",
            ))
        }
    }
}

/// Decompress from the given source as if using a `Decoder`.
///
/// Decompressed data will be appended to `destination`.
pub fn copy_decode<R, W>(source: R, mut destination: W) -> io::Result<()>
where
    R: io::Read,
    W: io::Write,
{
    let mut decoder = Decoder::new(source)?;
    io::copy(&mut decoder, &mut destination)?;
    Ok(())
}

/// Compress all data from the given source as if using an `Encoder`.
///
/// Result will be in the zstd frame format.
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn encode_all<R: io::Read>(source: R, level: i32) -> io::Result<Vec<u8>> {
    let mut result = Vec::<u8>::new();
    copy_encode(source, &mut result, level)?;
    Ok(result)
}

/// Compress all data from the given source as if using an `Encoder`.
///
/// Compressed data will be appended to `destination`.
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn copy_encode<R, W>(
    mut source: R,
    destination: W,
    level: i32,
) -> io::Result<()>
where
    R: io::Read,
    W: io::Write,
{
    let mut encoder = Encoder::new(destination, level)?;
    io::copy(&mut source, &mut encoder)?;
    encoder.finish()?;
    Ok(())
}

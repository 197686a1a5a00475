//! The patched zstd (vendor/zstd, see its PATCHED.md) reuses one context per thread in
//! the one-shot functions sled calls for every page. Its results must be those of fresh
//! contexts, call after call on one thread, for concatenated frames, and after errors.

use std::io::{self, Read};

use crate::rng::Rng;

/// `len` bytes: random, repetitive text-like, or a mix, chosen by `kind`.
fn data(rng: &mut Rng, len: usize, kind: usize) -> Vec<u8> {
    const WORDS: [&[u8]; 8] =
        [b"contact ", b"company ", b"{\"name\":", b"\"email\":", b"lead, ", b"0042 ", b"\n", b"deal "];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match kind % 3 {
            0 => out.push(rng.next() as u8),
            1 => out.extend_from_slice(WORDS[rng.index(WORDS.len())]),
            _ if rng.below(4) == 0 => out.push(rng.next() as u8),
            _ => out.extend_from_slice(WORDS[rng.index(WORDS.len())]),
        }
    }
    out.truncate(len);
    out
}

/// Sizes around the edges that matter: empty, tiny, about a page, and larger than
/// zstd's 128 KiB block and stream input buffer.
const SIZES: [usize; 10] = [0, 1, 7, 100, 4096, 20_000, 131_071, 131_075, 131_076, 300_001];

/// What upstream's decode_all does: a fresh `Decoder` read to its end.
fn fresh_decode(input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::Decoder::new(input)?.read_to_end(&mut out)?;
    Ok(out)
}

/// The same result: equal bytes, or errors of the same kind and message.
fn assert_same(reused: &io::Result<Vec<u8>>, fresh: &io::Result<Vec<u8>>, what: &str) {
    match (reused, fresh) {
        (Ok(reused), Ok(fresh)) => assert!(reused == fresh, "{what}: different bytes"),
        (Err(reused), Err(fresh)) => {
            assert_eq!(reused.kind(), fresh.kind(), "{what}");
            assert_eq!(reused.to_string(), fresh.to_string(), "{what}");
        }
        (reused, fresh) => {
            panic!("{what}: reused context gave {reused:?}, fresh one {:?}", fresh.as_ref().map(Vec::len))
        }
    }
}

#[test]
fn one_shot_functions_match_fresh_contexts_call_after_call() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut frames = Vec::new();
    for round in 0..4 {
        for (i, &len) in SIZES.iter().enumerate() {
            let data = data(&mut rng, len, i + round);
            // sled's level, zstd's default, and a high one: the shared compressor
            // changes level between calls.
            let level = [1, 0, 3, 9][(i + round) % 4];
            let compressed = zstd::block::compress(&data, level).unwrap();
            let fresh = zstd::block::Compressor::new().compress(&data, level).unwrap();
            assert!(compressed == fresh, "block::compress of {len} bytes at level {level} differs");

            let capacity = len + 1;
            let block = zstd::block::decompress(&compressed, capacity).unwrap();
            assert!(block == data, "block::decompress of {len} bytes");
            let fresh = zstd::block::Decompressor::new().decompress(&compressed, capacity).unwrap();
            assert!(block == fresh);

            let mut buf = vec![0; len + 1];
            let n = zstd::block::decompress_to_buffer(&compressed, &mut buf).unwrap();
            assert!(buf[..n] == data[..], "block::decompress_to_buffer of {len} bytes");

            // As sled calls it: a reader over the rest of its page buffer.
            let decoded = zstd::stream::decode_all(&mut &compressed[..]);
            assert_same(&decoded, &fresh_decode(&compressed), "decode_all");
            assert!(decoded.unwrap() == data);

            // Frames without a declared size, as the streaming encoder writes them.
            let streamed = zstd::stream::encode_all(&data[..], level).unwrap();
            let decoded = zstd::stream::decode_all(&streamed[..]);
            assert_same(&decoded, &fresh_decode(&streamed), "decode_all of a streamed frame");
            assert!(decoded.unwrap() == data);

            frames.push((data, if round % 2 == 0 { compressed } else { streamed }));
        }
    }

    // Concatenated frames decode to the concatenated data, the last frame included.
    for start in 0..frames.len() {
        let count = 1 + rng.index(5);
        let chosen = &frames[start..(start + count).min(frames.len())];
        let input: Vec<u8> = chosen.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        let expected: Vec<u8> = chosen.iter().flat_map(|(d, _)| d.iter().copied()).collect();
        let decoded = zstd::stream::decode_all(&input[..]);
        assert_same(&decoded, &fresh_decode(&input), "decode_all of concatenated frames");
        assert!(decoded.unwrap() == expected, "{} concatenated frames", chosen.len());
    }
}

#[test]
fn corrupt_input_is_an_error_like_upstream_and_the_next_call_still_works() {
    let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
    let data = data(&mut rng, 50_000, 2);
    let frame = zstd::block::compress(&data, 1).unwrap();
    let check_next_call = || {
        assert!(zstd::stream::decode_all(&frame[..]).unwrap() == data, "decode_all after an error");
        assert!(zstd::block::decompress(&frame, data.len()).unwrap() == data, "block::decompress after an error");
    };

    let mut trailing = frame.clone();
    trailing.extend_from_slice(b"not a frame");
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty input", Vec::new()),
        ("no frame at all", b"certainly not zstd".to_vec()),
        ("a truncated frame", frame[..frame.len() - 1].to_vec()),
        ("a frame's header only", frame[..6].to_vec()),
        ("a frame and trailing garbage", trailing),
        ("two frames and half of one", [&frame[..], &frame[..], &frame[..frame.len() / 2]].concat()),
    ];
    for (what, input) in &bad {
        let reused = zstd::stream::decode_all(&input[..]);
        assert!(reused.is_err(), "decode_all of {what} is Ok");
        assert_same(&reused, &fresh_decode(input), what);
        check_next_call();
    }
    assert!(zstd::block::decompress(b"certainly not zstd", 100).is_err());
    assert!(zstd::block::decompress(&frame[..frame.len() - 1], data.len()).is_err());
    check_next_call();

    // Random damage: errors and successes alike must match a fresh decoder's.
    for _ in 0..300 {
        let mut damaged = frame.clone();
        for _ in 0..1 + rng.index(3) {
            let at = rng.index(damaged.len());
            damaged[at] ^= 1 << rng.index(8);
        }
        assert_same(&zstd::stream::decode_all(&damaged[..]), &fresh_decode(&damaged), "damaged frame");
        let capacity = data.len() * 2;
        let block = zstd::block::decompress(&damaged, capacity);
        let fresh = zstd::block::Decompressor::new().decompress(&damaged, capacity);
        assert_same(&block, &fresh, "damaged block");
    }
    check_next_call();
}

/// A reader that decodes another input with decode_all from inside its own `read`,
/// while the outer decode_all holds this thread's context.
struct Reentrant<'a> {
    outer: &'a [u8],
    inner: &'a [u8],
    expected_inner: &'a [u8],
    nested_calls: usize,
}

impl Read for Reentrant<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let decoded = zstd::stream::decode_all(self.inner)?;
        assert!(decoded == self.expected_inner, "the nested decode_all");
        self.nested_calls += 1;
        // Small reads, so the outer call reads (and nests) many times.
        let n = buf.len().min(self.outer.len()).min(1000);
        buf[..n].copy_from_slice(&self.outer[..n]);
        self.outer = &self.outer[n..];
        Ok(n)
    }
}

#[test]
fn a_reentrant_call_uses_a_context_of_its_own() {
    let mut rng = Rng::new(42);
    let (outer, inner) = (data(&mut rng, 200_000, 2), data(&mut rng, 10_000, 1));
    let (outer_frame, inner_frame) =
        (zstd::block::compress(&outer, 1).unwrap(), zstd::block::compress(&inner, 1).unwrap());
    let mut reader = Reentrant { outer: &outer_frame, inner: &inner_frame, expected_inner: &inner, nested_calls: 0 };
    assert!(zstd::stream::decode_all(&mut reader).unwrap() == outer);
    assert!(reader.nested_calls > 2, "{} nested calls", reader.nested_calls);
}

#[test]
fn threads_each_reuse_their_own_contexts() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(0x5EED + t);
                for i in 0..200 {
                    let len = rng.index(40_000);
                    let data = data(&mut rng, len, i);
                    let frame = zstd::block::compress(&data, 1).unwrap();
                    assert!(zstd::stream::decode_all(&frame[..]).unwrap() == data);
                    assert!(zstd::block::decompress(&frame, data.len()).unwrap() == data);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

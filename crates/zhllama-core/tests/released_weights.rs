//! After packing, a model gives the row-major int8 bytes of its packed matrices back to the
//! system (`Storage::release`): a big file's anonymous copy then reads zeros there. This
//! proves nothing reads them any more: the same int8 file, loaded into such a copy and
//! loaded as a plain file mapping (whose released pages are read from the file again), gives
//! the same logits bit for bit. One test per binary: it sets an environment variable.

use zhllama_core::{Model, Quantize};
use zhllama_testkit::{Shape, Weights};

/// An int8 file over the 8 MiB from which weights are copied into anonymous memory, with a
/// separate classifier and group size 32.
const SHAPE: Shape = Shape {
    dim: 256,
    hidden: 672,
    layers: 10,
    heads: 4,
    kv_heads: 4,
    vocab: 2000,
    seq_len: 64,
};

fn logits(model: &mut Model) -> Vec<u32> {
    let mut bits = Vec::new();
    for (pos, token) in [1u32, 17, 400, 1999, 5, 77].into_iter().enumerate() {
        bits.extend(
            model
                .forward(token, pos)
                .unwrap()
                .iter()
                .map(|v| v.to_bits()),
        );
    }
    bits
}

#[test]
fn released_row_major_bytes_are_never_read() {
    let dir = std::env::temp_dir().join(format!("zhllama-released-{}", std::process::id()));
    let path = dir.join("m.bin");
    let bytes = Weights::random(SHAPE, false, 11).v2(32);
    assert!(
        bytes.len() > 8 << 20,
        "the file must take the anonymous-copy path"
    );
    zhllama_testkit::write(&path, &bytes);
    let load = || Model::load_with(&path, None, Some(2), Quantize::None).unwrap();
    let copied = logits(&mut load());
    // SAFETY: the only test of this binary, and no other thread reads the environment now.
    unsafe { std::env::set_var("ZHLLAMA_NO_HUGEPAGES", "1") };
    let mapped = logits(&mut load());
    std::fs::remove_dir_all(&dir).ok();
    assert!(copied == mapped, "an int8 model read bytes it had released");
}

//! Property tests: truncated, bit-flipped and hand-crafted checkpoints and tokenizers give an
//! error value or a working model, never a panic, a hang or a huge allocation; the tokenizer
//! never panics and round-trips text.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use zhllama_core::{Error, GenerateOptions, Model, Quantize, Tokenizer, MAGIC};
use zhllama_testkit::{Shape, Weights};

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("zhllama-core-robust-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The small model of these tests: dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 300,
/// seq 16; int8 group size 4 at most.
const SMALL: Shape = Shape {
    dim: 8,
    hidden: 12,
    layers: 2,
    heads: 2,
    kv_heads: 1,
    vocab: 300,
    seq_len: 16,
};

fn weights(shared: bool) -> Weights {
    Weights::random(SMALL, shared, 7)
}

/// A valid checkpoint of `SMALL`; version 2 holds the same weights quantized with group size 4.
fn checkpoint(version: u32, shared: bool) -> Vec<u8> {
    let w = weights(shared);
    match version {
        0 => w.v0(),
        1 => w.v1(),
        _ => w.v2(4),
    }
}

/// A tokenizer with 300 entries: control ids, 256 byte tokens, a space, some letters and merges.
fn tokenizer_bytes() -> Vec<u8> {
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>").into_bytes());
    }
    for p in [" ", "a", "b", "c", "ab", " a", " ab", "中", "文", "中文"] {
        pieces.push(p.as_bytes().to_vec());
    }
    let mut i = 0;
    while pieces.len() < 300 {
        pieces.push(format!("x{i}").into_bytes());
        i += 1;
    }
    let mut out = 8u32.to_le_bytes().to_vec();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&(-(i as f32)).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmpdir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Loads and, when that works, runs a few positions and a short generation.
fn exercise(model: &Path, tok: &Path) -> Result<(), Error> {
    let mut m = Model::load(model, Some(tok), Some(2))?;
    for pos in 0..3 {
        let logits = m.forward(1, pos)?;
        assert_eq!(logits.len(), m.vocab_size());
    }
    assert!(m.forward(m.vocab_size() as u32, 0).is_err());
    assert!(m.forward(0, m.seq_len()).is_err());
    let opts = GenerateOptions {
        steps: 0,
        temperature: 0.9,
        seed: 3,
        ..Default::default()
    };
    let text: String = m.generate("ab 中文", &opts)?.collect();
    assert!(text.chars().count() <= 3 * m.seq_len());
    Ok(())
}

#[test]
fn valid_checkpoints_load_in_all_formats() {
    let tok = write("tok.bin", &tokenizer_bytes());
    for version in [0, 1, 2] {
        for shared in [true, false] {
            let p = write(
                &format!("ok-{version}-{shared}.bin"),
                &checkpoint(version, shared),
            );
            exercise(&p, &tok).unwrap();
            let m = Model::load(&p, None, Some(1)).unwrap();
            assert_eq!(m.version(), version);
            assert_eq!(m.config().shared_classifier, shared);
            assert_eq!(
                (m.dim(), m.n_heads(), m.n_kv_heads(), m.vocab_size()),
                (8, 2, 1, 300)
            );
            assert_eq!(m.quantized(), version == 2);
            assert_eq!(m.group_size(), if version == 2 { 4 } else { 0 });
        }
    }
}

#[test]
fn int8_file_and_quantize_at_load_agree_and_stay_close_to_f32() {
    for shared in [true, false] {
        let p1 = write(&format!("q-v1-{shared}.bin"), &checkpoint(1, shared));
        let p2 = write(&format!("q-v2-{shared}.bin"), &checkpoint(2, shared));
        let mut f = Model::load(&p1, None, Some(1)).unwrap();
        let mut q = Model::load(&p2, None, Some(2)).unwrap();
        let quant = Quantize::Q8 { group_size: None };
        let mut ql = Model::load_with(&p1, None, Some(1), quant).unwrap();
        assert_eq!((ql.version(), ql.group_size()), (2, 4));
        for pos in 0..6 {
            let tok = 7 + 13 * pos as u32;
            let lf = f.forward(tok, pos).unwrap().to_vec();
            let lq = q.forward(tok, pos).unwrap().to_vec();
            // the same bytes in memory as in the file: the same logits, bit for bit
            assert_eq!(lq, ql.forward(tok, pos).unwrap().to_vec());
            let scale = lf.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = lf
                .iter()
                .zip(&lq)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 0.1 * scale + 1e-3,
                "pos {pos}: int8 off by {err} (scale {scale})"
            );
        }
        // an int8 file asked to be int8 again is used as it is
        assert!(Model::load_with(&p2, None, Some(1), quant).is_ok());
    }
}

#[test]
fn bad_group_sizes_are_errors() {
    let good = checkpoint(2, true);
    // 3 divides neither; 8 divides dim 8 but not hidden 12; 0 and negatives are nonsense
    for gs in [0i32, -4, 3, 8, 5, i32::MIN] {
        let mut b = good.clone();
        b[37..41].copy_from_slice(&gs.to_le_bytes());
        let p = write("bad-gs.bin", &b);
        let e = Model::load(&p, None, Some(1)).err().expect("must not load");
        let msg = e.to_string();
        assert!(
            matches!(e, Error::BadFile { .. }) && msg.contains("group size"),
            "{msg}"
        );
    }
    // a consistent file with group size 2 (divides both) loads; with 4's size it is truncated
    let v1 = checkpoint(1, true);
    let p = write("gs2.bin", &weights(true).v2(2));
    assert_eq!(Model::load(&p, None, Some(1)).unwrap().group_size(), 2);
    let mut b = weights(true).v2(2);
    b[37..41].copy_from_slice(&4i32.to_le_bytes());
    let p = write("gs2-as-4.bin", &b);
    let e = Model::load(&p, None, Some(1)).err().unwrap().to_string();
    assert!(e.contains("implies") && e.contains("group size 4"), "{e}");
    // quantizing at load: the group size must divide dim and hidden too
    let p1 = write("gs-v1.bin", &v1);
    for gs in [0usize, 3, 8, 64] {
        let q = Quantize::Q8 {
            group_size: Some(gs),
        };
        let e = Model::load_with(&p1, None, None, q).err().unwrap();
        assert!(matches!(e, Error::BadArgument(_)), "{e}");
    }
    let q = Quantize::Q8 {
        group_size: Some(2),
    };
    assert_eq!(
        Model::load_with(&p1, None, None, q).unwrap().group_size(),
        2
    );
    // an int8 file cannot be requantized to another group size
    let p2 = write("gs-v2.bin", &good);
    assert!(Model::load_with(&p2, None, None, q).is_err());
}

#[test]
fn missing_and_directory_paths() {
    let e = Model::load("/nonexistent/zhllama.bin", None, None)
        .err()
        .unwrap();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = Model::load(std::env::temp_dir(), None, None).err().unwrap();
    assert!(matches!(e, Error::BadFile { .. }), "{e}");
    let e = Tokenizer::from_file("/nonexistent/tok.bin", None)
        .err()
        .unwrap();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn vocab_mismatch_is_a_clear_error() {
    let p = write("vm.bin", &checkpoint(0, true));
    let mut t = tokenizer_bytes();
    // append one more entry: 301 entries for a 300-vocab model
    t.extend_from_slice(&0f32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.push(b'z');
    let tp = write("vm-tok.bin", &t);
    let e = Model::load(&p, Some(&tp), None).err().unwrap().to_string();
    assert!(
        e.contains("301") && e.contains("300") && e.contains("vm-tok.bin"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn truncated_checkpoints_are_errors(version in 0u32..3, shared: bool, cut in 0.0f64..1.0) {
        let full = checkpoint(version, shared);
        let n = (full.len() as f64 * cut) as usize;
        prop_assume!(n < full.len());
        let p = write(&format!("trunc-{version}-{shared}.bin"), &full[..n]);
        let e = Model::load(&p, None, Some(1)).err().expect("a truncated file must not load");
        prop_assert!(matches!(e, Error::BadFile { .. }), "{}", e);
    }

    #[test]
    fn bit_flipped_checkpoints_never_panic(version in 0u32..3, shared: bool, flips in prop::collection::vec((0usize..300, 0u8..8), 1..4)) {
        let mut bytes = checkpoint(version, shared);
        // flips in the header (first 40 bytes) and anywhere in the file
        for (i, (at, bit)) in flips.iter().enumerate() {
            let at = if i == 0 { at % 40 } else { at * 997 % bytes.len() };
            bytes[at] ^= 1 << bit;
        }
        let p = write(&format!("flip-{version}-{shared}.bin"), &bytes);
        let tok = write("flip-tok.bin", &tokenizer_bytes());
        let _ = exercise(&p, &tok);
    }

    #[test]
    fn hand_crafted_headers_never_panic(ints in prop::array::uniform7(any::<i32>()), small in prop::array::uniform7(1i32..70), pick: bool, versioned: bool, tail in 0usize..4096) {
        let ints = if pick { small } else { ints };
        let mut bytes = Vec::new();
        if versioned {
            bytes.extend_from_slice(&MAGIC.to_le_bytes());
            bytes.extend_from_slice(&1i32.to_le_bytes());
        }
        for x in ints {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        if versioned {
            bytes.push(1);
            bytes.resize(256, 0);
        }
        bytes.resize(bytes.len() + tail, 0);
        let p = write("crafted.bin", &bytes);
        if let Ok(mut m) = Model::load(&p, None, Some(1)) {
            // it can only load when the size matched exactly: then it must run
            let _ = m.forward(0, 0).unwrap();
        }
    }

    #[test]
    fn hand_crafted_int8_headers_never_panic(small in prop::array::uniform7(1i32..40), gs in -2i32..20, tail in 0usize..2048) {
        let mut bytes = MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2i32.to_le_bytes());
        for x in small {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.push(1);
        bytes.extend_from_slice(&gs.to_le_bytes());
        bytes.resize(256 + tail, 0);
        let p = write("crafted-v2.bin", &bytes);
        if let Ok(mut m) = Model::load(&p, None, Some(2)) {
            let _ = m.forward(0, 0).unwrap();
        }
    }

    #[test]
    fn arbitrary_tokenizer_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), v in prop::option::of(0usize..64)) {
        if let Ok(t) = Tokenizer::from_bytes(&bytes, v) {
            let ids = t.encode("ab 中文 x", true, true);
            let _ = t.decode(&ids);
        }
    }

    #[test]
    fn damaged_tokenizers_never_panic(cut in 0usize..4000, flips in prop::collection::vec((0usize..4000, 0u8..8), 0..4)) {
        let mut b = tokenizer_bytes();
        for (at, bit) in flips {
            let at = at % b.len();
            b[at] ^= 1 << bit;
        }
        b.truncate(cut.min(b.len()));
        if let Ok(t) = Tokenizer::from_bytes(&b, Some(300)) {
            let ids = t.encode("abc 中文 ab", true, false);
            prop_assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
            let _ = t.decode(&ids);
        }
    }

    #[test]
    fn encode_decode_round_trips(s in "[a-c中文é😀\\n\\t。x]{0,40}") {
        let t = Tokenizer::from_bytes(&tokenizer_bytes(), Some(300)).unwrap();
        let ids = t.encode(&s, true, false);
        prop_assert_eq!(t.decode(&ids).unwrap(), s);
    }
}

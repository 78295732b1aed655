//! The fuzz target kept from the fault-finding pass (issue 15): a checkpoint and a tokenizer,
//! mutated together (bit flips, header fields set to edge values, cuts, growth, bytes of one
//! spliced into the other), loaded as a pair and, when they load, run. Whatever the bytes, the
//! result is a working model or one error line, never a panic, an abort or a huge allocation.
//!
//! Bounded: `ZHLLAMA_FUZZ_CASES` cases (default 1024, a few seconds); raise it for a longer run,
//! e.g. `ZHLLAMA_FUZZ_CASES=20000 cargo test -p zhllama-core --release --test fuzz`.

use std::path::PathBuf;

use proptest::prelude::*;
use zhllama_core::{GenerateOptions, Model, Tokenizer, MAGIC};

fn cases() -> u32 {
    std::env::var("ZHLLAMA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zhllama-core-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// dim 8, hidden 16, 2 layers, 2 heads, 1 kv head, vocab 280, seq 8; version 0 or 1.
fn checkpoint(version: u32, shared: bool) -> Vec<u8> {
    let (d, h, l, nh, nkv, v, t) = (8usize, 16usize, 2usize, 2usize, 1usize, 280usize, 8usize);
    let kvd = nkv * d / nh;
    let ints = [d, h, l, nh, nkv, v, t].map(|x| x as i32);
    let mut out = Vec::new();
    if version == 0 {
        for (i, x) in ints.iter().enumerate() {
            let x = if i == 5 && !shared { -x } else { *x };
            out.extend_from_slice(&x.to_le_bytes());
        }
    } else {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&1i32.to_le_bytes());
        for x in ints {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.push(shared as u8);
        out.resize(256, 0);
    }
    let mut n = v * d + l * (2 * d + 2 * d * d + 2 * kvd * d + 3 * h * d) + d;
    if version == 0 {
        n += t * d / nh;
    }
    if !shared {
        n += v * d;
    }
    out.extend((0..n).flat_map(|i| (((i * 37 % 101) as f32 - 50.0) / 500.0).to_le_bytes()));
    out
}

/// 280 entries: <unk>, BOS, EOS, the byte tokens, then short pieces.
fn tokenizer() -> Vec<u8> {
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    for p in [" ", "a", "b", "ab", " a", "从", "前", "从前"] {
        pieces.push(p.as_bytes().to_vec());
    }
    let mut i = 0;
    while pieces.len() < 280 {
        pieces.push(format!("p{i}").into_bytes());
        i += 1;
    }
    let mut out = 6u32.to_le_bytes().to_vec();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&(-(i as f32)).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Values a header field is likely to be wrong in interesting ways.
const EDGES: [i32; 12] = [
    0,
    -1,
    1,
    2,
    3,
    7,
    255,
    1 << 16,
    1 << 20,
    (1 << 20) + 1,
    i32::MAX,
    i32::MIN,
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Field { index: usize, edge: usize },
    Cut { keep: f64 },
    Grow { extra: usize, byte: u8 },
    Splice { from: usize, to: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..1 << 16, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (0usize..12, 0usize..EDGES.len()).prop_map(|(index, edge)| Mutation::Field { index, edge }),
        (0.0f64..1.0).prop_map(|keep| Mutation::Cut { keep }),
        (1usize..64, any::<u8>()).prop_map(|(extra, byte)| Mutation::Grow { extra, byte }),
        (0usize..1 << 14, 0usize..1 << 14, 1usize..64)
            .prop_map(|(from, to, len)| Mutation::Splice { from, to, len }),
    ]
}

/// Applies `m` to `target`; `other` is the other file (the source of spliced bytes). Header
/// fields are the ten i32 words from byte 0 (v0's seven, or magic/version/seven for v1).
fn apply(m: &Mutation, target: &mut Vec<u8>, other: &[u8]) {
    match *m {
        Mutation::Flip { at, bit } if !target.is_empty() => {
            let at = at % target.len();
            target[at] ^= 1 << bit;
        }
        Mutation::Field { index, edge } => {
            let at = 4 * (index % 10);
            if target.len() >= at + 4 {
                target[at..at + 4].copy_from_slice(&EDGES[edge].to_le_bytes());
            }
        }
        Mutation::Cut { keep } => target.truncate((target.len() as f64 * keep) as usize),
        Mutation::Grow { extra, byte } => target.extend(std::iter::repeat_n(byte, extra)),
        Mutation::Splice { from, to, len } if !other.is_empty() && !target.is_empty() => {
            let from = from % other.len();
            let to = to % target.len();
            let len = len.min(other.len() - from).min(target.len() - to);
            target[to..to + len].copy_from_slice(&other[from..from + len]);
        }
        _ => {}
    }
}

/// Loads the pair and runs it; every error must be one line.
fn exercise(ckpt: &[u8], tok: &[u8], case: u64) {
    let (cp, tp) = (tmp(&format!("c{case}.bin")), tmp(&format!("t{case}.bin")));
    std::fs::write(&cp, ckpt).unwrap();
    std::fs::write(&tp, tok).unwrap();
    let one_line = |e: &dyn std::fmt::Display| {
        let s = e.to_string();
        assert!(!s.contains('\n'), "an error of two lines: {s:?}");
    };
    if let Err(e) = Tokenizer::from_bytes(tok, None) {
        one_line(&e);
    }
    match Model::load(&cp, Some(&tp), Some(1)) {
        Err(e) => one_line(&e),
        Ok(mut m) => {
            let opts = GenerateOptions {
                steps: 6,
                temperature: 0.8,
                seed: case + 1,
                ..Default::default()
            };
            match m.generate("从前 ab", &opts) {
                Ok(g) => {
                    let _: String = g.collect();
                }
                Err(e) => one_line(&e),
            }
            m.reset();
            for pos in 0..3 {
                if let Err(e) = m.forward((pos * 97 % m.vocab_size()) as u32, pos) {
                    one_line(&e);
                }
            }
        }
    }
    let _ = std::fs::remove_file(&cp);
    let _ = std::fs::remove_file(&tp);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn mutated_checkpoint_and_tokenizer_pairs_never_panic(
        version in 0u32..2,
        shared: bool,
        ckpt_mutations in prop::collection::vec(mutation(), 0..5),
        tok_mutations in prop::collection::vec(mutation(), 0..3),
        case in any::<u64>(),
    ) {
        let (mut ckpt, mut tok) = (checkpoint(version, shared), tokenizer());
        let (ck0, tok0) = (ckpt.clone(), tok.clone());
        for m in &ckpt_mutations {
            apply(m, &mut ckpt, &tok0);
        }
        for m in &tok_mutations {
            apply(m, &mut tok, &ck0);
        }
        exercise(&ckpt, &tok, case);
    }
}

#[test]
fn the_unmutated_pair_runs() {
    // the fuzz target starts from files that work, or it would only ever test error paths
    for version in 0..2 {
        for shared in [true, false] {
            let (cp, tp) = (tmp(&format!("ok{version}{shared}.bin")), tmp("ok-tok.bin"));
            std::fs::write(&cp, checkpoint(version, shared)).unwrap();
            std::fs::write(&tp, tokenizer()).unwrap();
            let mut m = Model::load(&cp, Some(&tp), Some(1)).unwrap();
            let text: String = m
                .generate("从前", &GenerateOptions::default())
                .unwrap()
                .collect();
            assert!(text.starts_with("从前"), "{text:?}");
        }
    }
}

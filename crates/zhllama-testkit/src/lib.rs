//! Test support for the zhllama crates (a dev-dependency only).
//!
//! - [`Weights`]: random weights of any [`Shape`], written as a llama2.c checkpoint of version 0,
//!   1 or 2 (FORMATS.md §1), so that tests need no downloaded model. The same `Weights` give the
//!   same model in every version: v0 and v1 differ only in layout, v2 holds them quantized as the
//!   exporter does.
//! - [`tokenizer`]: a matching `tokenizer.bin` of any vocab size.
//! - [`reference`]: the optional `../shared/reference` folder for conformance tests, with a skip
//!   that shows even under `cargo test --quiet`.
//!
//! It depends on nothing (not even zhllama-core), so the engine's own unit tests can use it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Magic number of versioned checkpoints (`ak42`).
const MAGIC: u32 = 0x616b_3432;

/// A model's shape, in the order of the checkpoint header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub seq_len: usize,
}

impl Shape {
    /// stories260K's shape with 2 layers and a 256-token context: grouped-query attention
    /// (8 heads, 4 kv heads), group size 4 at most (hidden 172 = 4 · 43), quick everywhere.
    pub const TINY: Shape = Shape {
        dim: 64,
        hidden: 172,
        layers: 2,
        heads: 8,
        kv_heads: 4,
        vocab: 512,
        seq_len: 256,
    };

    pub fn head_size(&self) -> usize {
        self.dim / self.heads
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_size()
    }

    /// The largest of 64, 32, …, 1 dividing dim and hidden (the engine's default).
    pub fn default_group_size(&self) -> usize {
        let mut gs = 64;
        while gs > 1 && !(self.dim.is_multiple_of(gs) && self.hidden.is_multiple_of(gs)) {
            gs /= 2;
        }
        gs
    }
}

/// splitmix64: a tiny deterministic generator, the same stream on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    fn uniform(&mut self, a: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
        (2.0 * u - 1.0) * a
    }

    fn fill(&mut self, n: usize, a: f32, center: f32) -> Vec<f32> {
        (0..n).map(|_| center + self.uniform(a)).collect()
    }
}

/// Every tensor of a model, per-layer tensors of all layers back to back (row-major, as
/// PyTorch's `Linear.weight`).
#[derive(Clone, Debug)]
pub struct Weights {
    pub shape: Shape,
    emb: Vec<f32>,
    rms_att: Vec<f32>,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    rms_ffn: Vec<f32>,
    w1: Vec<f32>,
    w2: Vec<f32>,
    w3: Vec<f32>,
    rms_final: Vec<f32>,
    /// `None`: the classifier is the embedding (shared).
    wcls: Option<Vec<f32>>,
}

impl Weights {
    /// Random weights: matrices uniform with standard deviation 0.02 (a trained model's scale),
    /// RMSNorm weights in [0.5, 1.5) (not all 1, so that a reader that mixes up the norms is
    /// caught). The embedding and classifier rows of `<unk>`, BOS and EOS are scaled down 1000×,
    /// so that greedy runs practically never stop early.
    pub fn random(shape: Shape, shared_classifier: bool, seed: u64) -> Weights {
        let Shape {
            dim: d,
            hidden: h,
            layers: l,
            vocab: v,
            ..
        } = shape;
        let kvd = shape.kv_dim();
        let mut rng = Rng(seed);
        let a = 0.02 * 3f32.sqrt(); // uniform on [-a, a) has standard deviation 0.02
        let mut mat = |n: usize| rng.fill(n, a, 0.0);
        let mut emb = mat(v * d);
        let wq = mat(l * d * d);
        let wk = mat(l * kvd * d);
        let wv = mat(l * kvd * d);
        let wo = mat(l * d * d);
        let w1 = mat(l * h * d);
        let w2 = mat(l * d * h);
        let w3 = mat(l * h * d);
        let mut wcls = (!shared_classifier).then(|| mat(v * d));
        for m in std::iter::once(&mut emb).chain(wcls.as_mut()) {
            for x in &mut m[..3 * d] {
                *x *= 1e-3;
            }
        }
        let mut norm = |n: usize| rng.fill(n, 0.5, 1.0);
        Weights {
            shape,
            emb,
            rms_att: norm(l * d),
            wq,
            wk,
            wv,
            wo,
            rms_ffn: norm(l * d),
            w1,
            w2,
            w3,
            rms_final: norm(d),
            wcls,
        }
    }

    /// The seven header ints; a separate classifier is a negative vocab in version 0.
    fn header_ints(&self, negative_vocab: bool) -> [i32; 7] {
        let s = self.shape;
        let v = s.vocab as i32;
        [
            s.dim as i32,
            s.hidden as i32,
            s.layers as i32,
            s.heads as i32,
            s.kv_heads as i32,
            if negative_vocab { -v } else { v },
            s.seq_len as i32,
        ]
    }

    /// The 256-byte header of versions 1 and 2.
    fn versioned_header(&self, version: i32, group_size: Option<usize>) -> Vec<u8> {
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        for x in self.header_ints(false) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.push(self.wcls.is_none() as u8); // byte 36
        if let Some(gs) = group_size {
            out.extend_from_slice(&(gs as i32).to_le_bytes()); // byte 37, unaligned
        }
        out.resize(256, 0);
        out
    }

    /// Version 0 (legacy): 28-byte header, negative vocab for a separate classifier, zeroed RoPE
    /// tables (readers skip them).
    pub fn v0(&self) -> Vec<u8> {
        let s = self.shape;
        let mut out = Vec::new();
        for x in self.header_ints(self.wcls.is_some()) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let rope = vec![0f32; s.seq_len * s.head_size()];
        for t in [
            &self.emb,
            &self.rms_att,
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.rms_ffn,
            &self.w1,
            &self.w2,
            &self.w3,
            &self.rms_final,
            &rope,
        ]
        .into_iter()
        .chain(self.wcls.as_ref())
        {
            put_f32s(&mut out, t);
        }
        out
    }

    /// Version 1: the 256-byte header, norms first, no RoPE tables.
    pub fn v1(&self) -> Vec<u8> {
        let mut out = self.versioned_header(1, None);
        for t in [
            &self.rms_att,
            &self.rms_ffn,
            &self.rms_final,
            &self.emb,
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w1,
            &self.w2,
            &self.w3,
        ]
        .into_iter()
        .chain(self.wcls.as_ref())
        {
            put_f32s(&mut out, t);
        }
        out
    }

    /// Version 2: the same weights quantized in groups of `group_size` as the exporter does
    /// (scale = max|w| / 127, q = round-half-even(w / scale)); each layer's matrix is its own
    /// entry (int8 values, then scales). `group_size` must divide dim and hidden.
    pub fn v2(&self, group_size: usize) -> Vec<u8> {
        let s = self.shape;
        assert!(
            group_size > 0
                && s.dim.is_multiple_of(group_size)
                && s.hidden.is_multiple_of(group_size),
            "group size {group_size} must divide dim {} and hidden {}",
            s.dim,
            s.hidden
        );
        let mut out = self.versioned_header(2, Some(group_size));
        for t in [&self.rms_att, &self.rms_ffn, &self.rms_final] {
            put_f32s(&mut out, t);
        }
        put_q8(&mut out, &self.emb, group_size);
        for t in [
            &self.wq, &self.wk, &self.wv, &self.wo, &self.w1, &self.w2, &self.w3,
        ] {
            for layer in t.chunks_exact(t.len() / s.layers) {
                put_q8(&mut out, layer, group_size);
            }
        }
        if let Some(c) = &self.wcls {
            put_q8(&mut out, c, group_size);
        }
        out
    }
}

fn put_f32s(out: &mut Vec<u8>, xs: &[f32]) {
    out.reserve(4 * xs.len());
    for x in xs {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_q8(out: &mut Vec<u8>, xs: &[f32], gs: usize) {
    let mut scales = Vec::with_capacity(xs.len() / gs);
    for g in xs.chunks_exact(gs) {
        let s = g.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        scales.push(s);
        for v in g {
            let q = if s > 0.0 {
                (v / s).round_ties_even()
            } else {
                0.0
            };
            out.push(q.clamp(-127.0, 127.0) as i8 as u8);
        }
    }
    put_f32s(out, &scales);
}

/// A `tokenizer.bin` (FORMATS.md §2) with `vocab` entries (at least 260): `<unk>`, BOS, EOS,
/// the 256 byte tokens as `<0xXX>`, a space, the printable ASCII characters, then single CJK
/// characters from U+4E00 on (一丁丂七…) to fill; scores favour lower ids. Text outside the
/// vocab is spelled with byte tokens.
pub fn tokenizer(vocab: usize) -> Vec<u8> {
    assert!(vocab >= 260, "a tokenizer needs at least 260 entries");
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    pieces.extend((b' '..=b'~').map(|c| vec![c]));
    pieces.extend(
        (0x4e00u32..)
            .filter_map(char::from_u32)
            .map(|c| c.to_string().into_bytes())
            .take(vocab.saturating_sub(pieces.len())),
    );
    pieces.truncate(vocab);
    let max_len = pieces.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = max_len.to_le_bytes().to_vec();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&(-(i as f32)).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, then a rename), so
/// that tests running at the same time never read a half-written file.
pub fn write(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a file path");
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The shared reference folder (`../shared/reference` beside the repository), when it holds
/// every one of `files`; else `None`, after printing `SKIPPED <test>: …`.
///
/// Only conformance tests (against outputs recorded from llama2.c's `run` and from
/// sentencepiece) use it. Stable Rust cannot mark a test ignored at run time, so the skip is a
/// line instead, written to the stderr handle itself: libtest captures what a passing test
/// prints with `print!`/`eprint!` (it shows only with `--nocapture`), but not writes to the
/// handle, so the line shows under `cargo test --quiet` too. The test then passes: machines
/// without the folder must stay green.
pub fn reference(test: &str, files: &[&str]) -> Option<PathBuf> {
    // this crate is <repo>/crates/zhllama-testkit; the folder is <repo>/../shared/reference
    let beside_repo = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(3);
    let dir = beside_repo
        .expect("a crate inside the repo")
        .join("shared/reference");
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !dir.join(f).exists())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED {test}: conformance test, needs {} (missing: {})",
        dir.display(),
        missing.join(", ")
    );
    None
}

//! The checkpoint header (FORMATS.md §1): the model's shape, parsed and validated against the
//! file size before any offset into the body is computed.

use std::path::Path;

use super::layout::{file_bytes, Tensor};
use crate::error::{Error, Result};

/// Magic number of versioned llama2.c checkpoints (`ak42`, bytes `32 34 6b 61`).
pub const MAGIC: u32 = 0x616b_3432;

/// Bytes of a versioned (1 and 2) header; the body starts right after it.
pub(crate) const VERSIONED_HEADER_BYTES: usize = 256;

// Upper limits that no real model of this family comes near; they keep a corrupted header from
// asking for absurd amounts of memory or work.
const MAX_DIM: usize = 1 << 16;
const MAX_HIDDEN: usize = 1 << 18;
const MAX_LAYERS: usize = 1 << 12;
const MAX_VOCAB: usize = 1 << 22;
const MAX_SEQ: usize = 1 << 20;
/// Most bytes the run state (KV cache + attention scores) may take.
const MAX_STATE_BYTES: u64 = 8 << 30;

/// The seven header integers, in file order, with their upper limits.
const FIELDS: [(&str, usize); 7] = [
    ("dim", MAX_DIM),
    ("hidden_dim", MAX_HIDDEN),
    ("n_layers", MAX_LAYERS),
    ("n_heads", MAX_DIM),
    ("n_kv_heads", MAX_DIM),
    ("vocab_size", MAX_VOCAB),
    ("seq_len", MAX_SEQ),
];

/// The shape and format of a model, as read from its checkpoint header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Transformer width `d`.
    pub dim: usize,
    /// FFN hidden width `h`.
    pub hidden_dim: usize,
    /// Number of layers `L`.
    pub n_layers: usize,
    /// Number of query heads `H`.
    pub n_heads: usize,
    /// Number of key/value heads `Hk` (`< H` for grouped-query attention).
    pub n_kv_heads: usize,
    /// Vocabulary size `V` (always positive here).
    pub vocab_size: usize,
    /// Maximum sequence length `T` (the context).
    pub seq_len: usize,
    /// Whether the output classifier shares the token embedding's weights.
    pub shared_classifier: bool,
    /// Format version of the weights: 0 (legacy), 1 (fp32 with header) or 2 (int8; also for an
    /// f32 file quantized at load).
    pub version: u32,
    /// Group size of the int8 weights (version 2); 0 for f32.
    pub group_size: usize,
}

impl Config {
    /// Size of one attention head, `d / H`.
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key/value projections, `Hk * head_size`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_size()
    }

    /// Whether the weights are quantized (int8); always `false` for versions 0 and 1.
    pub fn quantized(&self) -> bool {
        self.version >= 2
    }

    /// Number of weight bytes one token's forward pass reads (every matrix once, plus the
    /// embedding row). Used for the effective-bandwidth figure of benchmarks.
    pub fn weight_bytes(&self) -> u64 {
        let (d, v) = (self.dim as u64, self.vocab_size as u64);
        let norms = 4 * Tensor::NORMS.iter().map(|t| t.values(self)).sum::<u64>();
        // the layers' matrices, the classifier (read in full even when it is the embedding)
        // and one embedding row
        let layers: u64 = Tensor::LAYER_MATRICES.iter().map(|t| t.values(self)).sum();
        let matrices = layers + v * d + d;
        if self.quantized() {
            // one byte per value plus one f32 scale per group
            norms + matrices + 4 * matrices / self.group_size.max(1) as u64
        } else {
            norms + 4 * matrices
        }
    }

    /// The seven header integers in file order.
    pub(crate) fn header_ints(&self) -> [usize; 7] {
        [
            self.dim,
            self.hidden_dim,
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
            self.vocab_size,
            self.seq_len,
        ]
    }
}

pub(crate) fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses and validates a header against the file size. `head` holds the first bytes of the
/// file (at most 256). Returns the config and the byte offset where the body starts.
pub(crate) fn parse_header(path: &Path, head: &[u8], file_len: u64) -> Result<(Config, usize)> {
    if head.len() < 28 {
        return Err(Error::bad_file(
            path,
            format!("file is {file_len} bytes, too short for a checkpoint header"),
        ));
    }
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    // version 0 is seven i32 and nothing else; a versioned header is magic, version, the seven
    // i32, the shared-classifier byte (36) and, for version 2, the group size (37), padded
    let (ints_at, version, body_start, shared_flag) = if magic == MAGIC {
        if head.len() < VERSIONED_HEADER_BYTES {
            return Err(Error::bad_file(
                path,
                format!("file is {file_len} bytes, too short for a versioned header (256)"),
            ));
        }
        let version = read_i32(head, 4);
        if !(1..=2).contains(&version) {
            return Err(Error::bad_file(
                path,
                format!("unknown checkpoint version {version}"),
            ));
        }
        (8, version as u32, VERSIONED_HEADER_BYTES, Some(head[36]))
    } else {
        (0, 0u32, 28usize, None)
    };
    let raw: Vec<i32> = (0..7).map(|i| read_i32(head, ints_at + 4 * i)).collect();
    let mut vals = [0usize; 7];
    for (i, (&r, &(name, _))) in raw.iter().zip(&FIELDS).enumerate() {
        // version 0 signs the vocabulary size: negative means a separate classifier
        let v = if i == 5 && shared_flag.is_none() {
            r.unsigned_abs() as i64
        } else {
            r as i64
        };
        if v <= 0 {
            return Err(Error::bad_file(
                path,
                format!("bad header: {name} = {r} (must be positive); not a llama2.c checkpoint?"),
            ));
        }
        vals[i] = v as usize;
    }
    for (&v, &(name, limit)) in vals.iter().zip(&FIELDS) {
        if v > limit {
            return Err(Error::bad_file(
                path,
                format!("bad header: {name} = {v} exceeds the limit {limit}"),
            ));
        }
    }
    let [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len] = vals;
    let shared_classifier = match shared_flag {
        Some(f) => f != 0,
        None => raw[5] > 0,
    };
    let bad = |msg: String| Err(Error::bad_file(path, format!("bad header: {msg}")));
    if dim % n_heads != 0 {
        return bad(format!("n_heads = {n_heads} does not divide dim = {dim}"));
    }
    if n_kv_heads > n_heads || n_heads % n_kv_heads != 0 {
        return bad(format!(
            "n_kv_heads = {n_kv_heads} does not divide n_heads = {n_heads}"
        ));
    }
    let hs = dim / n_heads;
    if hs % 2 != 0 {
        return bad(format!("head size {hs} is odd (RoPE rotates pairs)"));
    }
    let group_size = if version == 2 {
        // i32 at byte 37, unaligned (FORMATS.md §1.3)
        let gs = read_i32(head, 37);
        if gs <= 0 || dim % gs as usize != 0 || hidden_dim % gs as usize != 0 {
            return bad(format!(
                "int8 group size {gs} does not divide both dim = {dim} and hidden_dim = \
                 {hidden_dim} (every quantized row must split into whole groups)"
            ));
        }
        gs as usize
    } else {
        0
    };
    let config = Config {
        dim,
        hidden_dim,
        n_layers,
        n_heads,
        n_kv_heads,
        vocab_size,
        seq_len,
        shared_classifier,
        version,
        group_size,
    };
    // Run state: K and V caches (L, T, kvd), attention scores (H, T).
    let kvd = config.kv_dim() as u64;
    let state = 4 * (2 * n_layers as u64 * seq_len as u64 * kvd + n_heads as u64 * seq_len as u64);
    if state > MAX_STATE_BYTES {
        return bad(format!(
            "the KV cache would take {state} bytes (limit {MAX_STATE_BYTES}); seq_len = {seq_len} is implausible"
        ));
    }
    // Every product in the size is bounded by the limits above, so u64 cannot overflow.
    let expected = file_bytes(&config, body_start);
    if expected != file_len {
        return Err(Error::bad_file(
            path,
            format!(
                "file is {file_len} bytes but its header (version {version}, dim {dim}, hidden {hidden_dim}, \
                 {n_layers} layers, {n_heads} heads, {n_kv_heads} kv heads, vocab {vocab_size}, seq_len {seq_len}, \
                 {} classifier{}) implies {expected} bytes: truncated, padded or not a llama2.c checkpoint",
                if shared_classifier { "shared" } else { "separate" },
                if version == 2 { format!(", group size {group_size}") } else { String::new() }
            ),
        ));
    }
    Ok((config, body_start))
}

/// A version-2 header for `c` with group size `gs` (the header the exporter writes).
pub(crate) fn versioned_header(c: &Config, gs: usize) -> [u8; VERSIONED_HEADER_BYTES] {
    let mut h = [0u8; VERSIONED_HEADER_BYTES];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&2i32.to_le_bytes());
    for (i, v) in c.header_ints().iter().enumerate() {
        h[8 + 4 * i..12 + 4 * i].copy_from_slice(&(*v as i32).to_le_bytes());
    }
    h[36] = c.shared_classifier as u8;
    h[37..41].copy_from_slice(&(gs as i32).to_le_bytes());
    h
}

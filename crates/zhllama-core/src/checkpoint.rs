//! Reading llama2.c checkpoints (FORMATS.md §1): version 0 (legacy, no magic) and version 1
//! (fp32 with a 256-byte header).
//!
//! The file is memory-mapped. Its header is parsed and validated — positive sizes, heads divide
//! dim, kv heads divide heads, sane upper limits, and an exact expected file size computed with
//! checked arithmetic — before any offset into the body is computed, so a truncated, padded or
//! corrupted file is an [`Error::BadFile`] and never an out-of-bounds read, a panic or a huge
//! allocation.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::kernels::MatRef;

#[cfg(target_endian = "big")]
compile_error!(
    "zhllama-core reads little-endian files in place and supports little-endian targets only"
);

/// Magic number of versioned llama2.c checkpoints (`ak42`, bytes `32 34 6b 61`).
pub const MAGIC: u32 = 0x616b_3432;

// Upper limits that no real model of this family comes near; they keep a corrupted header from
// asking for absurd amounts of memory or work.
const MAX_DIM: usize = 1 << 16;
const MAX_HIDDEN: usize = 1 << 18;
const MAX_LAYERS: usize = 1 << 12;
const MAX_VOCAB: usize = 1 << 22;
const MAX_SEQ: usize = 1 << 20;
/// Most bytes the run state (KV cache + attention scores) may take.
const MAX_STATE_BYTES: u64 = 8 << 30;

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
    /// Checkpoint format version: 0 (legacy) or 1 (fp32 with header).
    pub version: u32,
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
        let (d, h, l, v) = (
            self.dim as u64,
            self.hidden_dim as u64,
            self.n_layers as u64,
            self.vocab_size as u64,
        );
        let kvd = self.kv_dim() as u64;
        let per_layer = d * d * 2 + kvd * d * 2 + h * d * 3 + 2 * d;
        4 * (l * per_layer + v * d + d + d)
    }
}

/// Where a tensor lies in the file: a range of f32 indices.
pub(crate) type F32Range = Range<usize>;

/// A weight matrix `(rows, cols)`, row-major, located in the storage.
///
/// An enum so that quantized matrices (int8 groups, FORMATS.md §1.3) can slot in beside f32.
#[derive(Clone, Debug)]
pub(crate) enum Mat {
    /// Plain f32 values.
    F32 {
        range: F32Range,
        rows: usize,
        cols: usize,
    },
}

/// Offsets of every tensor of the model.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub tok_emb: F32Range,
    pub rms_att: Vec<F32Range>,
    pub rms_ffn: Vec<F32Range>,
    pub wq: Vec<Mat>,
    pub wk: Vec<Mat>,
    pub wv: Vec<Mat>,
    pub wo: Vec<Mat>,
    pub w1: Vec<Mat>,
    pub w2: Vec<Mat>,
    pub w3: Vec<Mat>,
    pub rms_final: F32Range,
    pub wcls: Mat,
}

/// The bytes of a checkpoint, memory-mapped read-only.
pub(crate) struct Storage {
    map: memmap2::Mmap,
}

impl Storage {
    /// The whole file as f32 values (the file size is a multiple of 4, checked before).
    pub fn f32s(&self) -> &[f32] {
        let bytes: &[u8] = &self.map;
        // SAFETY: a mapping is page-aligned, so the pointer is aligned for f32; the length is
        // rounded down to whole floats; every bit pattern is a valid f32.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
    }

    pub fn slice(&self, r: &F32Range) -> &[f32] {
        &self.f32s()[r.clone()]
    }

    pub fn mat(&self, m: &Mat) -> MatRef<'_> {
        match m {
            Mat::F32 { range, rows, cols } => MatRef::F32 {
                w: &self.f32s()[range.clone()],
                rows: *rows,
                cols: *cols,
            },
        }
    }
}

/// A loaded, validated checkpoint.
pub(crate) struct Checkpoint {
    pub config: Config,
    pub layout: Layout,
    pub storage: Storage,
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Files at least this big are copied into memory backed by transparent huge pages (Linux):
/// every token streams all weights once, and with 4 KiB pages the TLB misses and the hardware
/// prefetcher stopping at each page boundary cost a share of the bandwidth.
const HUGE_PAGE_MIN_BYTES: u64 = 8 << 20;

/// Maps the file's bytes: a read-only file mapping, or for big files on Linux an anonymous
/// huge-page mapping filled from the file (`ZHLLAMA_NO_HUGEPAGES=1` turns that off).
fn map_weights(file: &File, path: &Path, file_len: u64) -> Result<memmap2::Mmap> {
    #[cfg(target_os = "linux")]
    if file_len >= HUGE_PAGE_MIN_BYTES && std::env::var_os("ZHLLAMA_NO_HUGEPAGES").is_none() {
        use std::io::{Read, Seek};
        let mut anon = memmap2::MmapOptions::new()
            .len(file_len as usize)
            .map_anon()
            .map_err(|e| Error::io(path, e))?;
        let _ = anon.advise(memmap2::Advice::HugePage); // a hint; fine if refused
        let mut f = file;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut anon[..])
            .map_err(|e| Error::io(path, e))?;
        return anon.make_read_only().map_err(|e| Error::io(path, e));
    }
    let _ = HUGE_PAGE_MIN_BYTES;
    // SAFETY: the file is mapped read-only; as with every mmap-based reader, the caller must
    // not truncate the file while the model is alive.
    unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, e))
}

/// Parses and validates a header against the file size. `head` holds the first bytes of the
/// file (at most 256). Returns the config and the f32 index where the body starts.
pub(crate) fn parse_header(path: &Path, head: &[u8], file_len: u64) -> Result<(Config, usize)> {
    if head.len() < 28 {
        return Err(Error::bad_file(
            path,
            format!("file is {file_len} bytes, too short for a checkpoint header"),
        ));
    }
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let (ints_at, version, body_start, shared_flag) = if magic == MAGIC {
        if head.len() < 256 {
            return Err(Error::bad_file(
                path,
                format!("file is {file_len} bytes, too short for a versioned header (256)"),
            ));
        }
        let version = read_i32(head, 4);
        match version {
            1 => {}
            2 => {
                return Err(Error::bad_file(
                    path,
                    "version 2 (int8) checkpoints are not supported by this build yet",
                ))
            }
            v => {
                return Err(Error::bad_file(
                    path,
                    format!("unknown checkpoint version {v}"),
                ))
            }
        }
        (8, 1u32, 64usize, Some(head[36]))
    } else {
        (0, 0u32, 7usize, None)
    };
    let field = |i: usize| read_i32(head, ints_at + 4 * i);
    let names = [
        "dim",
        "hidden_dim",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "vocab_size",
        "seq_len",
    ];
    let raw: Vec<i32> = (0..7).map(field).collect();
    let mut vals = [0usize; 7];
    for (i, &v) in raw.iter().enumerate() {
        let v = if i == 5 && shared_flag.is_none() {
            v.unsigned_abs() as i64
        } else {
            v as i64
        };
        if v <= 0 {
            return Err(Error::bad_file(
                path,
                format!(
                    "bad header: {} = {} (must be positive); not a llama2.c checkpoint?",
                    names[i], raw[i]
                ),
            ));
        }
        vals[i] = v as usize;
    }
    let [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len] = vals;
    let shared_classifier = match shared_flag {
        Some(f) => f != 0,
        None => raw[5] > 0,
    };
    let limits = [
        MAX_DIM, MAX_HIDDEN, MAX_LAYERS, MAX_DIM, MAX_DIM, MAX_VOCAB, MAX_SEQ,
    ];
    for i in 0..7 {
        if vals[i] > limits[i] {
            return Err(Error::bad_file(
                path,
                format!(
                    "bad header: {} = {} exceeds the limit {}",
                    names[i], vals[i], limits[i]
                ),
            ));
        }
    }
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
    };
    // Run state: K and V caches (L, T, kvd), attention scores (H, T).
    let kvd = config.kv_dim() as u64;
    let state = 4 * (2 * n_layers as u64 * seq_len as u64 * kvd + n_heads as u64 * seq_len as u64);
    if state > MAX_STATE_BYTES {
        return bad(format!(
            "the KV cache would take {state} bytes (limit {MAX_STATE_BYTES}); seq_len = {seq_len} is implausible"
        ));
    }
    // Every product below is bounded by the limits above, so u64 cannot overflow.
    let (d, h, l, v, t) = (
        dim as u64,
        hidden_dim as u64,
        n_layers as u64,
        vocab_size as u64,
        seq_len as u64,
    );
    let mut floats = v * d + l * (2 * d + 2 * d * d + 2 * kvd * d + 3 * h * d) + d;
    if version == 0 {
        floats += t * hs as u64; // the two RoPE tables, (T, hs/2) each
    }
    if !shared_classifier {
        floats += v * d;
    }
    let expected = 4 * (body_start as u64 + floats);
    if expected != file_len {
        return Err(Error::bad_file(
            path,
            format!(
                "file is {file_len} bytes but its header (version {version}, dim {dim}, hidden {hidden_dim}, \
                 {n_layers} layers, {n_heads} heads, {n_kv_heads} kv heads, vocab {vocab_size}, seq_len {seq_len}, \
                 {} classifier) implies {expected} bytes: truncated, padded or not a llama2.c checkpoint",
                if shared_classifier { "shared" } else { "separate" }
            ),
        ));
    }
    Ok((config, body_start))
}

/// Computes where every tensor lies, given a validated config.
fn layout(c: &Config, body_start: usize) -> Layout {
    let (d, h, l, v) = (c.dim, c.hidden_dim, c.n_layers, c.vocab_size);
    let kvd = c.kv_dim();
    let mut at = body_start;
    let mut take = |n: usize| {
        let r = at..at + n;
        at += n;
        r
    };
    let per_layer = |r: Range<usize>, n: usize| -> Vec<F32Range> {
        (0..l)
            .map(|i| r.start + i * n..r.start + (i + 1) * n)
            .collect()
    };
    let mats = |r: Range<usize>, rows: usize, cols: usize| -> Vec<Mat> {
        per_layer(r, rows * cols)
            .into_iter()
            .map(|range| Mat::F32 { range, rows, cols })
            .collect()
    };
    if c.version == 0 {
        let tok_emb = take(v * d);
        let rms_att = per_layer(take(l * d), d);
        let wq = mats(take(l * d * d), d, d);
        let wk = mats(take(l * kvd * d), kvd, d);
        let wv = mats(take(l * kvd * d), kvd, d);
        let wo = mats(take(l * d * d), d, d);
        let rms_ffn = per_layer(take(l * d), d);
        let w1 = mats(take(l * h * d), h, d);
        let w2 = mats(take(l * d * h), d, h);
        let w3 = mats(take(l * h * d), h, d);
        let rms_final = take(d);
        take(c.seq_len * c.head_size()); // RoPE tables, recomputed instead
        let wcls = if c.shared_classifier {
            tok_emb.clone()
        } else {
            take(v * d)
        };
        Layout {
            wcls: Mat::F32 {
                range: wcls,
                rows: v,
                cols: d,
            },
            tok_emb,
            rms_att,
            rms_ffn,
            wq,
            wk,
            wv,
            wo,
            w1,
            w2,
            w3,
            rms_final,
        }
    } else {
        let rms_att = per_layer(take(l * d), d);
        let rms_ffn = per_layer(take(l * d), d);
        let rms_final = take(d);
        let tok_emb = take(v * d);
        let wq = mats(take(l * d * d), d, d);
        let wk = mats(take(l * kvd * d), kvd, d);
        let wv = mats(take(l * kvd * d), kvd, d);
        let wo = mats(take(l * d * d), d, d);
        let w1 = mats(take(l * h * d), h, d);
        let w2 = mats(take(l * d * h), d, h);
        let w3 = mats(take(l * h * d), h, d);
        let wcls = if c.shared_classifier {
            tok_emb.clone()
        } else {
            take(v * d)
        };
        Layout {
            wcls: Mat::F32 {
                range: wcls,
                rows: v,
                cols: d,
            },
            tok_emb,
            rms_att,
            rms_ffn,
            wq,
            wk,
            wv,
            wo,
            w1,
            w2,
            w3,
            rms_final,
        }
    }
}

/// Reads and validates a checkpoint's header (against the file size too) without loading the
/// weights.
pub fn read_config(path: impl AsRef<Path>) -> Result<Config> {
    let path = path.as_ref();
    let (_, config, _, _) = open_header(path)?;
    Ok(config)
}

fn open_header(path: &Path) -> Result<(File, Config, usize, u64)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::bad_file(
            path,
            "is a directory, not a checkpoint file",
        ));
    }
    let file_len = meta.len();
    let mut head = vec![0u8; file_len.min(256) as usize];
    {
        use std::io::Read;
        (&file)
            .read_exact(&mut head)
            .map_err(|e| Error::io(path, e))?;
    }
    let (config, body_start) = parse_header(path, &head, file_len)?;
    Ok((file, config, body_start, file_len))
}

impl Checkpoint {
    /// Opens, validates and maps a checkpoint.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let (file, config, body_start, file_len) = open_header(path)?;
        let map = map_weights(&file, path, file_len)?;
        if map.len() as u64 != file_len {
            return Err(Error::bad_file(
                path,
                "file changed size while it was being opened",
            ));
        }
        let layout = layout(&config, body_start);
        Ok(Checkpoint {
            config,
            layout,
            storage: Storage { map },
        })
    }
}

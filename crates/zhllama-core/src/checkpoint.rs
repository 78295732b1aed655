//! Reading llama2.c checkpoints (FORMATS.md §1): version 0 (legacy, no magic), version 1
//! (fp32 with a 256-byte header) and version 2 (int8 in groups with f32 scales); and quantizing
//! an f32 checkpoint to version 2 in memory at load time ([`Quantize`]).
//!
//! The file is memory-mapped. Its header is parsed and validated — positive sizes, heads divide
//! dim, kv heads divide heads, sane upper limits, and an exact expected file size computed with
//! checked arithmetic — before any offset into the body is computed, so a truncated, padded or
//! corrupted file is an [`Error::BadFile`] and never an out-of-bounds read, a panic or a huge
//! allocation. For version 2 the group size must divide dim and hidden (every quantized row is
//! one of those long): anything else is an error, never silent truncation.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use zhllama_kernels::MatRef;

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
        let (d, h, l, v) = (
            self.dim as u64,
            self.hidden_dim as u64,
            self.n_layers as u64,
            self.vocab_size as u64,
        );
        let kvd = self.kv_dim() as u64;
        let norms = 4 * (l * 2 * d + d);
        let matrices = l * (d * d * 2 + kvd * d * 2 + h * d * 3) + v * d + d;
        if self.quantized() {
            // one byte per value plus one f32 scale per group
            norms + matrices + 4 * matrices / self.group_size.max(1) as u64
        } else {
            norms + 4 * matrices
        }
    }

    /// The number of int8 values in a version-2 body (every quantized tensor).
    fn quantized_values(&self) -> u64 {
        let (d, h, l, v) = (
            self.dim as u64,
            self.hidden_dim as u64,
            self.n_layers as u64,
            self.vocab_size as u64,
        );
        let kvd = self.kv_dim() as u64;
        let mut n = v * d + l * (2 * d * d + 2 * kvd * d + 3 * h * d);
        if !self.shared_classifier {
            n += v * d;
        }
        n
    }
}

/// Where a tensor lies in the file: a range of f32 indices.
pub(crate) type F32Range = Range<usize>;

/// A weight matrix `(rows, cols)`, row-major, located in the storage.
#[derive(Clone, Debug)]
pub(crate) enum Mat {
    /// Plain f32 values.
    F32 {
        range: F32Range,
        rows: usize,
        cols: usize,
    },
    /// int8 groups (FORMATS.md §1.3): `q` is a byte range of the file, `s` a range of
    /// [`Storage::scales`] (copied out at load: in the file they need not be 4-byte aligned).
    Q8 {
        q: Range<usize>,
        s: Range<usize>,
        rows: usize,
        cols: usize,
        gs: usize,
    },
}

/// Offsets of every tensor of the model.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub tok_emb: Mat,
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
    /// Every group scale of a version-2 model, tensor after tensor; empty for f32.
    scales: Vec<f32>,
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

    /// The whole file as int8 values.
    fn i8s(&self) -> &[i8] {
        let bytes: &[u8] = &self.map;
        // SAFETY: same memory, same length; i8 and u8 have the same size and alignment.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
    }

    pub fn mat(&self, m: &Mat) -> MatRef<'_> {
        match m {
            Mat::F32 { range, rows, cols } => MatRef::F32 {
                w: &self.f32s()[range.clone()],
                rows: *rows,
                cols: *cols,
            },
            Mat::Q8 {
                q,
                s,
                rows,
                cols,
                gs,
            } => MatRef::Q8 {
                q: &self.i8s()[q.clone()],
                s: &self.scales[s.clone()],
                rows: *rows,
                cols: *cols,
                gs: *gs,
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
        if !(1..=2).contains(&version) {
            return Err(Error::bad_file(
                path,
                format!("unknown checkpoint version {version}"),
            ));
        }
        (8, version as u32, 64usize, Some(head[36]))
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
    let expected = if version == 2 {
        // f32 norms, then every quantized tensor: its int8 values and one f32 scale per group
        let n = config.quantized_values();
        4 * (body_start as u64 + l * 2 * d + d) + n + 4 * (n / group_size as u64)
    } else {
        4 * (body_start as u64 + floats)
    };
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

/// Computes where every tensor lies, given a validated config; for version 2 also copies the
/// group scales out of `bytes` (the whole file).
fn layout(c: &Config, body_start: usize, bytes: &[u8]) -> (Layout, Vec<f32>) {
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
    let f32_mat = |range: F32Range, rows: usize, cols: usize| Mat::F32 { range, rows, cols };
    let layout = match c.version {
        0 => {
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
                wcls: f32_mat(wcls, v, d),
                tok_emb: f32_mat(tok_emb, v, d),
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
        1 => {
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
                wcls: f32_mat(wcls, v, d),
                tok_emb: f32_mat(tok_emb, v, d),
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
        _ => {
            let rms_att = per_layer(take(l * d), d);
            let rms_ffn = per_layer(take(l * d), d);
            let rms_final = take(d);
            let gs = c.group_size;
            let mut byte = 4 * at;
            let mut scales = Vec::with_capacity((c.quantized_values() / gs as u64) as usize);
            // Each tensor: its int8 values, then its scales (f32, not necessarily aligned).
            let mut qmat = |rows: usize, cols: usize| -> Mat {
                let n = rows * cols;
                let q = byte..byte + n;
                byte += n;
                let ns = n / gs;
                let s0 = scales.len();
                scales.extend(
                    bytes[byte..byte + 4 * ns]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                byte += 4 * ns;
                Mat::Q8 {
                    q,
                    s: s0..s0 + ns,
                    rows,
                    cols,
                    gs,
                }
            };
            let tok_emb = qmat(v, d);
            let mut per = |rows: usize, cols: usize| -> Vec<Mat> {
                (0..l).map(|_| qmat(rows, cols)).collect()
            };
            let wq = per(d, d);
            let wk = per(kvd, d);
            let wv = per(kvd, d);
            let wo = per(d, d);
            let w1 = per(h, d);
            let w2 = per(d, h);
            let w3 = per(h, d);
            let wcls = if c.shared_classifier {
                tok_emb.clone()
            } else {
                qmat(v, d)
            };
            let layout = Layout {
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
                wcls,
            };
            return (layout, scales);
        }
    };
    (layout, Vec::new())
}

/// Reads and validates a checkpoint's header (against the file size too) without loading the
/// weights.
pub fn read_config(path: impl AsRef<Path>) -> Result<Config> {
    let path = path.as_ref();
    let (_, config, _, _) = open_header(path)?;
    Ok(config)
}

fn open_header(path: &Path) -> Result<(File, Config, usize, u64)> {
    // A FIFO or a device is refused before it is read: its size says nothing about how much
    // it would yield (or it would block), and everything below is bounded by the size.
    let (file, file_len) = crate::error::open_regular(path, "checkpoint")?;
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

/// Quantizing an f32 checkpoint when it is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantize {
    /// Run the weights as stored.
    #[default]
    None,
    /// int8 in groups (FORMATS.md §1.3), as the exporter's `llama2c-int8` would write them;
    /// `group_size` `None` picks the default ([`choose_group_size`]). A checkpoint that is
    /// already int8 is used as it is (a requested group size must then match its own).
    Q8 {
        /// Values per group; must divide dim and hidden.
        group_size: Option<usize>,
    },
}

impl std::str::FromStr for Quantize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Quantize> {
        match s {
            "" | "none" | "f32" => Ok(Quantize::None),
            "q8" | "int8" => Ok(Quantize::Q8 { group_size: None }),
            other => Err(Error::bad_arg(format!(
                "unknown quantization {other:?} (expected q8 or none)"
            ))),
        }
    }
}

/// The int8 group size for a model: `requested` when it divides dim and hidden (else an
/// error), by default the largest of 64, 32, 16, … that divides both.
pub fn choose_group_size(dim: usize, hidden_dim: usize, requested: Option<usize>) -> Result<usize> {
    match requested {
        Some(gs) if gs == 0 || !dim.is_multiple_of(gs) || !hidden_dim.is_multiple_of(gs) => {
            Err(Error::bad_arg(format!(
            "group size {gs} must be positive and divide both dim {dim} and hidden_dim {hidden_dim}"
        )))
        }
        Some(gs) => Ok(gs),
        None => {
            let mut gs = 64;
            while gs > 1 && !(dim.is_multiple_of(gs) && hidden_dim.is_multiple_of(gs)) {
                gs /= 2;
            }
            Ok(gs)
        }
    }
}

impl Checkpoint {
    /// Opens a checkpoint and quantizes it as asked.
    pub fn open_with(path: &Path, quantize: Quantize) -> Result<Checkpoint> {
        let ck = Checkpoint::open(path)?;
        let Quantize::Q8 { group_size } = quantize else {
            return Ok(ck);
        };
        let c = &ck.config;
        if c.quantized() {
            if let Some(gs) = group_size.filter(|&gs| gs != c.group_size) {
                return Err(Error::bad_arg(format!(
                    "{} is already int8 with group size {}; cannot requantize it to {gs}",
                    crate::error::quote(path),
                    c.group_size
                )));
            }
            return Ok(ck);
        }
        let gs = choose_group_size(c.dim, c.hidden_dim, group_size)?;
        ck.quantized(path, gs)
    }

    /// This f32 checkpoint as a version-2 image in memory (the bytes the exporter would
    /// write), read back through the same validation and layout as a file.
    fn quantized(&self, path: &Path, gs: usize) -> Result<Checkpoint> {
        let c = &self.config;
        let (d, l) = (c.dim, c.n_layers);
        let n = c.quantized_values() as usize;
        let len = 256 + 4 * (2 * l * d + d) + n + 4 * (n / gs);
        let mut img = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|e| Error::io(path, e))?;
        // the same transparent huge pages as a big file gets (see `map_weights`); a hint
        #[cfg(target_os = "linux")]
        let _ = img.advise(memmap2::Advice::HugePage);
        let ints = [
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.vocab_size,
            c.seq_len,
        ];
        img[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        img[4..8].copy_from_slice(&2i32.to_le_bytes());
        for (i, v) in ints.iter().enumerate() {
            img[8 + 4 * i..12 + 4 * i].copy_from_slice(&(*v as i32).to_le_bytes());
        }
        img[36] = c.shared_classifier as u8;
        img[37..41].copy_from_slice(&(gs as i32).to_le_bytes());
        let st = &self.storage;
        let w = &self.layout;
        let mut at = 256;
        let norms = w.rms_att.iter().chain(&w.rms_ffn).chain([&w.rms_final]);
        for r in norms {
            for v in st.slice(r) {
                img[at..at + 4].copy_from_slice(&v.to_le_bytes());
                at += 4;
            }
        }
        let mut mats: Vec<&Mat> = vec![&w.tok_emb];
        for m in [&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3] {
            mats.extend(m.iter());
        }
        if !c.shared_classifier {
            mats.push(&w.wcls);
        }
        let mut scales = Vec::new();
        for m in mats {
            let MatRef::F32 { w: vals, .. } = st.mat(m) else {
                unreachable!("an f32 checkpoint holds f32 matrices")
            };
            let q = &mut img[at..at + vals.len()];
            // SAFETY: i8 and u8 have the same size and alignment; `q` is not used meanwhile.
            let q = unsafe { std::slice::from_raw_parts_mut(q.as_mut_ptr().cast::<i8>(), q.len()) };
            scales.clear();
            scales.resize(vals.len() / gs, 0.0f32);
            zhllama_kernels::quantize_groups(vals, gs, q, &mut scales, f32::round_ties_even);
            at += vals.len();
            for sc in &scales {
                img[at..at + 4].copy_from_slice(&sc.to_le_bytes());
                at += 4;
            }
        }
        debug_assert_eq!(at, len);
        let map = img.make_read_only().map_err(|e| Error::io(path, e))?;
        let (config, body_start) = parse_header(path, &map[..256], len as u64)?;
        let (layout, scales) = layout(&config, body_start, &map);
        Ok(Checkpoint {
            config,
            layout,
            storage: Storage { map, scales },
        })
    }

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
        let (layout, scales) = layout(&config, body_start, &map);
        Ok(Checkpoint {
            config,
            layout,
            storage: Storage { map, scales },
        })
    }
}

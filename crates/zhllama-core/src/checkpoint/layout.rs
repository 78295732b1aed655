//! Where every tensor lies in a checkpoint body (FORMATS.md §1). The order of each version is
//! one table ([`Tensor::order`]) and every size follows from one shape per tensor
//! ([`Tensor::shape`]): the expected file size, the layout and the in-memory int8 image all walk
//! the same table, so they cannot disagree.

use std::ops::Range;

use super::header::Config;
use zhllama_kernels::{MatRef, PackedQ8, Q8Source};

/// One kind of tensor in a checkpoint body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tensor {
    TokEmb,
    RmsAtt,
    RmsFfn,
    RmsFinal,
    Wq,
    Wk,
    Wv,
    Wo,
    W1,
    W2,
    W3,
    /// Version 0's two RoPE tables (`freq_cis_real`, `freq_cis_imag`); recomputed instead.
    Rope,
    /// The output classifier; absent from the file when it shares the embedding.
    Wcls,
}

/// How many kinds of [`Tensor`] there are.
const KINDS: usize = Tensor::Wcls as usize + 1;

use Tensor::*;

impl Tensor {
    /// The RMSNorm weights (always f32).
    pub const NORMS: [Tensor; 3] = [RmsAtt, RmsFfn, RmsFinal];
    /// The matrices of every layer.
    pub const LAYER_MATRICES: [Tensor; 7] = [Wq, Wk, Wv, Wo, W1, W2, W3];

    /// The order of the body: version 0 is run.c's legacy order (RoPE tables included);
    /// versions 1 and 2 put the norms first, then every matrix (int8 in version 2).
    pub fn order(version: u32) -> &'static [Tensor] {
        const V0: [Tensor; 13] = [
            TokEmb, RmsAtt, Wq, Wk, Wv, Wo, RmsFfn, W1, W2, W3, RmsFinal, Rope, Wcls,
        ];
        const V1: [Tensor; 12] = [
            RmsAtt, RmsFfn, RmsFinal, TokEmb, Wq, Wk, Wv, Wo, W1, W2, W3, Wcls,
        ];
        if version == 0 {
            &V0
        } else {
            &V1
        }
    }

    /// `(count, rows, cols)`: the file holds `count` arrays (one per layer, one, or none) of
    /// `rows × cols` values each, one after the other.
    pub fn shape(self, c: &Config) -> (usize, usize, usize) {
        let (d, h, l, v, kvd) = (c.dim, c.hidden_dim, c.n_layers, c.vocab_size, c.kv_dim());
        match self {
            TokEmb => (1, v, d),
            RmsAtt | RmsFfn => (l, 1, d),
            RmsFinal => (1, 1, d),
            Wq | Wo => (l, d, d),
            Wk | Wv => (l, kvd, d),
            W1 | W3 => (l, h, d),
            W2 => (l, d, h),
            // (T, hs/2) twice
            Rope => (1, c.seq_len, c.head_size()),
            Wcls => (usize::from(!c.shared_classifier), v, d),
        }
    }

    /// The number of values of this tensor in the file (u64: no overflow on any target for
    /// a header within the limits).
    pub fn values(self, c: &Config) -> u64 {
        let (count, rows, cols) = self.shape(c);
        count as u64 * rows as u64 * cols as u64
    }

    /// Whether version 2 stores it as int8 groups (every matrix; norms and tables stay f32).
    pub fn is_matrix(self) -> bool {
        !matches!(self, RmsAtt | RmsFfn | RmsFinal | Rope)
    }

    /// Bytes of this tensor in a file of `c`'s version: f32, or for a version-2 matrix one
    /// byte per value and one f32 scale per group (each row splits into whole groups).
    fn bytes(self, c: &Config) -> u64 {
        let n = self.values(c);
        if c.quantized() && self.is_matrix() {
            n + 4 * (n / c.group_size as u64)
        } else {
            4 * n
        }
    }
}

/// The exact size of a checkpoint of shape `c` whose body starts at byte `body_start`.
pub(crate) fn file_bytes(c: &Config, body_start: usize) -> u64 {
    let body: u64 = Tensor::order(c.version).iter().map(|t| t.bytes(c)).sum();
    body_start as u64 + body
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
    /// [`Storage::scales`] (copied out at load: in the file they need not be 4-byte aligned);
    /// `packed` its index in [`Storage::packed`] once packed for the SIMD kernels.
    Q8 {
        q: Range<usize>,
        s: Range<usize>,
        rows: usize,
        cols: usize,
        gs: usize,
        packed: Option<usize>,
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

impl Layout {
    /// The f32 arrays of a norm tensor, in file order (none for the RoPE tables).
    pub fn norms(&self, t: Tensor) -> &[F32Range] {
        match t {
            RmsAtt => &self.rms_att,
            RmsFfn => &self.rms_ffn,
            RmsFinal => std::slice::from_ref(&self.rms_final),
            _ => &[],
        }
    }

    /// The matrices of a matrix tensor, in file order (the classifier even when shared).
    pub fn matrices(&self, t: Tensor) -> &[Mat] {
        match t {
            TokEmb => std::slice::from_ref(&self.tok_emb),
            Wq => &self.wq,
            Wk => &self.wk,
            Wv => &self.wv,
            Wo => &self.wo,
            W1 => &self.w1,
            W2 => &self.w2,
            W3 => &self.w3,
            Wcls => std::slice::from_ref(&self.wcls),
            _ => &[],
        }
    }
}

/// Hands out the places of the tensors one after the other, from the start of the body.
struct Cursor<'a> {
    /// The next byte.
    at: usize,
    c: &'a Config,
    /// The whole file (version 2 copies the group scales out of it).
    bytes: &'a [u8],
    scales: Vec<f32>,
}

impl Cursor<'_> {
    fn f32s(&mut self, n: usize) -> F32Range {
        debug_assert!(
            self.at.is_multiple_of(4),
            "f32 arrays lie before any int8 one"
        );
        let r = self.at / 4..self.at / 4 + n;
        self.at += 4 * n;
        r
    }

    /// A matrix: f32 values, or (version 2) its int8 values then its scales (f32, not
    /// necessarily aligned).
    fn matrix(&mut self, rows: usize, cols: usize) -> Mat {
        let n = rows * cols;
        if !self.c.quantized() {
            let range = self.f32s(n);
            return Mat::F32 { range, rows, cols };
        }
        let gs = self.c.group_size;
        let q = self.at..self.at + n;
        self.at += n;
        let ns = n / gs;
        let s0 = self.scales.len();
        self.scales.extend(
            self.bytes[self.at..self.at + 4 * ns]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        self.at += 4 * ns;
        Mat::Q8 {
            q,
            s: s0..s0 + ns,
            rows,
            cols,
            gs,
            packed: None,
        }
    }
}

/// Computes where every tensor lies, given a config validated against the file size; for
/// version 2 also copies the group scales out of `bytes` (the whole file).
pub(crate) fn layout(c: &Config, body_start: usize, bytes: &[u8]) -> (Layout, Vec<f32>) {
    let scale_count: u64 = match c.quantized() {
        true => Tensor::order(c.version)
            .iter()
            .filter(|t| t.is_matrix())
            .map(|t| t.values(c) / c.group_size as u64)
            .sum(),
        false => 0,
    };
    let mut cur = Cursor {
        at: body_start,
        c,
        bytes,
        scales: Vec::with_capacity(scale_count as usize),
    };
    let mut norms: [Vec<F32Range>; KINDS] = Default::default();
    let mut mats: [Vec<Mat>; KINDS] = Default::default();
    for &t in Tensor::order(c.version) {
        let (count, rows, cols) = t.shape(c);
        for _ in 0..count {
            if t.is_matrix() {
                mats[t as usize].push(cur.matrix(rows, cols));
            } else {
                // the RoPE tables are placed (skipped) like a norm and never read
                norms[t as usize].push(cur.f32s(rows * cols));
            }
        }
    }
    debug_assert_eq!(cur.at as u64, file_bytes(c, body_start));
    let mut mat = |t: Tensor| std::mem::take(&mut mats[t as usize]);
    let tok_emb = mat(TokEmb)
        .pop()
        .expect("every version's table places the embedding once");
    // a shared classifier is the embedding itself
    let wcls = mat(Wcls).pop().unwrap_or_else(|| tok_emb.clone());
    let layout = Layout {
        wq: mat(Wq),
        wk: mat(Wk),
        wv: mat(Wv),
        wo: mat(Wo),
        w1: mat(W1),
        w2: mat(W2),
        w3: mat(W3),
        tok_emb,
        wcls,
        rms_att: std::mem::take(&mut norms[RmsAtt as usize]),
        rms_ffn: std::mem::take(&mut norms[RmsFfn as usize]),
        rms_final: norms[RmsFinal as usize]
            .pop()
            .expect("every version's table places the final norm once"),
    };
    (layout, cur.scales)
}

/// The bytes of a checkpoint, memory-mapped read-only.
pub(crate) struct Storage {
    pub(super) map: memmap2::Mmap,
    /// Every group scale of a version-2 model, tensor after tensor; empty for f32.
    pub(super) scales: Vec<f32>,
    /// The int8 matrices repacked for the SIMD kernels (`Mat::Q8::packed` indexes it).
    packed: Vec<PackedQ8>,
}

impl Storage {
    /// The storage of a mapped checkpoint whose int8 matrices (if any) `layout` places: packs
    /// each of them for the SIMD kernels (in parallel; a shared classifier once), and records
    /// where in `layout`. Group sizes that are not a multiple of 4 stay row-major.
    pub fn new(map: memmap2::Mmap, scales: Vec<f32>, layout: &mut Layout) -> Storage {
        let mut st = Storage {
            map,
            scales,
            packed: Vec::new(),
        };
        let mut mats: Vec<&mut Mat> = [
            &mut layout.wq,
            &mut layout.wk,
            &mut layout.wv,
            &mut layout.wo,
            &mut layout.w1,
            &mut layout.w2,
            &mut layout.w3,
        ]
        .into_iter()
        .flat_map(|m| m.iter_mut())
        .chain([&mut layout.tok_emb, &mut layout.wcls])
        .collect();
        // one packing per distinct matrix (the classifier may be the embedding), all into one
        // region of memory
        let mut q8: Vec<(Range<usize>, Q8Source<'_>)> = mats
            .iter()
            .filter_map(|m| match (m, st.mat(m)) {
                (
                    Mat::Q8 { q: range, .. },
                    MatRef::Q8 {
                        q,
                        s,
                        rows,
                        cols,
                        gs,
                    },
                ) => Some((
                    range.clone(),
                    Q8Source {
                        q,
                        s,
                        rows,
                        cols,
                        gs,
                    },
                )),
                _ => None,
            })
            .collect();
        q8.sort_unstable_by_key(|(range, _)| range.start);
        q8.dedup_by_key(|(range, _)| range.start);
        let sources: Vec<Q8Source<'_>> = q8.iter().map(|(_, src)| *src).collect();
        // each packed matrix by where its row-major values start, and those values' bytes
        let (packed, released): (Vec<(usize, PackedQ8)>, Vec<Range<usize>>) =
            PackedQ8::pack_all(&sources)
                .into_iter()
                .zip(&q8)
                .filter_map(|(p, (range, _))| Some(((range.start, p?), range.clone())))
                .unzip();
        for m in mats.iter_mut() {
            if let Mat::Q8 { q, packed: idx, .. } = m {
                *idx = packed.binary_search_by_key(&q.start, |(s, _)| *s).ok();
            }
        }
        st.packed = packed.into_iter().map(|(_, p)| p).collect();
        st.release(&released);
        st
    }

    /// Gives the memory of these byte ranges of the map back to the system: the row-major
    /// values of the packed matrices, never read again (`mat` hands out the packed copy), so
    /// that a model holds its int8 weights once. Only whole pages inside a range go, and
    /// nothing else in the map is touched; a refused request changes nothing.
    /// Only on Linux x86-64, whose pages are 4 KiB: madvise rounds a length up to whole
    /// pages, so a bigger page than assumed would zero bytes past a range.
    fn release(&self, ranges: &[Range<usize>]) {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        for r in ranges {
            const PAGE: usize = 4096;
            let (a, b) = (r.start.div_ceil(PAGE) * PAGE, r.end / PAGE * PAGE);
            if a < b {
                // SAFETY: no reference into these bytes outlives this call or is made later:
                // their matrices read the packed copy only. An anonymous copy's pages then
                // read as zeros, a file's are read from the file again.
                let _ = unsafe {
                    self.map
                        .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
                };
            }
        }
        #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
        let _ = ranges;
    }

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
                packed: Some(i), ..
            } => MatRef::packed(&self.packed[*i]),
            Mat::Q8 {
                q,
                s,
                rows,
                cols,
                gs,
                packed: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: u32, shared: bool) -> Config {
        Config {
            dim: 64,
            hidden_dim: 172,
            n_layers: 5,
            n_heads: 8,
            n_kv_heads: 4,
            vocab_size: 512,
            seq_len: 512,
            shared_classifier: shared,
            version,
            group_size: if version == 2 { 4 } else { 0 },
        }
    }

    #[test]
    fn every_version_stores_the_same_tensors() {
        let mut v0: Vec<usize> = Tensor::order(0)
            .iter()
            .filter(|&&t| t != Rope)
            .map(|&t| t as usize)
            .collect();
        let mut v1: Vec<usize> = Tensor::order(1).iter().map(|&t| t as usize).collect();
        v0.sort_unstable();
        v1.sort_unstable();
        assert_eq!(v0, v1);
        assert_eq!(
            v1,
            (0..KINDS)
                .filter(|&k| k != Rope as usize)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn file_sizes_match_the_format() {
        // stories260K's shape, by FORMATS.md §1 written out by hand
        let (d, h, l, v, t, kvd, hs) = (64u64, 172, 5, 512, 512, 32, 8);
        let matrices = v * d + l * (2 * d * d + 2 * kvd * d + 3 * h * d);
        let norms = l * 2 * d + d;
        for shared in [true, false] {
            let cls = if shared { 0 } else { v * d };
            let v0 = 28 + 4 * (norms + matrices + cls + t * hs);
            assert_eq!(file_bytes(&config(0, shared), 28), v0);
            let v1 = 256 + 4 * (norms + matrices + cls);
            assert_eq!(file_bytes(&config(1, shared), 256), v1);
            let n = matrices + cls;
            let v2 = 256 + 4 * norms + n + 4 * (n / 4);
            assert_eq!(file_bytes(&config(2, shared), 256), v2);
        }
    }
}

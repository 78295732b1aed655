//! The speed tricks, kept out of the forward pass so that it reads like the paper.
//!
//! - Matrix × vector products are parallel over output rows on the model's own rayon pool; rows
//!   are handed out in blocks big enough that a task is worth its scheduling cost even for the
//!   tiny matrices of the 15M model.
//! - Several matrices that read the same input are computed in one parallel pass (q/k/v; w1/w3
//!   with the SwiGLU gate applied in the same task), which halves the number of fork/joins.
//! - The row kernel prefetches the weight rows it will read next (software prefetch): rows of
//!   the small models are a few cache lines long and hardware prefetchers lose the stream at
//!   each row.
//! - Dot products keep several independent partial sums so that the CPU's FMA units are never
//!   waiting on one accumulator: on x86-64 with AVX2+FMA (detected at run time, so a portable
//!   build still uses them) an explicit 4-rows × 16-columns kernel; elsewhere a plain
//!   `chunks_exact` loop with eight lanes that LLVM vectorises.
//!
//! - int8 matrices (FORMATS.md §1.3): the input vector is quantized once per product in the
//!   matrix's groups (`scale = max|x| / 127`), each group's int8 × int8 products are summed
//!   exactly in int32, then scaled by both scales into an f32 sum. On x86-64 the row kernel is
//!   chosen at run time: AVX-512 VNNI (`vpdpbusd`, 256-bit form) or AVX2 (`vpmaddubsw` +
//!   `vpmaddwd`), both for group sizes that are multiples of 32; anything else runs a portable
//!   loop that LLVM vectorises. Same thread pool, row blocks and prefetching as f32.
//!
//! Summation order therefore differs from a naive serial loop; results agree with it to float
//! rounding. (The int32 group sums are exact in every kernel.)

use rayon::prelude::*;
use std::sync::OnceLock;

/// A read-only view of a weight matrix `(rows, cols)`, row-major.
#[derive(Clone, Copy, Debug)]
pub enum MatRef<'a> {
    /// Plain f32 values, `rows * cols` of them.
    F32 {
        /// The values.
        w: &'a [f32],
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
    },
    /// int8 values in groups of `gs` consecutive values that share one f32 scale
    /// (FORMATS.md §1.3); `gs` divides `cols`, so no group straddles two rows.
    Q8 {
        /// The int8 values, `rows * cols` of them.
        q: &'a [i8],
        /// One scale per group, `rows * cols / gs` of them.
        s: &'a [f32],
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// Group size.
        gs: usize,
    },
}

/// The input vector of a product: f32, plus its int8 groups when the matrix is quantized
/// (quantized once per product, shared by every row and thread).
pub struct Input<'a> {
    x: &'a [f32],
    q: Option<&'a QuantVec>,
}

impl<'a> MatRef<'a> {
    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        match self {
            MatRef::F32 { rows, .. } | MatRef::Q8 { rows, .. } => *rows,
        }
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        match self {
            MatRef::F32 { cols, .. } | MatRef::Q8 { cols, .. } => *cols,
        }
    }

    /// The group size of a quantized matrix; `None` for f32.
    pub fn group_size(&self) -> Option<usize> {
        match self {
            MatRef::F32 { .. } => None,
            MatRef::Q8 { gs, .. } => Some(*gs),
        }
    }

    /// Row `r` as f32 values (dequantized for int8: `q × scale`), into `out` (`cols` long).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        match *self {
            MatRef::F32 { w, cols, .. } => out.copy_from_slice(&w[r * cols..(r + 1) * cols]),
            MatRef::Q8 { q, s, cols, gs, .. } => {
                let ng = cols / gs;
                let groups = q[r * cols..(r + 1) * cols].chunks_exact(gs);
                for ((o, qg), &sc) in out.chunks_exact_mut(gs).zip(groups).zip(&s[r * ng..]) {
                    for (v, &qv) in o.iter_mut().zip(qg) {
                        *v = qv as f32 * sc;
                    }
                }
            }
        }
    }

    /// The rows `r`, as a matrix of their own.
    fn sub(&self, r: std::ops::Range<usize>) -> MatRef<'a> {
        match *self {
            MatRef::F32 { w, cols, .. } => MatRef::F32 {
                w: &w[r.start * cols..r.end * cols],
                rows: r.len(),
                cols,
            },
            MatRef::Q8 { q, s, cols, gs, .. } => {
                let ng = cols / gs;
                MatRef::Q8 {
                    q: &q[r.start * cols..r.end * cols],
                    s: &s[r.start * ng..r.end * ng],
                    rows: r.len(),
                    cols,
                    gs,
                }
            }
        }
    }

    /// `out[i] = row_i · x` for every row, on the current thread.
    fn rows_into(&self, x: &Input<'_>, out: &mut [f32]) {
        match *self {
            MatRef::F32 { w, rows, cols } => {
                debug_assert_eq!(out.len(), rows);
                debug_assert_eq!(x.x.len(), cols);
                f32_rows(w, cols, x.x, out)
            }
            MatRef::Q8 {
                q,
                s,
                rows,
                cols,
                gs,
            } => {
                debug_assert_eq!(out.len(), rows);
                match x.q {
                    Some(xq) if xq.gs == gs => q8_rows(q, s, cols, gs, xq, out),
                    // not quantized for this group size (never the case inside one model)
                    _ => q8_rows(q, s, cols, gs, &QuantVec::new(x.x, gs), out),
                }
            }
        }
    }
}

/// Quantizes `x` when one of `ws` is an int8 matrix (with the first such matrix's group size).
fn quantize_input(x: &[f32], ws: &[MatRef<'_>]) -> Option<QuantVec> {
    ws.iter()
        .find_map(|w| w.group_size())
        .map(|gs| QuantVec::new(x, gs))
}

/// A vector quantized in groups, the way the usual int8 reader quantizes activations
/// (FORMATS.md §1.3): per group `scale = max|x| / 127`, `q = round(x / scale)`.
#[derive(Clone, Debug)]
pub struct QuantVec {
    /// The int8 values, in `[-127, 127]`.
    pub q: Vec<i8>,
    /// One scale per group.
    pub s: Vec<f32>,
    /// Group size.
    pub gs: usize,
}

impl QuantVec {
    /// Quantizes `x` in groups of `gs` (`gs` must divide `x.len()`; a last partial group is
    /// quantized on its own all the same).
    pub fn new(x: &[f32], gs: usize) -> QuantVec {
        let gs = gs.max(1);
        let mut q = vec![0i8; x.len()];
        let mut s = vec![0.0f32; x.len().div_ceil(gs)];
        quantize_groups(x, gs, &mut q, &mut s, f32::round);
        QuantVec { q, s, gs }
    }
}

/// Group quantization: `scale = max|v| / 127`, `q = round(v / scale)` clamped to ±127; a
/// group of zeros gets scale 0 and zeros. `round` is the rounding rule: activations use
/// `f32::round` (C's `round`, as the usual int8 reader), weights quantized at load
/// `f32::round_ties_even` (torch.round, as the exporter), so both give the exporter's bytes.
pub fn quantize_groups(
    x: &[f32],
    gs: usize,
    q: &mut [i8],
    s: &mut [f32],
    round: impl Fn(f32) -> f32,
) {
    for ((xg, qg), sc) in x.chunks(gs).zip(q.chunks_mut(gs)).zip(s.iter_mut()) {
        let amax = xg.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        *sc = scale;
        if scale > 0.0 {
            for (o, &v) in qg.iter_mut().zip(xg) {
                // `as` saturates (and maps NaN to 0), the clamp keeps -128 out
                *o = (round(v / scale) as i8).max(-127);
            }
        } else {
            qg.fill(0);
        }
    }
}

/// Sum of `a[i] * b[i]` in int32: exact for up to 133,000 products of values in ±127.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i32 * y as i32)
        .sum::<i32>()
}

/// `out[r] = Σ_g (Σ_{j in g} w[r,j]·xq[j]) × sw[r,g] × xs[g]`: int8 products summed in int32
/// per group, then scaled. `w` is `(out.len(), cols)`, `sw` its scales, `gs` divides `cols`.
pub fn q8_rows(w: &[i8], sw: &[f32], cols: usize, gs: usize, x: &QuantVec, out: &mut [f32]) {
    let rows = out.len();
    assert!(gs > 0 && cols.is_multiple_of(gs) && x.gs == gs);
    assert!(w.len() >= rows * cols && sw.len() >= rows * (cols / gs));
    assert!(x.q.len() >= cols && x.s.len() >= cols / gs);
    #[cfg(target_arch = "x86_64")]
    if gs.is_multiple_of(32) {
        match simd_level() {
            Simd::Vnni => {
                // SAFETY: the CPU has AVX2, FMA, AVX-512 VNNI and VL (checked); bounds and
                // gs % 32 == 0 asserted above.
                unsafe { q8_vnni::q8_rows(w, sw, cols, gs, &x.q, &x.s, out) };
                return;
            }
            Simd::Avx2 => {
                // SAFETY: the CPU has AVX2 and FMA (checked); bounds asserted above.
                unsafe { q8_avx2::q8_rows(w, sw, cols, gs, &x.q, &x.s, out) };
                return;
            }
            Simd::None => {}
        }
    }
    q8_rows_portable(w, sw, cols, gs, &x.q, &x.s, out)
}

/// The portable int8 kernel: LLVM vectorises `dot_i8` (widening multiply-adds).
pub fn q8_rows_portable(
    w: &[i8],
    sw: &[f32],
    cols: usize,
    gs: usize,
    xq: &[i8],
    xs: &[f32],
    out: &mut [f32],
) {
    let ng = cols / gs;
    for (r, o) in out.iter_mut().enumerate() {
        let wr = &w[r * cols..(r + 1) * cols];
        let sr = &sw[r * ng..(r + 1) * ng];
        let mut acc = 0.0f32;
        for (g, (wg, xg)) in wr.chunks_exact(gs).zip(xq.chunks_exact(gs)).enumerate() {
            acc += dot_i8(wg, xg) as f32 * (sr[g] * xs[g]);
        }
        *o = acc;
    }
}

/// Which explicit SIMD kernels this CPU can run (detected once, at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Portable code only.
    None,
    /// AVX2 + FMA.
    Avx2,
    /// AVX2 + FMA and AVX-512 VNNI with 256-bit forms (VL): `vpdpbusd` for int8.
    Vnni,
}

/// The best SIMD level of this CPU; `ZHLLAMA_SIMD=avx2|portable` caps it (for A/B checks).
pub fn simd_level() -> Simd {
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = std::env::var("ZHLLAMA_SIMD").unwrap_or_default();
            if cap == "portable"
                || !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            {
                return Simd::None;
            }
            if cap != "avx2"
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
            {
                return Simd::Vnni;
            }
            Simd::Avx2
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Simd::None
        }
    })
}

fn have_avx2_fma() -> bool {
    simd_level() != Simd::None
}

/// `out[i] = w[i*cols..(i+1)*cols] · x`, choosing the best kernel for this CPU.
pub fn f32_rows(w: &[f32], cols: usize, x: &[f32], out: &mut [f32]) {
    assert!(w.len() >= out.len() * cols && x.len() >= cols);
    #[cfg(target_arch = "x86_64")]
    if have_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above); bounds asserted above.
        unsafe { avx2::f32_rows(w, cols, x, out) };
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
        *o = dot_portable(row, &x[..cols]);
    }
}

/// Dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    if have_avx2_fma() {
        // SAFETY: AVX2 and FMA are present; both slices hold at least n values.
        return unsafe { avx2::dot(&a[..n], &b[..n]) };
    }
    dot_portable(&a[..n], &b[..n])
}

/// Eight independent lanes: LLVM turns the inner loop into SIMD adds and multiplies.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    /// Dot product with four 8-wide accumulators (32 values per iteration).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut j = 0;
        while j + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let o = j + 8 * k;
                *acc =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)), *acc);
            }
            j += 32;
        }
        while j + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(j)),
                _mm256_loadu_ps(pb.add(j)),
                acc[0],
            );
            j += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(v);
        while j < n {
            s += *pa.add(j) * *pb.add(j);
            j += 1;
        }
        s
    }

    /// Cache rows of later positions are requested this many positions ahead: a head's rows
    /// are a few cache lines each, a cache row (kv_dim floats) apart, which the hardware
    /// prefetchers do not follow across pages.
    const AHEAD: usize = 8;

    /// Prefetches the `n` floats at `p` (one request per cache line). Never dereferences `p`,
    /// which may lie past the end of the cache.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn prefetch_row(p: *const f32, n: usize) {
        for i in (0..n).step_by(16) {
            _mm_prefetch(p.wrapping_add(i).cast::<i8>(), _MM_HINT_T0);
        }
    }

    /// `att[t] = q·k_t / scale`, k_t the `q.len()` values at `t * stride` (the same dot
    /// product as everywhere, inlined here instead of called once per position).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, att: &mut [f32]) {
        let hs = q.len();
        for (t, a) in att.iter_mut().enumerate() {
            prefetch_row(keys.as_ptr().wrapping_add((t + AHEAD) * stride), hs);
            *a = dot(q, &keys[t * stride..t * stride + hs]) / scale;
        }
    }

    /// `out = Σ_t att[t] · v_t`, v_t the `out.len()` values at `t * stride`; `out.len() % 8 == 0`.
    /// Up to 64 outputs stay in registers across all positions.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(att: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        for c0 in (0..out.len()).step_by(64) {
            let lanes = (out.len() - c0).min(64) / 8;
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, &a) in att.iter().enumerate() {
                let v = values.as_ptr().add(t * stride + c0);
                prefetch_row(v.wrapping_add(AHEAD * stride), lanes * 8);
                let a = _mm256_set1_ps(a);
                for (i, acc) in acc.iter_mut().enumerate().take(lanes) {
                    *acc = _mm256_fmadd_ps(a, _mm256_loadu_ps(v.add(8 * i)), *acc);
                }
            }
            for (i, acc) in acc.iter().enumerate().take(lanes) {
                _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * i), *acc);
            }
        }
    }

    /// Four rows at a time share each load of `x`; two accumulators per row keep eight FMAs
    /// in flight.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f32_rows(w: &[f32], cols: usize, x: &[f32], out: &mut [f32]) {
        let rows = out.len();
        let px = x.as_ptr();
        // Prefetch distance in 4-row blocks: at least ~8 KiB ahead. Short rows end each stream
        // before the hardware prefetcher has caught on; measured +40-60% tokens/s on the
        // 15M and 42M shapes.
        let dist = 8192usize.div_ceil(16 * cols.max(1));
        let mut r = 0;
        while r + 4 <= rows {
            let p = [
                w.as_ptr().add(r * cols),
                w.as_ptr().add((r + 1) * cols),
                w.as_ptr().add((r + 2) * cols),
                w.as_ptr().add((r + 3) * cols),
            ];
            let mut a = [_mm256_setzero_ps(); 4];
            let mut b = [_mm256_setzero_ps(); 4];
            // Prefetch a later block of 4 rows (contiguous) while this one streams in: four
            // cache lines of it per iteration cover it by the end of this block.
            let next = (r + 4 * dist) * cols;
            let mut j = 0;
            while j + 16 <= cols {
                if next + 4 * j + 48 < w.len() {
                    let pf = w.as_ptr().add(next + 4 * j);
                    _mm_prefetch(pf.cast::<i8>(), _MM_HINT_T0);
                    _mm_prefetch(pf.add(16).cast::<i8>(), _MM_HINT_T0);
                    _mm_prefetch(pf.add(32).cast::<i8>(), _MM_HINT_T0);
                    _mm_prefetch(pf.add(48).cast::<i8>(), _MM_HINT_T0);
                }
                let x0 = _mm256_loadu_ps(px.add(j));
                let x1 = _mm256_loadu_ps(px.add(j + 8));
                for k in 0..4 {
                    a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k].add(j)), x0, a[k]);
                    b[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k].add(j + 8)), x1, b[k]);
                }
                j += 16;
            }
            if j + 8 <= cols {
                let x0 = _mm256_loadu_ps(px.add(j));
                for k in 0..4 {
                    a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(p[k].add(j)), x0, a[k]);
                }
                j += 8;
            }
            for k in 0..4 {
                let mut s = hsum(_mm256_add_ps(a[k], b[k]));
                for jj in j..cols {
                    s += *p[k].add(jj) * *px.add(jj);
                }
                out[r + k] = s;
            }
            r += 4;
        }
        while r < rows {
            out[r] = dot(&w[r * cols..(r + 1) * cols], &x[..cols]);
            r += 1;
        }
    }
}

/// The int8 row kernel for x86-64, generated twice: with AVX2 only (`vpmaddubsw` then
/// `vpmaddwd`) and with AVX-512 VNNI (`vpdpbusd`, one instruction for both). Both multiply
/// unsigned by signed bytes, so the sign of x moves onto w (`vpsignb`) and |x| is the unsigned
/// side: |x| ≤ 127 and |w| ≤ 127 keep the 16-bit pair sums of `vpmaddubsw` (≤ 32,258) exact.
/// Four rows share each load of x; each group's int32 sums become f32 and are scaled with one
/// FMA per row; the horizontal sum happens once per row.
#[cfg(target_arch = "x86_64")]
macro_rules! q8_kernel {
    ($modname:ident, $features:literal, $step:ident) => {
        pub(super) mod $modname {
            use std::arch::x86_64::*;

            /// `acc += Σ pairs |x|·sign(w, x)` in int32 lanes.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn step(acc: __m256i, ax: __m256i, sw: __m256i) -> __m256i {
                super::$step(acc, ax, sw)
            }

            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn hsum(v: __m256) -> f32 {
                let lo = _mm256_castps256_ps128(v);
                let hi = _mm256_extractf128_ps(v, 1);
                let s = _mm_add_ps(lo, hi);
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
                _mm_cvtss_f32(s)
            }

            /// `N` rows starting at row `r`.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn block<const N: usize>(
                w: *const i8,
                sw: *const f32,
                cols: usize,
                gs: usize,
                xq: *const i8,
                xs: *const f32,
                prefetch: Option<*const i8>,
                out: &mut [f32],
            ) {
                let ng = cols / gs;
                let mut acc = [_mm256_setzero_ps(); N];
                for g in 0..ng {
                    let mut iacc = [_mm256_setzero_si256(); N];
                    let mut j = g * gs;
                    while j < (g + 1) * gs {
                        if let Some(pf) = prefetch {
                            // this block's bytes are N * cols: two lines per 32 columns
                            _mm_prefetch(pf.add(N * j), _MM_HINT_T0);
                            _mm_prefetch(pf.add(N * j + 64), _MM_HINT_T0);
                        }
                        let xv = _mm256_loadu_si256(xq.add(j).cast());
                        let ax = _mm256_sign_epi8(xv, xv);
                        for k in 0..N {
                            let wv = _mm256_loadu_si256(w.add(k * cols + j).cast());
                            iacc[k] = step(iacc[k], ax, _mm256_sign_epi8(wv, xv));
                        }
                        j += 32;
                    }
                    let sx = *xs.add(g);
                    for k in 0..N {
                        let sc = _mm256_set1_ps(*sw.add(k * ng + g) * sx);
                        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[k]), sc, acc[k]);
                    }
                }
                for k in 0..N {
                    out[k] = hsum(acc[k]);
                }
            }

            /// See [`super::q8_rows`]; needs `gs % 32 == 0` and the bounds it asserts.
            #[target_feature(enable = $features)]
            pub unsafe fn q8_rows(
                w: &[i8],
                sw: &[f32],
                cols: usize,
                gs: usize,
                xq: &[i8],
                xs: &[f32],
                out: &mut [f32],
            ) {
                let rows = out.len();
                let ng = cols / gs;
                // Prefetch ~8 KiB ahead, in 4-row blocks (as the f32 kernel).
                let dist = 8192usize.div_ceil(4 * cols.max(1));
                let mut r = 0;
                while r + 4 <= rows {
                    let ahead = (r + 4 * dist) * cols;
                    let pf = (ahead + 4 * cols <= w.len()).then(|| w.as_ptr().add(ahead));
                    block::<4>(
                        w.as_ptr().add(r * cols),
                        sw.as_ptr().add(r * ng),
                        cols,
                        gs,
                        xq.as_ptr(),
                        xs.as_ptr(),
                        pf,
                        &mut out[r..r + 4],
                    );
                    r += 4;
                }
                while r < rows {
                    block::<1>(
                        w.as_ptr().add(r * cols),
                        sw.as_ptr().add(r * ng),
                        cols,
                        gs,
                        xq.as_ptr(),
                        xs.as_ptr(),
                        None,
                        &mut out[r..r + 1],
                    );
                    r += 1;
                }
            }
        }
    };
}

/// AVX2: 16-bit pair sums (`vpmaddubsw`), then pairs of those to int32 (`vpmaddwd` with 1s).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn step_avx2(
    acc: std::arch::x86_64::__m256i,
    ax: std::arch::x86_64::__m256i,
    sw: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let p16 = _mm256_maddubs_epi16(ax, sw);
    _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
}

/// AVX-512 VNNI (256-bit form): four products summed into each int32 lane in one instruction.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
unsafe fn step_vnni(
    acc: std::arch::x86_64::__m256i,
    ax: std::arch::x86_64::__m256i,
    sw: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_dpbusd_epi32(acc, ax, sw)
}

#[cfg(target_arch = "x86_64")]
q8_kernel!(q8_avx2, "avx2,fma", step_avx2);
#[cfg(target_arch = "x86_64")]
q8_kernel!(q8_vnni, "avx2,fma,avx512vnni,avx512vl", step_vnni);

/// Rows per parallel task: about four tasks per thread (so that work stealing can even out),
/// a multiple of 4 (the kernel's row block), and never so few rows that scheduling dominates.
pub(crate) fn block_rows(w: &MatRef<'_>, rows: usize, threads: usize) -> usize {
    let cols = w.cols();
    let per_task = rows.div_ceil(threads.max(1) * 4);
    // at least ~16K multiply-adds per task (f32), ~48K for int8 (about three times faster)
    let min_work = if w.group_size().is_some() {
        49152
    } else {
        16384
    };
    let min_rows = (min_work / cols.max(1)).max(4);
    per_task.max(min_rows).div_ceil(4) * 4
}

/// `out = w · x`, parallel over row blocks. Call inside the model's pool.
pub fn matmul(out: &mut [f32], x: &[f32], w: MatRef<'_>, threads: usize) {
    let rows = w.rows();
    let xq = quantize_input(x, &[w]);
    let x = Input { x, q: xq.as_ref() };
    let bs = block_rows(&w, rows, threads);
    if threads <= 1 || bs >= rows {
        w.rows_into(&x, out);
        return;
    }
    out.par_chunks_mut(bs).enumerate().for_each(|(i, o)| {
        let r0 = i * bs;
        w.sub(r0..r0 + o.len()).rows_into(&x, o);
    });
}

/// Several products of the same input in one parallel pass: `outs[i] = ws[i] · x`.
pub fn matmul_many(outs: &mut [&mut [f32]], x: &[f32], ws: &[MatRef<'_>], threads: usize) {
    let xq = quantize_input(x, ws);
    let x = Input { x, q: xq.as_ref() };
    if threads <= 1 {
        for (o, w) in outs.iter_mut().zip(ws) {
            w.rows_into(&x, o);
        }
        return;
    }
    let total: usize = ws.iter().map(|w| w.rows()).sum();
    let bs = match ws.first() {
        Some(w) => block_rows(w, total, threads),
        None => return,
    };
    let mut tasks: Vec<(MatRef<'_>, &mut [f32])> = Vec::with_capacity(total / bs + ws.len());
    for (o, w) in outs.iter_mut().zip(ws) {
        for (i, chunk) in o.chunks_mut(bs).enumerate() {
            let r0 = i * bs;
            tasks.push((w.sub(r0..r0 + chunk.len()), chunk));
        }
    }
    tasks.into_par_iter().for_each(|(w, o)| w.rows_into(&x, o));
}

/// The SwiGLU FFN's first half in one pass: `hb = silu(w1 · x) ⊙ (w3 · x)`; `hb2` is scratch.
pub fn swiglu(
    hb: &mut [f32],
    hb2: &mut [f32],
    x: &[f32],
    w1: MatRef<'_>,
    w3: MatRef<'_>,
    threads: usize,
) {
    let rows = w1.rows();
    let xq = quantize_input(x, &[w1, w3]);
    let x = Input { x, q: xq.as_ref() };
    // Blocks are multiples of 4 rows, so every row meets the same kernel whatever the thread
    // count: results do not depend on it.
    let bs = block_rows(&w1, rows, threads);
    let task = |r0: usize, a: &mut [f32], b: &mut [f32]| {
        let r = r0..r0 + a.len();
        w1.sub(r.clone()).rows_into(&x, a);
        w3.sub(r).rows_into(&x, b);
        for (v, g) in a.iter_mut().zip(b.iter()) {
            // silu(v) = v * sigmoid(v), then the gate; same operation order as run.c
            let mut val = *v;
            val *= 1.0 / (1.0 + (-val).exp());
            val *= *g;
            *v = val;
        }
    };
    if threads <= 1 || bs >= rows {
        task(0, hb, hb2);
        return;
    }
    hb.par_chunks_mut(bs)
        .zip(hb2.par_chunks_mut(bs))
        .enumerate()
        .for_each(|(i, (a, b))| task(i * bs, a, b));
}

/// RMSNorm: `out = w ⊙ x / sqrt(mean(x²) + 1e-5)` (serial sum, as run.c).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32]) {
    let mut ss = 0.0f32;
    for &v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += 1e-5;
    let ss = 1.0 / ss.sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (ss * v);
    }
}

/// RMSNorm in place.
pub fn rmsnorm_inplace(x: &mut [f32], w: &[f32]) {
    let mut ss = 0.0f32;
    for &v in x.iter() {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += 1e-5;
    let ss = 1.0 / ss.sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = g * (ss * *v);
    }
}

/// One attention head at one position, over the KV cache: `att[t] = q·k_t / sqrt(hs)` for
/// `t < att.len()`, softmax, then `out = Σ_t att[t] · v_t`. Key and value `t` start at
/// `t * stride` in `keys` / `values` (the cache's row of position t, offset to this head).
///
/// On AVX2+FMA the scores and the weighted sum are vector loops over the head's values inlined
/// here (a call per position to a dot product and a scalar sum over v cost a fifth of an
/// int8 110M token); the softmax stays as it is (libm `exp`), like run.c's.
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    att: &mut [f32],
    out: &mut [f32],
) {
    let (hs, n) = (q.len(), att.len());
    assert!(out.len() == hs && (n == 0 || (n - 1) * stride + hs <= keys.len().min(values.len())));
    let scale = (hs as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if have_avx2_fma() && hs % 8 == 0 {
        // SAFETY: AVX2 and FMA are present; every row read is in bounds (asserted above).
        unsafe { avx2::scores(q, keys, stride, scale, att) };
        softmax(att);
        // SAFETY: as above.
        unsafe { avx2::weighted_sum(att, values, stride, out) };
        return;
    }
    for (t, a) in att.iter_mut().enumerate() {
        *a = dot(q, &keys[t * stride..t * stride + hs]) / scale;
    }
    softmax(att);
    out.fill(0.0);
    for (t, &a) in att.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&values[t * stride..t * stride + hs]) {
            *o += a * v;
        }
    }
}

/// Softmax in place (subtracting the max first).
pub fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mut max = x[0];
    for &v in &x[1..] {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], cols: usize, x: &[f32]) -> Vec<f32> {
        w.chunks_exact(cols)
            .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }

    #[test]
    fn kernels_agree_with_naive() {
        for &(rows, cols) in &[
            (1, 1),
            (3, 7),
            (5, 17),
            (8, 16),
            (13, 33),
            (64, 172),
            (37, 288),
        ] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                .collect();
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 31) % 13) as f32 / 13.0 - 0.4)
                .collect();
            let want = naive(&w, cols, &x);
            let mut got = vec![0.0; rows];
            f32_rows(&w, cols, &x, &mut got);
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-4, "{rows}x{cols}: {a} vs {b}");
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let mut got2 = vec![0.0; rows];
            pool.install(|| matmul(&mut got2, &x, MatRef::F32 { w: &w, rows, cols }, 2));
            assert_eq!(got, got2);
            assert!((dot(&w[..cols], &x) - want[0]).abs() < 1e-4);
            assert!((dot_portable(&w[..cols], &x) - want[0]).abs() < 1e-4);
        }
    }

    /// Deterministic int8 values in [-127, 127], the extremes included.
    fn i8s(n: usize, seed: usize) -> Vec<i8> {
        (0..n)
            .map(|i| match (i * 7919 + seed * 104729) % 263 {
                0 => -127,
                1 => 127,
                k => (k % 255) as i8,
            })
            .map(|v: i8| v.max(-127))
            .collect()
    }

    /// Every int8 kernel against the scalar reference: with unit scales the f32 result is the
    /// int32 sum, exactly (sums stay far below 2^24, where f32 holds every integer).
    #[test]
    fn int8_kernels_equal_the_int32_reference_exactly() {
        let levels: Vec<Simd> = [Simd::None, Simd::Avx2, Simd::Vnni]
            .into_iter()
            .filter(|&l| match l {
                Simd::None => true,
                Simd::Avx2 => simd_level() != Simd::None,
                Simd::Vnni => simd_level() == Simd::Vnni,
            })
            .collect();
        for &(rows, cols, gs) in &[
            (1, 32, 32),
            (5, 64, 32),
            (9, 288, 32),
            (7, 768, 64),
            (13, 1376, 32),
            (4, 12, 4),
            (3, 172, 4),
            (6, 9, 1),
        ] {
            let w = i8s(rows * cols, 1);
            let xq = i8s(cols, 2);
            let ng = cols / gs;
            let x = QuantVec {
                q: xq.clone(),
                s: vec![1.0; ng],
                gs,
            };
            let sw = vec![1.0f32; rows * ng];
            let want: Vec<f32> = w
                .chunks_exact(cols)
                .map(|r| {
                    let exact: i64 = r.iter().zip(&xq).map(|(&a, &b)| a as i64 * b as i64).sum();
                    assert_eq!(exact, dot_i8(r, &xq) as i64);
                    exact as f32
                })
                .collect();
            for &level in &levels {
                let mut got = vec![0.0f32; rows];
                match level {
                    Simd::None => q8_rows_portable(&w, &sw, cols, gs, &xq, &x.s, &mut got),
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2 if gs % 32 == 0 => unsafe {
                        q8_avx2::q8_rows(&w, &sw, cols, gs, &xq, &x.s, &mut got)
                    },
                    #[cfg(target_arch = "x86_64")]
                    Simd::Vnni if gs % 32 == 0 => unsafe {
                        q8_vnni::q8_rows(&w, &sw, cols, gs, &xq, &x.s, &mut got)
                    },
                    _ => q8_rows(&w, &sw, cols, gs, &x, &mut got),
                }
                assert_eq!(got, want, "{level:?} {rows}x{cols} gs {gs}");
            }
            // the extreme: every product 127 * 127 (or -127 * -127), a whole row
            let wmax = vec![-127i8; rows * cols];
            let xmin = QuantVec {
                q: vec![-127; cols],
                s: vec![1.0; ng],
                gs,
            };
            let mut got = vec![0.0f32; rows];
            q8_rows(&wmax, &sw, cols, gs, &xmin, &mut got);
            assert!(got.iter().all(|&v| v == (127 * 127 * cols) as f32));
        }
    }

    #[test]
    fn quantize_dequantize_bounds() {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 7.0)
            .chain([0.0; 32])
            .chain((0..32).map(|i| if i == 5 { 1e-30 } else { 0.0 }))
            .collect();
        for gs in [1, 4, 32, 64] {
            let q = QuantVec::new(&x, gs);
            assert_eq!(q.s.len(), x.len() / gs);
            for (g, (xg, qg)) in x.chunks(gs).zip(q.q.chunks(gs)).enumerate() {
                let s = q.s[g];
                let amax = xg.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert_eq!(s, amax / 127.0);
                for (&v, &qv) in xg.iter().zip(qg) {
                    assert!((-127..=127).contains(&qv));
                    // rounding moves a value at most half a step
                    assert!(
                        (v - qv as f32 * s).abs() <= s / 2.0 * (1.0 + 1e-5),
                        "{v} {qv} {s}"
                    );
                }
                if amax > 0.0 {
                    assert!(qg.iter().any(|&v| v.unsigned_abs() == 127));
                } else {
                    assert!(s == 0.0 && qg.iter().all(|&v| v == 0));
                }
            }
            // a dequantized row of a matrix is q × scale
            let m = MatRef::Q8 {
                q: &q.q,
                s: &q.s,
                rows: x.len() / 64,
                cols: 64,
                gs,
            };
            let mut row = vec![0.0; 64];
            m.row_into(2, &mut row);
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v, q.q[128 + j] as f32 * q.s[(128 + j) / gs]);
            }
        }
        // NaN and infinities do not panic
        let q = QuantVec::new(&[f32::NAN, 1.0, f32::INFINITY, -2.0], 2);
        assert_eq!(q.q.len(), 4);
    }

    #[test]
    fn int8_matmul_is_close_to_f32_and_thread_independent() {
        let (rows, cols, gs) = (37, 288, 32);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 31) % 13) as f32 / 13.0 - 0.4)
            .collect();
        let wq = QuantVec::new(&w, gs);
        let m = MatRef::Q8 {
            q: &wq.q,
            s: &wq.s,
            rows,
            cols,
            gs,
        };
        let want = naive(&w, cols, &x);
        let mut one = vec![0.0; rows];
        matmul(&mut one, &x, m, 1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut two = vec![0.0; rows];
        pool.install(|| matmul(&mut two, &x, m, 2));
        assert_eq!(one, two);
        for (a, b) in want.iter().zip(&one) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
    }
}

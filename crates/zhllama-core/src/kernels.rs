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
//! Summation order therefore differs from a naive serial loop; results agree with it to float
//! rounding.

use rayon::prelude::*;
use std::sync::OnceLock;

/// A read-only view of a weight matrix `(rows, cols)`, row-major.
///
/// An enum so that quantized matrices (int8 groups, FORMATS.md §1.3) can slot in later.
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
}

impl<'a> MatRef<'a> {
    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        match self {
            MatRef::F32 { rows, .. } => *rows,
        }
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        match self {
            MatRef::F32 { cols, .. } => *cols,
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
        }
    }

    /// `out[i] = row_i · x` for every row, on the current thread.
    fn rows_into(&self, x: &[f32], out: &mut [f32]) {
        match *self {
            MatRef::F32 { w, rows, cols } => {
                debug_assert_eq!(out.len(), rows);
                debug_assert_eq!(x.len(), cols);
                f32_rows(w, cols, x, out)
            }
        }
    }
}

fn have_avx2_fma() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
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

/// Rows per parallel task: about four tasks per thread (so that work stealing can even out),
/// a multiple of 4 (the kernel's row block), and never so few rows that scheduling dominates.
fn block_rows(rows: usize, cols: usize, threads: usize) -> usize {
    let per_task = rows.div_ceil(threads.max(1) * 4);
    // at least ~16K multiply-adds per task
    let min_rows = (16384 / cols.max(1)).max(4);
    per_task.max(min_rows).div_ceil(4) * 4
}

/// `out = w · x`, parallel over row blocks. Call inside the model's pool.
pub fn matmul(out: &mut [f32], x: &[f32], w: MatRef<'_>, threads: usize) {
    let rows = w.rows();
    let bs = block_rows(rows, w.cols(), threads);
    if threads <= 1 || bs >= rows {
        w.rows_into(x, out);
        return;
    }
    out.par_chunks_mut(bs).enumerate().for_each(|(i, o)| {
        let r0 = i * bs;
        w.sub(r0..r0 + o.len()).rows_into(x, o);
    });
}

/// Several products of the same input in one parallel pass: `outs[i] = ws[i] · x`.
pub fn matmul_many(outs: &mut [&mut [f32]], x: &[f32], ws: &[MatRef<'_>], threads: usize) {
    if threads <= 1 {
        for (o, w) in outs.iter_mut().zip(ws) {
            w.rows_into(x, o);
        }
        return;
    }
    let total: usize = ws.iter().map(|w| w.rows()).sum();
    let bs = block_rows(total, ws.first().map_or(1, |w| w.cols()), threads);
    let mut tasks: Vec<(MatRef<'_>, &mut [f32])> = Vec::with_capacity(total / bs + ws.len());
    for (o, w) in outs.iter_mut().zip(ws) {
        for (i, chunk) in o.chunks_mut(bs).enumerate() {
            let r0 = i * bs;
            tasks.push((w.sub(r0..r0 + chunk.len()), chunk));
        }
    }
    tasks.into_par_iter().for_each(|(w, o)| w.rows_into(x, o));
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
    // Blocks are multiples of 4 rows, so every row meets the same kernel whatever the thread
    // count: results do not depend on it.
    let bs = block_rows(rows, w1.cols(), threads);
    let task = |r0: usize, a: &mut [f32], b: &mut [f32]| {
        let r = r0..r0 + a.len();
        w1.sub(r.clone()).rows_into(x, a);
        w3.sub(r).rows_into(x, b);
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
}

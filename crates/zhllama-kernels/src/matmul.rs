//! Matrix × vector products on the model's rayon pool, f32 or int8 alike: parallel over
//! output rows, in blocks big enough that a task is worth its scheduling cost even for the
//! tiny matrices of the 15M model. Several matrices that read the same input are computed in
//! one parallel pass (q/k/v; w1/w3 with the SwiGLU gate applied in the same task), which
//! halves the number of fork/joins.

use rayon::prelude::*;

use crate::float::f32_rows;
use crate::int8::{q8_rows, QuantVec};
use crate::packed::{self, PackedQ8, BLOCK_ROWS};

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
    /// An int8 matrix packed for the SIMD kernels ([`crate::packed`]): rows `r0..r0 + rows`
    /// of `p` (`r0` a multiple of 16). Same values and the same product bits as [`MatRef::Q8`]
    /// of the matrix it was packed from.
    Q8Packed {
        /// The whole packed matrix.
        p: &'a PackedQ8,
        /// First row of this view.
        r0: usize,
        /// Rows of this view.
        rows: usize,
    },
}

/// The input vector of a product: f32, plus its int8 groups when the matrix is quantized
/// (quantized once per product, shared by every row and thread).
pub struct Input<'a> {
    x: &'a [f32],
    q: Option<&'a QuantVec>,
}

impl<'a> MatRef<'a> {
    /// The whole of a packed matrix.
    pub fn packed(p: &'a PackedQ8) -> MatRef<'a> {
        MatRef::Q8Packed {
            p,
            r0: 0,
            rows: p.rows(),
        }
    }

    /// Number of rows (output features).
    #[inline]
    pub fn rows(&self) -> usize {
        match self {
            MatRef::F32 { rows, .. } | MatRef::Q8 { rows, .. } | MatRef::Q8Packed { rows, .. } => {
                *rows
            }
        }
    }

    /// Number of columns (input features).
    #[inline]
    pub fn cols(&self) -> usize {
        match self {
            MatRef::F32 { cols, .. } | MatRef::Q8 { cols, .. } => *cols,
            MatRef::Q8Packed { p, .. } => p.cols(),
        }
    }

    /// The group size of a quantized matrix; `None` for f32.
    #[inline]
    pub fn group_size(&self) -> Option<usize> {
        match self {
            MatRef::F32 { .. } => None,
            MatRef::Q8 { gs, .. } => Some(*gs),
            MatRef::Q8Packed { p, .. } => Some(p.group_size()),
        }
    }

    /// Rows of a task of a parallel product start at multiples of this: the f32 kernels'
    /// row block (4), or a packed block (16).
    #[inline]
    pub(crate) fn row_align(&self) -> usize {
        match self {
            MatRef::Q8Packed { .. } => BLOCK_ROWS,
            _ => 4,
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
            MatRef::Q8Packed { p, r0, .. } => p.row_into(r0 + r, out),
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
            MatRef::Q8Packed { p, r0, .. } => {
                debug_assert!(r.start.is_multiple_of(BLOCK_ROWS));
                MatRef::Q8Packed {
                    p,
                    r0: r0 + r.start,
                    rows: r.len(),
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
            MatRef::Q8Packed { p, r0, rows } => {
                debug_assert_eq!(out.len(), rows);
                let gs = p.group_size();
                let again;
                let xq = match x.q {
                    Some(xq) if xq.gs == gs => xq,
                    _ => {
                        again = QuantVec::new(x.x, gs);
                        &again
                    }
                };
                let xp = packed::Xq {
                    q: xq.q.as_ptr(),
                    ldq: p.cols(),
                    s: xq.s.as_ptr(),
                    lds: p.cols() / gs,
                    n: 1,
                };
                // SAFETY: xq is one quantized vector of cols values; out holds these rows.
                unsafe { packed::product(p, r0, r0 + rows, xp, out.as_mut_ptr(), rows) }
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

/// Rows per parallel task: about four tasks per thread (so that work stealing can even out),
/// a multiple of the kernel's row block (4, or 16 packed), and never so few rows that
/// scheduling dominates.
#[inline]
pub fn block_rows(w: &MatRef<'_>, rows: usize, threads: usize) -> usize {
    let cols = w.cols();
    let per_task = rows.div_ceil(threads.max(1) * 4);
    // at least ~16K multiply-adds per task (f32), ~48K for int8 (about three times faster)
    let min_work = if w.group_size().is_some() {
        49152
    } else {
        16384
    };
    let align = w.row_align();
    let min_rows = (min_work / cols.max(1)).max(align);
    per_task.max(min_rows).div_ceil(align) * align
}

/// `out = w · x`, parallel over row blocks. Call inside the model's pool.
#[inline]
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
#[inline]
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
    // every matrix's tasks start at a multiple of its row block
    let align = ws.iter().map(|w| w.row_align()).max().unwrap_or(4);
    let bs = bs.div_ceil(align) * align;
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
#[inline]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::{dot, dot_portable};

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

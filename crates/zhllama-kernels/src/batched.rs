//! Matrix × several vectors: the batched forward's products, bit-identical to the one-vector
//! kernels of [`crate::matmul`].
//!
//! The f32 kernels ([`f32`](mod@f32)) are register-blocked: a block of 4 rows meets a group
//! of vectors at once, each chunk of weights loaded into a register once for all of them.
//! Exactness is by construction: every output element `(vector v, row r)` is summed with the
//! lanes, chunk order, partial sums and final reduction of the one-vector row kernel
//! ([`crate::f32_rows`]) on a slice of rows that starts at a multiple of 4 — which is what the
//! one-vector product hands it — whatever the batch, the chunk or the thread count (the
//! module's doc says how). Packed int8 matrices run the packed kernels ([`crate::packed`]),
//! which take several vectors by design and whose arithmetic is fixed per output. Without
//! AVX2, for row-major int8, and for a single f32 vector, the one-vector kernels run per vector.
//!
//! Speed also comes from the order of the loops: rows are walked in panels that stay in L2,
//! each panel meets the vectors in blocks that stay in L2 too. So each weight comes from
//! memory once per batch instead of once per vector, and a long prompt's vectors are not
//! streamed from L3 once per block of rows. Row blocks go to the model's rayon pool, as the
//! one-vector `matmul` does.

mod f32;

use rayon::prelude::*;

use crate::dispatch::{have_avx2_fma, have_avx512f};
use crate::int8::{q8_rows_of, quantize_activations};
use crate::packed::{self, BLOCK_ROWS};
use crate::{f32_rows, MatRef};

/// Several input vectors of one product, `(n, cols)` row-major, and their int8 groups when the
/// matrices they meet are quantized (quantized once, shared by every row, block and thread).
pub struct BatchInput<'a> {
    xs: &'a [f32],
    n: usize,
    cols: usize,
    q: Option<Quantized>,
}

/// `n` vectors quantized in groups (FORMATS.md §1.3), contiguous: vector `v`'s values at
/// `q[v * cols..]`, its scales at `s[v * cols / gs..]`.
#[derive(Clone)]
struct Quantized {
    q: Vec<i8>,
    s: Vec<f32>,
    gs: usize,
}

impl<'a> BatchInput<'a> {
    /// `n` vectors of `xs.len() / n` values; quantized in groups of `group_size` when given
    /// (exactly as the one-vector product quantizes its input: groups never straddle two
    /// vectors, since the group size divides the width).
    pub fn new(xs: &'a [f32], n: usize, group_size: Option<usize>) -> Self {
        let cols = xs.len() / n.max(1);
        let xs = &xs[..n * cols];
        let q = group_size.map(|gs| {
            let gs = gs.max(1);
            let mut q = vec![0i8; xs.len()];
            let mut s = vec![0.0f32; n * cols.div_ceil(gs)];
            let (c, g) = (cols.max(1), cols.div_ceil(gs).max(1));
            let each =
                |((x, q), s): ((&[f32], &mut [i8]), &mut [f32])| quantize_activations(x, gs, q, s);
            // a long prompt's vectors on the current pool (the model's, inside its forward):
            // each vector is quantized alone, so the split changes nothing
            if xs.len() >= PAR_QUANTIZE_MIN {
                xs.par_chunks_exact(c)
                    .zip(q.par_chunks_exact_mut(c))
                    .zip(s.par_chunks_exact_mut(g))
                    .for_each(each);
            } else {
                xs.chunks_exact(c)
                    .zip(q.chunks_exact_mut(c))
                    .zip(s.chunks_exact_mut(g))
                    .for_each(each);
            }
            Quantized { q, s, gs }
        });
        BatchInput { xs, n, cols, q }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Values of a batch from which its quantization is split into tasks.
const PAR_QUANTIZE_MIN: usize = 16384;

/// Weight bytes of one panel of rows, kept in L2 while blocks of vectors pass over it.
const PANEL_BYTES: usize = 192 * 1024;

/// Input bytes of one block of vectors, kept in L2 while they pass over a panel.
const XBLOCK_BYTES: usize = 96 * 1024;

/// Bytes of one row of `w` (values and scales).
fn row_bytes(w: &MatRef<'_>) -> usize {
    match w {
        MatRef::F32 { cols, .. } => 4 * cols,
        MatRef::Q8 { cols, gs, .. } => cols + 4 * (cols / gs),
        MatRef::Q8Packed { p, .. } => p.row_bytes(),
    }
}

/// A pointer to the output that tasks of one product share; each writes only its own rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (their own rows of each vector), and the product waits
// for all of them before the output is read again.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Rows `r0..r1` (r0 a multiple of the matrix's row block) of `w` times every vector of `x`,
/// into `out[v * rows + r]`.
///
/// # Safety
/// `out` must point to `n * rows` floats, and no one else may touch rows `r0..r1` meanwhile.
unsafe fn rows_all_vectors(w: &MatRef<'_>, x: &BatchInput<'_>, r0: usize, r1: usize, out: OutPtr) {
    let rows = w.rows();
    let align = w.row_align();
    let panel = (PANEL_BYTES / row_bytes(w).max(1) / align * align).max(align);
    let vblock = (XBLOCK_BYTES / (4 * x.cols).max(1)).max(1);
    // panel of rows (in L2) × block of vectors (in L2), register blocks inside: the weights
    // come from memory once, the vectors from L2/L3 once per panel.
    for p0 in (r0..r1).step_by(panel) {
        let p1 = (p0 + panel).min(r1);
        for v0 in (0..x.n).step_by(vblock) {
            let v1 = (v0 + vblock).min(x.n);
            // only the first block of vectors prefetches: the others find the panel in L2
            block(w, x, p0..p1, v0..v1, out.0.add(v0 * rows), v0 == 0);
        }
    }
}

/// Rows `r` (r.start a multiple of the row block) of `w` times vectors `v`, into `out[(v - v.start) *
/// rows + row]`, by the best kernel for this CPU.
///
/// # Safety
/// As [`rows_all_vectors`], for these rows and vectors.
unsafe fn block(
    w: &MatRef<'_>,
    x: &BatchInput<'_>,
    r: std::ops::Range<usize>,
    v: std::ops::Range<usize>,
    out: *mut f32,
    prefetch: bool,
) {
    let (rows, cols) = (w.rows(), w.cols());
    let out = out.add(r.start);
    match *w {
        MatRef::F32 { w, cols, .. } => {
            // the slice runs to the end of the matrix so that the kernel may prefetch ahead
            let wr = &w[r.start * cols..];
            let xs = &x.xs[v.start * cols..v.end * cols];
            if v.len() == 1 {
                // one vector: the one-vector kernel itself (its accumulators suit one best)
                return f32_rows(wr, cols, xs, std::slice::from_raw_parts_mut(out, r.len()));
            }
            #[cfg(target_arch = "x86_64")]
            if have_avx2_fma() {
                let p = f32::Panel {
                    x: xs.as_ptr(),
                    ldx: cols,
                    n: v.len(),
                    out,
                    ldo: rows,
                };
                // SAFETY: the CPU has the features (checked); wr holds r.len() rows, p's
                // vectors lie in x and its outputs in out (the caller's promise).
                if have_avx512f() {
                    f32::rows_avx512(wr, r.len(), cols, p, prefetch);
                } else {
                    f32::rows(wr, r.len(), cols, p, prefetch);
                }
                return;
            }
            let mut o = vec![0.0f32; r.len()];
            for (i, x) in xs.chunks_exact(cols).enumerate() {
                f32_rows(wr, cols, x, &mut o);
                std::ptr::copy_nonoverlapping(o.as_ptr(), out.add(i * rows), o.len());
            }
        }
        MatRef::Q8 { q, s, gs, .. } => {
            // row-major int8 (group sizes the packed kernels do not take): one vector at a time
            let ng = cols / gs;
            let (wq, ws) = (&q[r.start * cols..], &s[r.start * ng..]);
            let xq = quantized(x, gs);
            let mut o = vec![0.0f32; r.len()];
            for i in v.clone() {
                let (q, s) = (&xq.q[i * cols..(i + 1) * cols], &xq.s[i * ng..(i + 1) * ng]);
                q8_rows_of(wq, ws, cols, gs, q, s, &mut o);
                let at = out.add((i - v.start) * rows);
                std::ptr::copy_nonoverlapping(o.as_ptr(), at, o.len());
            }
        }
        MatRef::Q8Packed { p, r0, .. } => {
            let gs = p.group_size();
            let ng = cols / gs;
            let xq = quantized(x, gs);
            let xp = packed::Xq {
                q: xq.q.as_ptr().add(v.start * cols),
                ldq: cols,
                s: xq.s.as_ptr().add(v.start * ng),
                lds: ng,
                n: v.len(),
            };
            let (a, b) = (r0 + r.start, r0 + r.end);
            debug_assert!(a.is_multiple_of(BLOCK_ROWS));
            // SAFETY: xp's vectors lie in x; out holds rows r of these vectors (the caller's
            // promise), which the kernel writes at out[v * rows + row - a].
            packed::product(p, a, b, xp, out, rows);
        }
    }
}

/// `x`'s int8 groups for group size `gs`: those it carries, or (never the case inside one
/// model, whose matrices share one group size) quantized anew.
fn quantized<'x>(x: &'x BatchInput<'_>, gs: usize) -> std::borrow::Cow<'x, Quantized> {
    match x.q.as_ref().filter(|xq| xq.gs == gs) {
        Some(xq) => std::borrow::Cow::Borrowed(xq),
        None => match BatchInput::new(x.xs, x.n, Some(gs)).q {
            Some(q) => std::borrow::Cow::Owned(q),
            None => unreachable!("a group size was given"),
        },
    }
}

/// `out[v] = w · x[v]` for every vector `v`: `out` is `(n, rows)`. Parallel over blocks of
/// rows on the current rayon pool (call inside the model's pool) when `threads > 1`.
pub fn matmul_batch(out: &mut [f32], x: &BatchInput<'_>, w: MatRef<'_>, threads: usize) {
    let (rows, cols) = (w.rows(), w.cols());
    if x.n == 0 {
        return;
    }
    assert!(out.len() >= x.n * rows && x.cols == cols);
    let ptr = OutPtr(out.as_mut_ptr());
    // Blocks: a multiple of the kernels' row block, about four per thread, and enough work
    // per block to be worth a task.
    let per_task = rows.div_ceil(threads.max(1) * 4);
    let min_rows = (16384 / (cols * x.n.max(1)).max(1)).max(1);
    let align = w.row_align();
    let bs = per_task.max(min_rows).div_ceil(align) * align;
    if threads <= 1 || bs >= rows {
        // SAFETY: out holds n * rows floats (asserted) and this is the only writer.
        unsafe { rows_all_vectors(&w, x, 0, rows, ptr) };
        return;
    }
    (0..rows.div_ceil(bs)).into_par_iter().for_each(|i| {
        let r0 = i * bs;
        // SAFETY: blocks are disjoint row ranges of an output holding n * rows floats.
        unsafe { rows_all_vectors(&w, x, r0, (r0 + bs).min(rows), ptr) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuantVec;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 997.0 - 0.5)
            .collect()
    }

    /// Every (vector, row) of the batched product equals the one-vector product bit for bit,
    /// for shapes with tail rows, several tiles, and 1 to 3 threads.
    #[test]
    fn batched_products_equal_one_vector_products_exactly() {
        for &(rows, cols, gs) in &[(5, 16, 16), (37, 288, 32), (130, 768, 64), (67, 172, 4)] {
            let wf = values(rows * cols, 1);
            let wq = QuantVec::new(&wf, gs);
            let packed = crate::PackedQ8::new(&wq.q, &wq.s, rows, cols, gs).unwrap();
            let q8 = MatRef::Q8 {
                q: &wq.q,
                s: &wq.s,
                rows,
                cols,
                gs,
            };
            let mats = [
                MatRef::F32 { w: &wf, rows, cols },
                q8,
                MatRef::packed(&packed),
            ];
            for n in [1, 3, 8, 45] {
                let xs = values(n * cols, n + 7);
                for w in mats {
                    // int8: the row-major one-vector product, for the packed matrix too
                    let one = if w.group_size().is_some() { q8 } else { w };
                    let want: Vec<f32> = xs
                        .chunks_exact(cols)
                        .flat_map(|x| {
                            let mut o = vec![0.0; rows];
                            crate::matmul(&mut o, x, one, 1);
                            o
                        })
                        .collect();
                    for threads in [1, 2, 3] {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .unwrap();
                        let input = BatchInput::new(&xs, n, w.group_size());
                        let mut got = vec![f32::NAN; n * rows];
                        pool.install(|| matmul_batch(&mut got, &input, w, threads));
                        let same = want
                            .iter()
                            .zip(&got)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{rows}x{cols} n {n} threads {threads} gs {:?}",
                            w.group_size()
                        );
                    }
                }
            }
        }
    }
}

/// Each register-blocked kernel this CPU can run, called directly (not through the dispatch),
/// against its one-vector kernel, bit for bit.
#[cfg(all(test, target_arch = "x86_64"))]
mod kernel_tests {
    use super::*;

    /// Values of mixed sizes and signs, so that a different summation order shows.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * [1.0, 1e-3, 37.0, 0.01][(s >> 20) as usize % 4]
            })
            .collect()
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn f32_kernels_equal_the_one_vector_avx2_kernel_exactly() {
        if !have_avx2_fma() {
            eprintln!("skipped: no AVX2+FMA on this CPU");
            return;
        }
        let wide = std::arch::is_x86_feature_detected!("avx512f");
        for cols in [5, 8, 16, 24, 40, 300, 288, 768, 1032, 1376, 2048, 2056] {
            for rows in [1, 3, 4, 7, 9, 37] {
                let w = values(rows * cols, cols as u64);
                for n in [1, 2, 3, 4, 5, 6, 7, 8, 13] {
                    let xs = values(n * cols, (n * 31 + rows) as u64);
                    let mut want = vec![0.0f32; n * rows];
                    for (x, o) in xs.chunks_exact(cols).zip(want.chunks_exact_mut(rows)) {
                        // SAFETY: AVX2+FMA present (checked); sizes match.
                        unsafe { crate::float::avx2::f32_rows(&w, cols, x, o) };
                    }
                    type Kernel = unsafe fn(&[f32], usize, usize, f32::Panel, bool);
                    let mut kernels: Vec<(&str, Kernel)> = vec![("avx2", f32::rows)];
                    if wide {
                        kernels.push(("avx512", f32::rows_avx512));
                    }
                    for (name, kernel) in kernels {
                        for prefetch in [false, true] {
                            let mut got = vec![f32::NAN; n * rows];
                            let p = f32::Panel {
                                x: xs.as_ptr(),
                                ldx: cols,
                                n,
                                out: got.as_mut_ptr(),
                                ldo: rows,
                            };
                            // SAFETY: features checked; w, xs and got have the sizes given.
                            unsafe { kernel(&w, rows, cols, p, prefetch) };
                            assert!(same(&got, &want), "{name} {rows}x{cols} n {n}");
                        }
                    }
                }
            }
        }
    }
}

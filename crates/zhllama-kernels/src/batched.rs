//! Matrix × several vectors: the batched forward's products, bit-identical to the one-vector
//! kernels of [`crate::matmul`].
//!
//! Exactness is by construction: every output element `(vector v, row r)` is computed by the
//! one-vector row kernel itself ([`f32_rows`] / [`q8_rows`], with their
//! run-time AVX2 / AVX-512 VNNI / portable dispatch) on a slice of rows that starts at a
//! multiple of 4, so each row meets the same code path (the 4-row block or the tail `dot`),
//! the same lanes, partial sums and final reduction as when the matrix is multiplied by that
//! vector alone, whatever the batch, the chunk or the thread count.
//!
//! Speed comes from the order of the loops: rows are walked in panels that stay in L2, each
//! panel meets the vectors in blocks that stay in L2 too, and inside that small tiles of rows
//! (L1) are multiplied by every vector of the block before moving on. So each weight comes from
//! memory once per batch instead of once per vector, and a long prompt's vectors are not
//! streamed from L3 once per tile. Row blocks go to the model's rayon pool, as the one-vector
//! `matmul` does.

use rayon::prelude::*;

use crate::{f32_rows, q8_rows, MatRef, QuantVec};

/// Several input vectors of one product, `(n, cols)` row-major, and their int8 groups when the
/// matrices they meet are quantized (quantized once, shared by every row, tile and thread).
pub struct BatchInput<'a> {
    xs: &'a [f32],
    n: usize,
    q: Option<Vec<QuantVec>>,
}

impl<'a> BatchInput<'a> {
    /// `n` vectors of `xs.len() / n` values; quantized in groups of `group_size` when given
    /// (exactly as the one-vector product quantizes its input).
    pub fn new(xs: &'a [f32], n: usize, group_size: Option<usize>) -> Self {
        let q = group_size.map(|gs| {
            let cols = xs.len() / n.max(1);
            xs.chunks_exact(cols.max(1))
                .take(n)
                .map(|x| QuantVec::new(x, gs))
                .collect()
        });
        BatchInput { xs, n, q }
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

/// Weight bytes of one tile: small enough to stay in L1/L2 while every vector passes over it.
const TILE_BYTES: usize = 24 * 1024;

/// Weight bytes of one panel of tiles, kept in L2 while blocks of vectors pass over it.
const PANEL_BYTES: usize = 192 * 1024;

/// Input bytes of one block of vectors, kept in L2 while they pass over a panel.
const XBLOCK_BYTES: usize = 96 * 1024;

/// Bytes of one row of `w` (values and scales).
fn row_bytes(w: &MatRef<'_>) -> usize {
    match w {
        MatRef::F32 { cols, .. } => 4 * cols,
        MatRef::Q8 { cols, gs, .. } => cols + 4 * (cols / gs),
    }
}

/// Rows of one tile: a multiple of 4 (the row kernel's block), at least 4.
fn tile_rows(w: &MatRef<'_>) -> usize {
    (TILE_BYTES / row_bytes(w).max(1) / 4 * 4).max(4)
}

/// A pointer to the output that tasks of one product share; each writes only its own rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (their own rows of each vector), and the product waits
// for all of them before the output is read again.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Rows `r0..r1` (r0 a multiple of 4) of `w` times every vector of `x`, into
/// `out[v * rows + r]`. `tmp` is scratch of at least one tile.
///
/// # Safety
/// `out` must point to `n * rows` floats, and no one else may touch rows `r0..r1` meanwhile.
unsafe fn rows_all_vectors(w: &MatRef<'_>, x: &BatchInput<'_>, r0: usize, r1: usize, out: OutPtr) {
    let (rows, cols) = (w.rows(), w.cols());
    let tile = tile_rows(w);
    let panel = (PANEL_BYTES / row_bytes(w).max(1) / tile * tile).max(tile);
    let vblock = (XBLOCK_BYTES / (4 * cols).max(1)).max(1);
    let mut tmp = vec![0.0f32; tile];
    // panel of rows (in L2) × block of vectors (in L2) × tile of rows (in L1) × vector: the
    // weights come from memory once, the vectors from L2/L3 once per panel.
    for p0 in (r0..r1).step_by(panel) {
        let p1 = (p0 + panel).min(r1);
        for v0 in (0..x.n).step_by(vblock) {
            for t0 in (p0..p1).step_by(tile) {
                let t1 = (t0 + tile).min(p1);
                let o = &mut tmp[..t1 - t0];
                for v in v0..(v0 + vblock).min(x.n) {
                    // only the block's first vector prefetches: the others find the tile in L1
                    row_tile(w, x, t0, v, o, v == v0);
                    // SAFETY: rows t0..t1 of vector v lie inside the output and belong to
                    // this task.
                    std::ptr::copy_nonoverlapping(o.as_ptr(), out.0.add(v * rows + t0), o.len());
                }
            }
        }
    }
}

/// Rows `t0..t0 + o.len()` (t0 a multiple of 4) of `w` times vector `v`, by the one-vector row
/// kernel. With `prefetch` the slices run to the end of the matrix (not of the tile) so that
/// the kernel prefetches the next rows as it does for a whole matrix; without, they end with
/// the tile and the kernel prefetches nothing (it never reads past its slice). `o` bounds the
/// rows either way, so the arithmetic is the same.
fn row_tile(
    w: &MatRef<'_>,
    x: &BatchInput<'_>,
    t0: usize,
    v: usize,
    o: &mut [f32],
    prefetch: bool,
) {
    let t1 = t0 + o.len();
    match *w {
        MatRef::F32 { w, cols, .. } => {
            let w = if prefetch {
                &w[t0 * cols..]
            } else {
                &w[t0 * cols..t1 * cols]
            };
            f32_rows(w, cols, &x.xs[v * cols..(v + 1) * cols], o)
        }
        MatRef::Q8 { q, s, cols, gs, .. } => {
            let ng = cols / gs;
            let (q, s) = if prefetch {
                (&q[t0 * cols..], &s[t0 * ng..])
            } else {
                (&q[t0 * cols..t1 * cols], &s[t0 * ng..t1 * ng])
            };
            let xq = match &x.q {
                Some(qs) if qs[v].gs == gs => std::borrow::Cow::Borrowed(&qs[v]),
                // not quantized for this group size (never the case inside one model)
                _ => std::borrow::Cow::Owned(QuantVec::new(&x.xs[v * cols..(v + 1) * cols], gs)),
            };
            q8_rows(q, s, cols, gs, &xq, o)
        }
    }
}

/// `out[v] = w · x[v]` for every vector `v`: `out` is `(n, rows)`. Parallel over blocks of
/// rows on the current rayon pool (call inside the model's pool) when `threads > 1`.
pub fn matmul_batch(out: &mut [f32], x: &BatchInput<'_>, w: MatRef<'_>, threads: usize) {
    let (rows, cols) = (w.rows(), w.cols());
    assert!(out.len() >= x.n * rows && x.xs.len() >= x.n * cols);
    let ptr = OutPtr(out.as_mut_ptr());
    // Blocks: a multiple of the tile (itself a multiple of 4), about four per thread, and
    // enough work per block to be worth a task.
    let tile = tile_rows(&w);
    let per_task = rows.div_ceil(threads.max(1) * 4);
    let min_rows = (16384 / (cols * x.n.max(1)).max(1)).max(1);
    let bs = per_task.max(min_rows).div_ceil(tile) * tile;
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
            let mats = [
                MatRef::F32 { w: &wf, rows, cols },
                MatRef::Q8 {
                    q: &wq.q,
                    s: &wq.s,
                    rows,
                    cols,
                    gs,
                },
            ];
            for n in [1, 3, 8, 45] {
                let xs = values(n * cols, n + 7);
                for w in mats {
                    let want: Vec<f32> = xs
                        .chunks_exact(cols)
                        .flat_map(|x| {
                            let mut o = vec![0.0; rows];
                            crate::matmul(&mut o, x, w, 1);
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

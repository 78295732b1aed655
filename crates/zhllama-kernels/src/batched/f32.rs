//! f32 rows × several vectors, register-blocked: each chunk of weights is loaded once into a
//! register and multiplied by every vector of a small group, so the loads per multiply-add fall
//! from one-plus (one-vector kernel) to about a third.
//!
//! Exactness. The one-vector AVX2 kernel ([`crate::float`]) sums row `r` in two 8-lane
//! accumulators: `a` over the even 8-column chunks (0, 16, 32, …) plus a last chunk of 8 when
//! `cols % 16 >= 8`, `b` over the odd ones (8, 24, …), then `hsum(a + b)`, then the columns
//! past the last multiple of 8 one by one; rows after the last multiple of 4 go to `dot`. Here
//! every (row, vector) gets exactly those lanes, chunks, order and reductions:
//! - AVX2 (16 registers): 4 rows × up to 3 vectors of 8-lane accumulators (12 registers). The
//!   `a` chains run in a first pass over the row, the `b` chains in a second; each chain sees
//!   its chunks in the same order as in the one-vector kernel, and a chain does not care what
//!   runs between its steps.
//! - AVX-512 (32 registers): one 16-lane register per (row, vector) holds `a` in its low half
//!   and `b` in its high half, since a 16-column load is the even chunk then the odd one; 4
//!   rows × up to 6 vectors. The last lone chunk of 8 goes to the low half only (masked).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::float::avx2::{dot, hsum};

/// The most vectors one register block takes (AVX2 / AVX-512).
const GROUP_AVX2: usize = 3;
const GROUP_AVX512: usize = 6;

/// The size of the next group of vectors when `left` remain and a group takes at most `max`:
/// the groups are made even (7 vectors at 6 a group go as 4 + 3, not 6 + 1), since a group of
/// one or two keeps too few accumulators busy.
pub(crate) fn group(left: usize, max: usize) -> usize {
    left.div_ceil(left.div_ceil(max))
}

/// The most vectors of one AVX-512 group for rows of `cols` values: 6, fewer for long rows
/// so that a group's vectors (read once per 4 rows) stay in L1 beside the 4 rows.
fn group_max(cols: usize) -> usize {
    (L1_VECTORS_BYTES / (4 * cols).max(1)).clamp(2, GROUP_AVX512)
}

/// Rows up to this long (columns) go through both passes whole; longer ones in blocks of
/// `COL_BLOCK` columns (a multiple of 16): 4 rows and 3 vectors of 512 floats take 14 KiB.
const COLS_IN_L1: usize = 1024;
const COL_BLOCK: usize = 512;

/// Bytes of a group's vectors that stay in L1 beside the 4 rows they meet.
const L1_VECTORS_BYTES: usize = 24 * 1024;

/// Where one call's vectors and outputs are: vector `v` at `x + v * ldx` (`cols` values),
/// its row `r` result at `out + v * ldo + r`.
#[derive(Clone, Copy)]
pub(crate) struct Panel {
    pub x: *const f32,
    pub ldx: usize,
    pub n: usize,
    pub out: *mut f32,
    pub ldo: usize,
}

/// Rows `0..rows` of `w` (row-major, `cols` wide; `w` may run on past `rows`, which lets the
/// first vector group prefetch the next rows) times every vector of `p`. With `prefetch`, the
/// first group of vectors prefetches ~8 KiB ahead as the one-vector kernel does.
///
/// # Safety
/// AVX2 and FMA (and AVX-512F with `wide`) present; `w` holds `rows * cols` values; `p`'s
/// vectors and outputs are valid for `p.n` vectors of `cols` values and `rows` results.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn rows(w: &[f32], rows: usize, cols: usize, p: Panel, prefetch: bool) {
    let dist = 8192usize.div_ceil(16 * cols.max(1));
    let mut r = 0;
    while r + 4 <= rows {
        let (mut v0, mut part, parts) = (0, 0, p.n.div_ceil(GROUP_AVX2));
        while v0 < p.n {
            let nv = group(p.n - v0, GROUP_AVX2);
            let ahead = (r + 4 * dist) * cols;
            let pf = prefetch.then_some(Ahead {
                p: w.as_ptr().add(ahead.min(w.len())),
                left: w.len() - ahead.min(w.len()),
                part,
                parts,
            });
            part += 1;
            let wr = w.as_ptr().add(r * cols);
            let x = p.x.add(v0 * p.ldx);
            let out = p.out.add(v0 * p.ldo + r);
            match nv {
                3 => quad::<3>(wr, cols, x, p.ldx, out, p.ldo, pf),
                2 => quad::<2>(wr, cols, x, p.ldx, out, p.ldo, pf),
                _ => quad::<1>(wr, cols, x, p.ldx, out, p.ldo, pf),
            }
            v0 += nv;
        }
        r += 4;
    }
    tail_rows(w, r, rows, cols, p);
}

/// The rows after the last multiple of 4, by `dot`, as the one-vector kernel does.
#[target_feature(enable = "avx2,fma")]
unsafe fn tail_rows(w: &[f32], r0: usize, rows: usize, cols: usize, p: Panel) {
    for r in r0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for v in 0..p.n {
            let x = std::slice::from_raw_parts(p.x.add(v * p.ldx), cols);
            *p.out.add(v * p.ldo + r) = dot(row, x);
        }
    }
}

/// The 4-row block ahead that a group of vectors prefetches while it multiplies this one: the
/// groups of one block share the work (`part` of `parts`), so that the next block streams in
/// during all of them, not only the first.
#[derive(Clone, Copy)]
pub(crate) struct Ahead<T> {
    pub p: *const T,
    /// Values from `p` to the end of the matrix.
    pub left: usize,
    pub part: usize,
    pub parts: usize,
}

/// At the 16-column step `j`, four cache lines of the block ahead when this step is this
/// group's share: the steps of all groups together cover the block ahead by the end of this
/// one, as in the one-vector kernel.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn prefetch4(pf: Option<Ahead<f32>>, j: usize) {
    if let Some(Ahead {
        p,
        left,
        part,
        parts,
    }) = pf
    {
        if (j / 16) % parts == part && 4 * j + 48 < left {
            let a = p.add(4 * j);
            _mm_prefetch(a.cast::<i8>(), _MM_HINT_T0);
            _mm_prefetch(a.add(16).cast::<i8>(), _MM_HINT_T0);
            _mm_prefetch(a.add(32).cast::<i8>(), _MM_HINT_T0);
            _mm_prefetch(a.add(48).cast::<i8>(), _MM_HINT_T0);
        }
    }
}

/// 4 rows at `w` × `V` vectors: the `a` chains in a first pass, the `b` chains in a second.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn quad<const V: usize>(
    w: *const f32,
    cols: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    pf: Option<Ahead<f32>>,
) {
    let end16 = cols / 16 * 16;
    // Long rows go in blocks of columns, both passes per block, so that the block's 4 rows
    // and V vectors stay in L1 for the second pass (4 rows of 2048 floats alone fill it). Each
    // chain still meets its chunks in ascending order: a at 0, 16, 32, …, b at 8, 24, 40, ….
    let block = if cols > COLS_IN_L1 {
        COL_BLOCK
    } else {
        end16.max(16)
    };
    let mut a = [[_mm256_setzero_ps(); V]; 4];
    let mut b = [[_mm256_setzero_ps(); V]; 4];
    let mut c0 = 0;
    while c0 < end16 {
        let c1 = (c0 + block).min(end16);
        // pass 1: the even chunks into a
        let mut j = c0;
        while j < c1 {
            prefetch4(pf, j);
            step::<V>(&mut a, w, cols, x, ldx, j);
            j += 16;
        }
        // pass 2: the odd chunks into b
        let mut j = c0 + 8;
        while j < c1 {
            step::<V>(&mut b, w, cols, x, ldx, j);
            j += 16;
        }
        c0 = c1;
    }
    // a last lone chunk of 8 ends a's chain, after all its others
    let mut tail = end16;
    if end16 + 8 <= cols {
        step::<V>(&mut a, w, cols, x, ldx, end16);
        tail += 8;
    }
    for k in 0..4 {
        for v in 0..V {
            let (wr, xr) = (w.add(k * cols), x.add(v * ldx));
            let mut s = hsum(_mm256_add_ps(a[k][v], b[k][v]));
            for jj in tail..cols {
                s += *wr.add(jj) * *xr.add(jj);
            }
            *out.add(v * ldo + k) = s;
        }
    }
}

/// One 8-column chunk at column `j` of 4 rows × `V` vectors into `acc`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn step<const V: usize>(
    acc: &mut [[__m256; V]; 4],
    w: *const f32,
    cols: usize,
    x: *const f32,
    ldx: usize,
    j: usize,
) {
    let mut xv = [_mm256_setzero_ps(); V];
    for (v, xv) in xv.iter_mut().enumerate() {
        *xv = _mm256_loadu_ps(x.add(v * ldx + j));
    }
    for (k, acc) in acc.iter_mut().enumerate() {
        let wv = _mm256_loadu_ps(w.add(k * cols + j));
        for v in 0..V {
            acc[v] = _mm256_fmadd_ps(wv, xv[v], acc[v]);
        }
    }
}

/// As [`rows`], with 16-lane registers (`a` and `b` of one row and vector in one register).
///
/// # Safety
/// As [`rows`], and AVX-512F present.
#[target_feature(enable = "avx2,fma,avx512f")]
pub(crate) unsafe fn rows_avx512(w: &[f32], rows: usize, cols: usize, p: Panel, prefetch: bool) {
    let dist = 8192usize.div_ceil(16 * cols.max(1));
    let mut r = 0;
    while r + 4 <= rows {
        let max = group_max(cols);
        let (mut v0, mut part, parts) = (0, 0, p.n.div_ceil(max));
        while v0 < p.n {
            let nv = group(p.n - v0, max);
            let ahead = (r + 4 * dist) * cols;
            let pf = prefetch.then_some(Ahead {
                p: w.as_ptr().add(ahead.min(w.len())),
                left: w.len() - ahead.min(w.len()),
                part,
                parts,
            });
            part += 1;
            let wr = w.as_ptr().add(r * cols);
            let x = p.x.add(v0 * p.ldx);
            let out = p.out.add(v0 * p.ldo + r);
            match nv {
                6 => quad512::<6>(wr, cols, x, p.ldx, out, p.ldo, pf),
                5 => quad512::<5>(wr, cols, x, p.ldx, out, p.ldo, pf),
                4 => quad512::<4>(wr, cols, x, p.ldx, out, p.ldo, pf),
                3 => quad512::<3>(wr, cols, x, p.ldx, out, p.ldo, pf),
                2 => quad512::<2>(wr, cols, x, p.ldx, out, p.ldo, pf),
                _ => quad512::<1>(wr, cols, x, p.ldx, out, p.ldo, pf),
            }
            v0 += nv;
        }
        r += 4;
    }
    tail_rows(w, r, rows, cols, p);
}

/// 4 rows × `V` vectors, one pass: lanes 0–7 are the `a` chain, lanes 8–15 the `b` chain.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn quad512<const V: usize>(
    w: *const f32,
    cols: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    pf: Option<Ahead<f32>>,
) {
    let end16 = cols / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); V]; 4];
    let mut j = 0;
    while j < end16 {
        prefetch4(pf, j);
        let mut xv = [_mm512_setzero_ps(); V];
        for (v, xv) in xv.iter_mut().enumerate() {
            *xv = _mm512_loadu_ps(x.add(v * ldx + j));
        }
        for (k, acc) in acc.iter_mut().enumerate() {
            let wv = _mm512_loadu_ps(w.add(k * cols + j));
            for v in 0..V {
                acc[v] = _mm512_fmadd_ps(wv, xv[v], acc[v]);
            }
        }
        j += 16;
    }
    let mut tail = end16;
    if end16 + 8 <= cols {
        // the lone last chunk of 8 belongs to a: the low lanes only (the loads stop at cols)
        const LOW: __mmask16 = 0x00ff;
        let mut xv = [_mm512_setzero_ps(); V];
        for (v, xv) in xv.iter_mut().enumerate() {
            *xv = _mm512_maskz_loadu_ps(LOW, x.add(v * ldx + end16));
        }
        for (k, acc) in acc.iter_mut().enumerate() {
            let wv = _mm512_maskz_loadu_ps(LOW, w.add(k * cols + end16));
            for v in 0..V {
                acc[v] = _mm512_mask3_fmadd_ps(wv, xv[v], acc[v], LOW);
            }
        }
        tail += 8;
    }
    for (k, acc) in acc.iter().enumerate() {
        for (v, &acc) in acc.iter().enumerate() {
            let (wr, xr) = (w.add(k * cols), x.add(v * ldx));
            let lo = _mm512_castps512_ps256(acc);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc)));
            let mut s = hsum(_mm256_add_ps(lo, hi));
            for jj in tail..cols {
                s += *wr.add(jj) * *xr.add(jj);
            }
            *out.add(v * ldo + k) = s;
        }
    }
}

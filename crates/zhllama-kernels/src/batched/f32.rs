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
//!   `a` chains run in a first pass over the row (or over a block of its columns: long rows go
//!   block by block, the accumulators held in memory between blocks), the `b` chains in a
//!   second; each chain sees its chunks in the same order as in the one-vector kernel, and a
//!   chain does not care what runs between its steps.
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

/// How far ahead the weights are prefetched; into L2, not L1 as the one-vector kernel does: a
/// block of 4 rows, the blocks prefetched and a few vectors overflow the 32 KiB L1, so lines
/// prefetched into it were evicted before use. Memory-sized 768-column matrix on Zen 4 (AVX2),
/// one thread, against 8 KiB into L1: 4 vectors 7.6 -> 11.6 G multiply-adds/s, 8 vectors 10.2
/// -> 15.6 (medians of 6–8 interleaved runs); 16 and 64 KiB into L2 did the same as 32, and
/// 32 KiB into L1 no better than 8.
const AHEAD_BYTES: usize = 32 * 1024;

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
/// vector groups prefetch the next rows) times every vector of `p`. With `prefetch`, the
/// groups of vectors prefetch [`AHEAD_BYTES`] ahead into L2.
///
/// # Safety
/// AVX2 and FMA (and AVX-512F with `wide`) present; `w` holds `rows * cols` values; `p`'s
/// vectors and outputs are valid for `p.n` vectors of `cols` values and `rows` results.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn rows(w: &[f32], rows: usize, cols: usize, p: Panel, prefetch: bool) {
    let dist = AHEAD_BYTES.div_ceil(16 * cols.max(1));
    let end16 = cols / 16 * 16;
    // Long rows go in blocks of columns, each block met by every group of vectors before the
    // next, so that the block's 4 rows stay in L1 for all of them and for both passes (4 rows
    // of 2048 floats alone fill it; going group by group over whole rows read them from L2 per
    // group). Each group's accumulators wait in `held` between blocks (the first block starts
    // them at zero in registers, so `held` needs no clearing).
    let block = if cols > COLS_IN_L1 {
        COL_BLOCK
    } else {
        end16.max(16)
    };
    let groups = p.n.div_ceil(GROUP_AVX2);
    let mut held = vec![[[[_mm256_setzero_ps(); GROUP_AVX2]; 4]; 2]; groups];
    let mut r = 0;
    while r + 4 <= rows {
        let ahead = (r + 4 * dist) * cols;
        let wr = w.as_ptr().add(r * cols);
        let mut c0 = 0;
        while c0 < end16 {
            let c1 = (c0 + block).min(end16);
            let mut v0 = 0;
            for (part, acc) in held.iter_mut().enumerate() {
                let nv = group(p.n - v0, GROUP_AVX2);
                let pf = prefetch.then_some(Ahead {
                    p: w.as_ptr().add(ahead.min(w.len())),
                    left: w.len() - ahead.min(w.len()),
                    part,
                    parts: groups,
                });
                let x = p.x.add(v0 * p.ldx);
                match nv {
                    3 => span::<3>(acc, wr, cols, x, p.ldx, c0..c1, pf),
                    2 => span::<2>(acc, wr, cols, x, p.ldx, c0..c1, pf),
                    _ => span::<1>(acc, wr, cols, x, p.ldx, c0..c1, pf),
                }
                v0 += nv;
            }
            c0 = c1;
        }
        let mut v0 = 0;
        for acc in held.iter_mut() {
            let nv = group(p.n - v0, GROUP_AVX2);
            let (x, out) = (p.x.add(v0 * p.ldx), p.out.add(v0 * p.ldo + r));
            match nv {
                3 => finish::<3>(acc, wr, cols, x, p.ldx, out, p.ldo),
                2 => finish::<2>(acc, wr, cols, x, p.ldx, out, p.ldo),
                _ => finish::<1>(acc, wr, cols, x, p.ldx, out, p.ldo),
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

/// The 4-row block further on that a group of vectors prefetches while it multiplies this
/// one: the groups of one block share the work (`part` of `parts`), so that the block streams
/// in during all of them, not only the first.
#[derive(Clone, Copy)]
pub(crate) struct Ahead<T> {
    pub p: *const T,
    /// Values from `p` to the end of the matrix.
    pub left: usize,
    pub part: usize,
    pub parts: usize,
}

/// The prefetches of one pass over a 4-row block: at the 16-column steps that are this
/// group's share (`(j / 16) % parts == part`), four cache lines of the block ahead, so that
/// the steps of all groups together cover it by the end of this one. The share is counted, not divided out: an integer division beside each
/// step's 12 multiply-adds slowed the 8-vector product by a fifth even in cache.
struct Prefetches {
    ahead: Ahead<f32>,
    /// Steps until this group's next share (0: this step).
    wait: usize,
}

impl Prefetches {
    /// For a pass whose first step is at column `j0`.
    fn new(pf: Option<Ahead<f32>>, j0: usize) -> Option<Self> {
        pf.map(|ahead| {
            let wait = (ahead.part + ahead.parts - (j0 / 16) % ahead.parts) % ahead.parts;
            Prefetches { ahead, wait }
        })
    }
}

/// The prefetches due at the 16-column step `j` of a pass, if any.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn prefetch4(pf: &mut Option<Prefetches>, j: usize) {
    if let Some(Prefetches { ahead, wait }) = pf {
        if *wait == 0 {
            *wait = ahead.parts;
            if 4 * j + 48 < ahead.left {
                let a = ahead.p.add(4 * j);
                _mm_prefetch(a.cast::<i8>(), _MM_HINT_T1);
                _mm_prefetch(a.add(16).cast::<i8>(), _MM_HINT_T1);
                _mm_prefetch(a.add(32).cast::<i8>(), _MM_HINT_T1);
                _mm_prefetch(a.add(48).cast::<i8>(), _MM_HINT_T1);
            }
        }
        *wait -= 1;
    }
}

/// The `a` and `b` accumulators of 4 rows × a group of up to 3 vectors (the first `V` used).
type Acc = [[[__m256; GROUP_AVX2]; 4]; 2];

/// Columns `span` (whole 16-column steps) of 4 rows at `w` × `V` vectors into `acc` (taken as
/// zero when the span starts at column 0): the `a` chains in a first pass over them, the `b`
/// chains in a second. Spans called in ascending order give each chain its chunks in the
/// one-vector kernel's order: a at 0, 16, 32, …, b at 8, 24, 40, ….
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn span<const V: usize>(
    acc: &mut Acc,
    w: *const f32,
    cols: usize,
    x: *const f32,
    ldx: usize,
    span: std::ops::Range<usize>,
    pf: Option<Ahead<f32>>,
) {
    // one chain set at a time, so that its 12 accumulators stay in the 16 registers
    let (mut j, mut pf) = (span.start, Prefetches::new(pf, span.start));
    let fresh = span.start == 0;
    let mut a = load::<V>(&acc[0], fresh);
    while j < span.end {
        prefetch4(&mut pf, j);
        step::<V>(&mut a, w, cols, x, ldx, j);
        j += 16;
    }
    store::<V>(&mut acc[0], &a);
    let mut b = load::<V>(&acc[1], fresh);
    let mut j = span.start + 8;
    while j < span.end {
        step::<V>(&mut b, w, cols, x, ldx, j);
        j += 16;
    }
    store::<V>(&mut acc[1], &b);
}

/// One chain set's first `V` accumulators of each row, into locals (registers); zeros when
/// `fresh` (a row's first span: what `held` holds then is a previous block's).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load<const V: usize>(held: &[[__m256; GROUP_AVX2]; 4], fresh: bool) -> [[__m256; V]; 4] {
    let mut acc = [[_mm256_setzero_ps(); V]; 4];
    if !fresh {
        for (acc, held) in acc.iter_mut().zip(held) {
            acc.copy_from_slice(&held[..V]);
        }
    }
    acc
}

/// The locals back.
#[inline(always)]
fn store<const V: usize>(held: &mut [[__m256; GROUP_AVX2]; 4], acc: &[[__m256; V]; 4]) {
    for k in 0..4 {
        held[k][..V].copy_from_slice(&acc[k]);
    }
}

/// After the last span: the lone last chunk of 8 (when `cols % 16 >= 8`, the end of `a`'s
/// chain), then each (row, vector)'s `hsum(a + b)` and its columns past the last multiple of 8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish<const V: usize>(
    acc: &mut Acc,
    w: *const f32,
    cols: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
) {
    let end16 = cols / 16 * 16;
    if end16 == 0 {
        // no span ran: what `held` holds is the previous rows'
        *acc = [[[_mm256_setzero_ps(); GROUP_AVX2]; 4]; 2];
    }
    let mut tail = end16;
    if end16 + 8 <= cols {
        let mut a = load::<V>(&acc[0], false);
        step::<V>(&mut a, w, cols, x, ldx, end16);
        store::<V>(&mut acc[0], &a);
        tail += 8;
    }
    let [a, b] = acc;
    for (k, (a, b)) in a.iter().zip(b.iter()).enumerate() {
        for v in 0..V {
            let (wr, xr) = (w.add(k * cols), x.add(v * ldx));
            let mut s = hsum(_mm256_add_ps(a[v], b[v]));
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
    let dist = AHEAD_BYTES.div_ceil(16 * cols.max(1));
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
    let (mut j, mut pf) = (0, Prefetches::new(pf, 0));
    while j < end16 {
        prefetch4(&mut pf, j);
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

//! int8 matrices repacked at load for the SIMD kernels: rows in the lanes of a register.
//!
//! A row-major int8 matrix makes each (row, vector) sum sit across the lanes of a register,
//! so every group of every row ends in a horizontal reduction, which is most of the work once
//! a batch has made the products compute-bound. Packed, the lanes are rows instead: a block of
//! 16 rows is stored 4 columns at a time (`line k` = rows 0..16 × columns `4k..4k + 4`, 64
//! bytes), so one `vpdpbusd` of a line with 4 of the vector's bytes broadcast adds 4 products
//! into each of 16 rows' int32 sums. After a group's `gs / 4` lines those sums are the group's
//! exact integer dot products, 16 rows at once, and the f32 part is plain lane-wise arithmetic.
//!
//! Exactness, and the same bits on every CPU. Each output is, in this order,
//! `acc = 0; for g in groups: acc = acc + (isum_g as f32) * (sw[r, g] * xs[g])` with every
//! operation rounded on its own (no FMA): the arithmetic of the portable row-major kernel
//! ([`crate::q8_rows_portable`]) and of the usual int8 reader's formula (FORMATS.md §1.3). The
//! int32 sums are exact whatever the order, so AVX-512 VNNI, AVX2, the portable loop over the
//! packed lines, any batch, block or thread count give the same bits.
//!
//! Layout: block `b` (rows `16b..16b + 16`, the last one zero-padded) holds lines `b * cols / 4
//! ..`, and per group 16 scales: the same bytes as the row-major matrix, so a memory-bound
//! product reads no more than before. Weights must be in ±127, as every writer of FORMATS.md
//! §1.3 makes them (`max|w| / 127` scales); a stray −128 is read as −127.

#[cfg(target_arch = "x86_64")]
use crate::dispatch::{simd_level, Simd};

/// Rows per block: the int32 lanes of a 512-bit register.
pub const BLOCK_ROWS: usize = 16;

/// 64 bytes aligned to a cache line: 16 rows × 4 columns of weights.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// 16 lanes aligned to a cache line: one block's scales for one group.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Lanes<T: Copy>([T; BLOCK_ROWS]);

/// A row-major int8 matrix to pack: `q` (`rows * cols` values) and its group scales `s`
/// (`rows * cols / gs`, row after row).
#[derive(Clone, Copy, Debug)]
pub struct Q8Source<'a> {
    /// The values, row-major.
    pub q: &'a [i8],
    /// The scales, `cols / gs` per row.
    pub s: &'a [f32],
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Group size.
    pub gs: usize,
}

impl Q8Source<'_> {
    /// Whether the packed kernels take this group size: a positive multiple of 4 dividing
    /// `cols`.
    fn packable(&self) -> bool {
        self.gs > 0 && self.gs.is_multiple_of(4) && self.cols.is_multiple_of(self.gs)
    }

    /// The 64-byte units the packed matrix takes: (lines, scales).
    fn units(&self) -> (usize, usize) {
        let blocks = self.rows.div_ceil(BLOCK_ROWS);
        (blocks * self.cols / 4, blocks * (self.cols / self.gs))
    }
}

/// The memory packed matrices live in: anonymous pages with the transparent-huge-page hint,
/// as the engine maps its weights, since a product streams them and 4 KiB pages cost a TLB
/// miss every 64 lines. One region holds all the matrices of a model
/// ([`PackedQ8::pack_all`]): every matrix of a 110M model is smaller than a 2 MiB page, so
/// regions of their own got no huge pages at all, and a memory-bound product ran at 60–80%
/// of the speed (Zen 4, AVX2).
struct Region(memmap2::MmapMut);

impl Region {
    /// A zeroed region of `units` 64-byte units.
    fn new(units: usize) -> Option<Region> {
        let map = memmap2::MmapOptions::new()
            .len((64 * units).max(1))
            .map_anon()
            .ok()?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage); // a hint; fine if refused
        Some(Region(map))
    }

    /// Unit `i` onwards, as `T`s (64 bytes each, 64-aligned).
    #[inline]
    fn at<T>(&self, i: usize) -> *const T {
        debug_assert!(std::mem::size_of::<T>() == 64 && 64 * i <= self.0.len());
        // SAFETY: in bounds (the callers' units lie inside the region).
        unsafe { self.0.as_ptr().add(64 * i).cast() }
    }
}

/// An int8 matrix `(rows, cols)` in groups of `gs` (a multiple of 4), packed (module doc): its
/// lines from unit `lines_at` of its region, its per-group scales from `scales_at`.
pub struct PackedQ8 {
    region: std::sync::Arc<Region>,
    lines_at: usize,
    scales_at: usize,
    rows: usize,
    cols: usize,
    gs: usize,
}

impl std::fmt::Debug for PackedQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedQ8({}x{}, gs {})", self.rows, self.cols, self.gs)
    }
}

impl PackedQ8 {
    /// Packs the row-major int8 matrix `q` (`rows * cols`) with its scales `s` (`rows * cols /
    /// gs`); `None` when `gs` is not a positive multiple of 4 dividing `cols` (such matrices
    /// stay row-major and run the portable kernel) or no memory could be mapped.
    pub fn new(q: &[i8], s: &[f32], rows: usize, cols: usize, gs: usize) -> Option<PackedQ8> {
        let src = Q8Source {
            q,
            s,
            rows,
            cols,
            gs,
        };
        Self::pack_all(&[src]).pop().flatten()
    }

    /// Packs every matrix of `srcs` into one region, in parallel on the current rayon pool:
    /// `None` for each one [`PackedQ8::new`] would refuse, and for all when the region could
    /// not be mapped.
    pub fn pack_all(srcs: &[Q8Source<'_>]) -> Vec<Option<PackedQ8>> {
        use rayon::prelude::*;
        let sizes: Vec<(usize, usize)> = srcs
            .iter()
            .map(|m| if m.packable() { m.units() } else { (0, 0) })
            .collect();
        let total = sizes.iter().map(|(l, s)| l + s).sum();
        let Some(mut region) = Region::new(total) else {
            return srcs.iter().map(|_| None).collect();
        };
        // each matrix's units, split off the region in order, filled in parallel
        let units: &mut [[u8; 64]] = {
            let bytes = &mut region.0[..64 * total];
            // SAFETY: whole 64-byte units of the region; [u8; 64] has alignment 1.
            unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), total) }
        };
        let mut rest = units;
        let mut jobs = Vec::with_capacity(srcs.len());
        for (src, &(nl, ns)) in srcs.iter().zip(&sizes) {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(nl + ns);
            rest = tail;
            if src.packable() {
                jobs.push((src, mine.split_at_mut(nl)));
            }
        }
        jobs.into_par_iter().for_each(|(src, (lines, scales))| {
            // SAFETY: the units are 64-byte aligned (the region is page-aligned and every unit
            // 64 bytes), and every byte pattern is a valid Line or Lanes<f32>.
            let (lines, scales) = unsafe {
                (
                    std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len()),
                    std::slice::from_raw_parts_mut(scales.as_mut_ptr().cast(), scales.len()),
                )
            };
            fill(src, lines, scales)
        });
        let region = std::sync::Arc::new(region);
        let mut at = 0;
        srcs.iter()
            .zip(sizes)
            .map(|(src, (nl, ns))| {
                let here = at;
                at += nl + ns;
                src.packable().then(|| PackedQ8 {
                    region: region.clone(),
                    lines_at: here,
                    scales_at: here + nl,
                    rows: src.rows,
                    cols: src.cols,
                    gs: src.gs,
                })
            })
            .collect()
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Group size.
    pub fn group_size(&self) -> usize {
        self.gs
    }

    /// Bytes of one row: values and scales.
    pub(crate) fn row_bytes(&self) -> usize {
        self.cols + 4 * (self.cols / self.gs)
    }

    /// The lines (module doc).
    #[inline]
    fn lines(&self) -> &[Line] {
        let n = self.rows.div_ceil(BLOCK_ROWS) * self.cols / 4;
        // SAFETY: filled by `pack_all`: aligned, n lines long, read-only from then on.
        unsafe { std::slice::from_raw_parts(self.region.at(self.lines_at), n) }
    }

    /// The scales: block `b`'s for group `g` at `b * cols / gs + g`.
    #[inline]
    fn scales(&self) -> &[Lanes<f32>] {
        let n = self.rows.div_ceil(BLOCK_ROWS) * (self.cols / self.gs);
        // SAFETY: as `lines`.
        unsafe { std::slice::from_raw_parts(self.region.at(self.scales_at), n) }
    }

    /// Weight `(r, j)`.
    #[inline]
    fn at(&self, r: usize, j: usize) -> i8 {
        let (b, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
        self.lines()[b * self.cols / 4 + j / 4].0[4 * lane + j % 4]
    }

    /// Row `r` dequantized (`q × scale`) into `out` (`cols` long).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let (b, lane, ng) = (r / BLOCK_ROWS, r % BLOCK_ROWS, self.cols / self.gs);
        for (j, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = self.at(r, j) as f32 * self.scales()[b * ng + j / self.gs].0[lane];
        }
    }
}

/// Packs `src` into its `lines` and `scales` (zeroed: the last block's missing rows stay 0).
fn fill(src: &Q8Source<'_>, lines: &mut [Line], scales: &mut [Lanes<f32>]) {
    let (rows, cols, gs) = (src.rows, src.cols, src.gs);
    assert!(src.q.len() >= rows * cols && src.s.len() >= rows * (cols / gs));
    let (steps, ng) = (cols / 4, cols / gs);
    for r in 0..rows {
        let (b, lane) = (r / BLOCK_ROWS, r % BLOCK_ROWS);
        let row = &src.q[r * cols..(r + 1) * cols];
        for (k, four) in row.chunks_exact(4).enumerate() {
            let line = &mut lines[b * steps + k].0[4 * lane..4 * lane + 4];
            for (o, &w) in line.iter_mut().zip(four) {
                *o = w.max(-127);
            }
        }
        for g in 0..ng {
            scales[b * ng + g].0[lane] = src.s[r * ng + g];
        }
    }
}

/// Quantized input vectors of a packed product: vector `v`'s int8 values at `q + v * ldq`,
/// its group scales at `s + v * lds`.
#[derive(Clone, Copy)]
pub(crate) struct Xq {
    pub q: *const i8,
    pub ldq: usize,
    pub s: *const f32,
    pub lds: usize,
    pub n: usize,
}

/// Rows `r0..r1` (`r0` a multiple of [`BLOCK_ROWS`]) of `m` times every vector of `x`, row
/// `r` of vector `v` into `out[v * ldo + r - r0]`, by the best kernel for this CPU.
///
/// # Safety
/// `x` holds `x.n` vectors of `m.cols()` values and `m.cols() / gs` scales; `out` is valid for
/// those writes and no one else touches them meanwhile.
pub(crate) unsafe fn product(m: &PackedQ8, r0: usize, r1: usize, x: Xq, out: *mut f32, ldo: usize) {
    debug_assert!(r0.is_multiple_of(BLOCK_ROWS) && r1 <= m.rows);
    if r0 >= r1 || x.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: the CPU has the features (detected); the caller's promise for the rest.
        Simd::Vnni => return vnni::product(m, r0, r1, x, out, ldo),
        Simd::Avx2 => return avx2::product(m, r0, r1, x, out, ldo),
        Simd::None => {}
    }
    portable(m, r0, r1, x, out, ldo)
}

/// The packed product in plain Rust: the reference the SIMD kernels equal bit for bit.
///
/// # Safety
/// As [`product`].
pub(crate) unsafe fn portable(
    m: &PackedQ8,
    r0: usize,
    r1: usize,
    x: Xq,
    out: *mut f32,
    ldo: usize,
) {
    let (steps, ng, spg) = (m.cols / 4, m.cols / m.gs, m.gs / 4);
    for b in r0 / BLOCK_ROWS..r1.div_ceil(BLOCK_ROWS) {
        let valid = (r1 - b * BLOCK_ROWS).min(BLOCK_ROWS);
        for v in 0..x.n {
            let xq = std::slice::from_raw_parts(x.q.add(v * x.ldq), m.cols);
            let mut acc = [0.0f32; BLOCK_ROWS];
            for g in 0..ng {
                let mut isum = [0i32; BLOCK_ROWS];
                for k in g * spg..(g + 1) * spg {
                    let line = &m.lines()[b * steps + k].0;
                    for (lane, s) in isum.iter_mut().enumerate() {
                        for t in 0..4 {
                            *s += line[4 * lane + t] as i32 * xq[4 * k + t] as i32;
                        }
                    }
                }
                let (sw, sx) = (&m.scales()[b * ng + g].0, *x.s.add(v * x.lds + g));
                for lane in 0..BLOCK_ROWS {
                    acc[lane] += isum[lane] as f32 * (sw[lane] * sx);
                }
            }
            let o = out.add(v * ldo + b * BLOCK_ROWS - r0);
            std::ptr::copy_nonoverlapping(acc.as_ptr(), o, valid);
        }
    }
}

/// How the vectors are grouped and how many blocks share a pass, per register budget: the
/// next group of vectors when `left` remain and a group takes at most `max` (groups made even,
/// 7 at 5 a group go as 4 + 3), and the blocks per pass for a group of `v` vectors.
#[cfg(target_arch = "x86_64")]
fn vector_group(left: usize, max: usize) -> usize {
    left.div_ceil(left.div_ceil(max))
}

/// AVX-512 VNNI, 512-bit: `vpdpbusd` takes the unsigned operand from the vector (`x ^ 0x80`,
/// i.e. `x + 128`, 1..=255 for x in ±127) and the signed one from the weights, so a lane gets
/// `Σ (x + 128)·w = Σ x·w + 128·Σ w`; a second `vpdpbusd` per line with 128 in every byte
/// sums `128·Σ w` beside it (shared by all the vectors of a pass), taken off once per group. `RB` blocks × `V` vectors of accumulators (int32 and f32), at most 28 registers.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{vector_group, PackedQ8, Xq, BLOCK_ROWS};
    use std::arch::x86_64::*;

    /// As [`super::product`].
    ///
    /// # Safety
    /// As [`super::product`], and AVX-512F + VNNI present.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn product(
        m: &PackedQ8,
        r0: usize,
        r1: usize,
        x: Xq,
        out: *mut f32,
        ldo: usize,
    ) {
        let (b0, b1) = (r0 / BLOCK_ROWS, r1.div_ceil(BLOCK_ROWS));
        let mut v0 = 0;
        while v0 < x.n {
            let nv = vector_group(x.n - v0, 5);
            let xv = Xq {
                q: x.q.add(v0 * x.ldq),
                s: x.s.add(v0 * x.lds),
                n: nv,
                ..x
            };
            let o = out.add(v0 * ldo);
            let mut b = b0;
            while b < b1 {
                let left = b1 - b;
                let p = Pass {
                    m,
                    b,
                    r0,
                    r1,
                    x: xv,
                    out: o,
                    ldo,
                    prefetch: v0 == 0,
                };
                b += match (nv, left) {
                    (1, _) => one_vector(p),
                    (2, 4..) => pass::<4, 2>(p),
                    (2, 2..) => pass::<2, 2>(p),
                    (2, _) => pass::<1, 2>(p),
                    (3, 2..) => pass::<2, 3>(p),
                    (3, _) => pass::<1, 3>(p),
                    (4, 2..) => pass::<2, 4>(p),
                    (4, _) => pass::<1, 4>(p),
                    (_, 2..) => pass::<2, 5>(p),
                    (_, _) => pass::<1, 5>(p),
                };
            }
            v0 += nv;
        }
    }

    /// One register block: `RB` blocks from block `b` × the `V` vectors of `x`.
    #[derive(Clone, Copy)]
    struct Pass<'a> {
        m: &'a PackedQ8,
        b: usize,
        r0: usize,
        r1: usize,
        x: Xq,
        out: *mut f32,
        ldo: usize,
        /// Whether to prefetch the next pass's blocks (the first group of vectors does; the
        /// others find them in cache).
        prefetch: bool,
    }

    /// One vector, block `p.b`: the block's lines are one contiguous stream, read in order
    /// with a prefetch 8 KiB ahead (a product of one vector is bound by memory), into four
    /// int32 partial sums per group (exact in any order) so that `vpdpbusd`'s latency hides.
    /// Returns 1, the blocks done.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn one_vector(p: Pass<'_>) -> usize {
        const AHEAD: usize = 128;
        let m = p.m;
        let (steps, ng, spg) = (m.cols / 4, m.cols / m.gs, m.gs / 4);
        let bias = _mm512_set1_epi8(-128);
        let end = m.lines().len();
        let at = p.b * steps;
        let line = |k: usize| {
            if at + k + AHEAD < end {
                _mm_prefetch(m.lines().as_ptr().add(at + k + AHEAD).cast(), _MM_HINT_T0);
            }
            let four = p.x.q.add(4 * k).cast::<i32>().read_unaligned();
            let xb = _mm512_xor_si512(_mm512_set1_epi32(four), bias);
            (xb, _mm512_load_si512(m.lines().as_ptr().add(at + k).cast()))
        };
        let mut facc = _mm512_setzero_ps();
        for g in 0..ng {
            let mut a = [_mm512_setzero_si512(); 4];
            let mut c = [_mm512_setzero_si512(); 2];
            let (mut k, kend) = (g * spg, (g + 1) * spg);
            while k + 4 <= kend {
                for (i, a) in a.iter_mut().enumerate() {
                    let (xb, w) = line(k + i);
                    *a = _mm512_dpbusd_epi32(*a, xb, w);
                    c[i % 2] = _mm512_dpbusd_epi32(c[i % 2], bias, w);
                }
                k += 4;
            }
            while k < kend {
                let (xb, w) = line(k);
                a[0] = _mm512_dpbusd_epi32(a[0], xb, w);
                c[0] = _mm512_dpbusd_epi32(c[0], bias, w);
                k += 1;
            }
            let sum = _mm512_add_epi32(_mm512_add_epi32(a[0], a[1]), _mm512_add_epi32(a[2], a[3]));
            let corr = _mm512_add_epi32(c[0], c[1]);
            let sw = _mm512_load_ps(m.scales().as_ptr().add(p.b * ng + g).cast());
            let isum = _mm512_sub_epi32(sum, corr);
            let sc = _mm512_mul_ps(sw, _mm512_set1_ps(*p.x.s.add(g)));
            facc = _mm512_add_ps(facc, _mm512_mul_ps(_mm512_cvtepi32_ps(isum), sc));
        }
        let row = p.b * BLOCK_ROWS;
        let valid = (p.r1 - row).min(BLOCK_ROWS);
        let mask: __mmask16 = ((1u32 << valid) - 1) as u16;
        _mm512_mask_storeu_ps(p.out.add(row - p.r0), mask, facc);
        1
    }

    /// Returns `RB`, the blocks done.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn pass<const RB: usize, const V: usize>(p: Pass<'_>) -> usize {
        let m = p.m;
        let (steps, ng, spg) = (m.cols / 4, m.cols / m.gs, m.gs / 4);
        let bias = _mm512_set1_epi8(-128);
        let lines = m.lines().as_ptr().add(p.b * steps);
        // a pass reads RB blocks from memory: the hardware prefetchers lose the stream at each
        // block, so the pass asks for the next RB blocks, line by line as it goes
        let prefetch = p.prefetch && (p.b + 2 * RB) * steps <= m.lines().len();
        let mut facc = [[_mm512_setzero_ps(); V]; RB];
        for g in 0..ng {
            let mut iacc = [[_mm512_setzero_si512(); V]; RB];
            let mut corr = [_mm512_setzero_si512(); RB];
            for k in g * spg..(g + 1) * spg {
                let mut xb = [bias; V];
                for (v, xb) in xb.iter_mut().enumerate() {
                    let four =
                        p.x.q
                            .add(v * p.x.ldq + 4 * k)
                            .cast::<i32>()
                            .read_unaligned();
                    *xb = _mm512_xor_si512(_mm512_set1_epi32(four), bias);
                }
                for (rb, (iacc, corr)) in iacc.iter_mut().zip(corr.iter_mut()).enumerate() {
                    if prefetch {
                        _mm_prefetch(lines.add((RB + rb) * steps + k).cast(), _MM_HINT_T0);
                    }
                    let w = _mm512_load_si512(lines.add(rb * steps + k).cast());
                    *corr = _mm512_dpbusd_epi32(*corr, bias, w);
                    for v in 0..V {
                        iacc[v] = _mm512_dpbusd_epi32(iacc[v], xb[v], w);
                    }
                }
            }
            for (rb, (facc, iacc)) in facc.iter_mut().zip(&iacc).enumerate() {
                let at = (p.b + rb) * ng + g;
                let sw = _mm512_load_ps(m.scales().as_ptr().add(at).cast());
                for v in 0..V {
                    let isum = _mm512_sub_epi32(iacc[v], corr[rb]);
                    let sc = _mm512_mul_ps(sw, _mm512_set1_ps(*p.x.s.add(v * p.x.lds + g)));
                    let term = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), sc);
                    facc[v] = _mm512_add_ps(facc[v], term);
                }
            }
        }
        for (rb, facc) in facc.iter().enumerate() {
            let row = (p.b + rb) * BLOCK_ROWS;
            let valid = (p.r1 - row).min(BLOCK_ROWS);
            let mask: __mmask16 = ((1u32 << valid) - 1) as u16;
            for (v, &acc) in facc.iter().enumerate() {
                let o = p.out.add(v * p.ldo + row - p.r0);
                _mm512_mask_storeu_ps(o, mask, acc);
            }
        }
        RB
    }
}

/// AVX2: a block is two 256-bit halves of 8 rows. Without VNNI the products go through
/// `vpmaddubsw` (unsigned × signed bytes to 16-bit pair sums) and `vpmaddwd` (pairs to int32);
/// the sign of x moves onto w (`vpsignb`) so that |x| is the unsigned side, and |x|, |w| ≤ 127
/// keep the pair sums (≤ 32,258) exact. `RB` blocks × `V` vectors, 16 registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{vector_group, PackedQ8, Xq, BLOCK_ROWS};
    use std::arch::x86_64::*;

    /// As [`super::product`].
    ///
    /// # Safety
    /// As [`super::product`], and AVX2 + FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product(
        m: &PackedQ8,
        r0: usize,
        r1: usize,
        x: Xq,
        out: *mut f32,
        ldo: usize,
    ) {
        let (b0, b1) = (r0 / BLOCK_ROWS, r1.div_ceil(BLOCK_ROWS));
        let mut v0 = 0;
        while v0 < x.n {
            let nv = vector_group(x.n - v0, 2);
            let xv = Xq {
                q: x.q.add(v0 * x.ldq),
                s: x.s.add(v0 * x.lds),
                n: nv,
                ..x
            };
            let o = out.add(v0 * ldo);
            let mut b = b0;
            while b < b1 {
                let p = (m, b, r0, r1, xv, o, ldo);
                b += match nv {
                    1 => one_vector(p),
                    _ => pass::<1, 2>(p),
                };
            }
            v0 += nv;
        }
    }

    type Pass<'a> = (&'a PackedQ8, usize, usize, usize, Xq, *mut f32, usize);

    /// One vector, block `b`: as the VNNI kernel's, the block's lines are read as one stream
    /// with a prefetch 8 KiB ahead (without it, two blocks at a time or not, the hardware
    /// prefetchers left a memory-sized product at 60% of the row-major kernel's speed on
    /// Zen 4), into two partial int32 sums per half (exact in any order). Returns 1.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn one_vector(p: Pass<'_>) -> usize {
        const AHEAD: usize = 128;
        let (m, b, r0, r1, x, out, _) = p;
        let (steps, ng, spg) = (m.cols / 4, m.cols / m.gs, m.gs / 4);
        let ones = _mm256_set1_epi16(1);
        let end = m.lines().len();
        let at = b * steps;
        let lines = m.lines().as_ptr().cast::<i8>();
        // the products of line k with the vector's columns 4k..4k + 4: (rows 0..8, rows 8..16)
        let line = |k: usize| {
            if at + k + AHEAD < end {
                _mm_prefetch(lines.add((at + k + AHEAD) * 64), _MM_HINT_T0);
            }
            let xb = _mm256_set1_epi32(x.q.add(4 * k).cast::<i32>().read_unaligned());
            let ax = _mm256_sign_epi8(xb, xb);
            let l = lines.add((at + k) * 64);
            let half = |h: usize| {
                let w = _mm256_load_si256(l.add(32 * h).cast());
                _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, xb)), ones)
            };
            (half(0), half(1))
        };
        let mut facc = [_mm256_setzero_ps(); 2];
        for g in 0..ng {
            let mut a = [_mm256_setzero_si256(); 4];
            let (mut k, kend) = (g * spg, (g + 1) * spg);
            while k + 2 <= kend {
                for i in 0..2 {
                    let (lo, hi) = line(k + i);
                    a[2 * i] = _mm256_add_epi32(a[2 * i], lo);
                    a[2 * i + 1] = _mm256_add_epi32(a[2 * i + 1], hi);
                }
                k += 2;
            }
            if k < kend {
                let (lo, hi) = line(k);
                a[0] = _mm256_add_epi32(a[0], lo);
                a[1] = _mm256_add_epi32(a[1], hi);
            }
            let sw = m.scales().as_ptr().add(b * ng + g).cast::<f32>();
            let sx = _mm256_set1_ps(*x.s.add(g));
            for (h, facc) in facc.iter_mut().enumerate() {
                let isum = _mm256_add_epi32(a[h], a[h + 2]);
                let sc = _mm256_mul_ps(_mm256_load_ps(sw.add(8 * h)), sx);
                *facc = _mm256_add_ps(*facc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), sc));
            }
        }
        let row = b * BLOCK_ROWS;
        let valid = (r1 - row).min(BLOCK_ROWS);
        let mut lanes = [0.0f32; BLOCK_ROWS];
        _mm256_storeu_ps(lanes.as_mut_ptr(), facc[0]);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), facc[1]);
        std::ptr::copy_nonoverlapping(lanes.as_ptr(), out.add(row - r0), valid);
        1
    }

    /// `RB` blocks from block `b` × the `V` vectors of `x`; returns `RB`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pass<const RB: usize, const V: usize>(p: Pass<'_>) -> usize {
        let (m, b, r0, r1, x, out, ldo) = p;
        let (steps, ng, spg) = (m.cols / 4, m.cols / m.gs, m.gs / 4);
        let ones = _mm256_set1_epi16(1);
        let lines = m.lines().as_ptr().add(b * steps).cast::<i8>();
        // [block][half][vector]
        let mut facc = [[[_mm256_setzero_ps(); V]; 2]; RB];
        for g in 0..ng {
            let mut iacc = [[[_mm256_setzero_si256(); V]; 2]; RB];
            for k in g * spg..(g + 1) * spg {
                let mut xb = [_mm256_setzero_si256(); V];
                let mut ax = [_mm256_setzero_si256(); V];
                for v in 0..V {
                    let four = x.q.add(v * x.ldq + 4 * k).cast::<i32>().read_unaligned();
                    xb[v] = _mm256_set1_epi32(four);
                    ax[v] = _mm256_sign_epi8(xb[v], xb[v]);
                }
                for (rb, iacc) in iacc.iter_mut().enumerate() {
                    let line = lines.add((rb * steps + k) * 64);
                    for (half, iacc) in iacc.iter_mut().enumerate() {
                        let w = _mm256_load_si256(line.add(32 * half).cast());
                        for v in 0..V {
                            let p16 = _mm256_maddubs_epi16(ax[v], _mm256_sign_epi8(w, xb[v]));
                            iacc[v] = _mm256_add_epi32(iacc[v], _mm256_madd_epi16(p16, ones));
                        }
                    }
                }
            }
            for (rb, (facc, iacc)) in facc.iter_mut().zip(&iacc).enumerate() {
                let sw = m.scales().as_ptr().add((b + rb) * ng + g).cast::<f32>();
                for (half, (facc, iacc)) in facc.iter_mut().zip(iacc).enumerate() {
                    let sw = _mm256_load_ps(sw.add(8 * half));
                    for v in 0..V {
                        let sc = _mm256_mul_ps(sw, _mm256_set1_ps(*x.s.add(v * x.lds + g)));
                        let term = _mm256_mul_ps(_mm256_cvtepi32_ps(iacc[v]), sc);
                        facc[v] = _mm256_add_ps(facc[v], term);
                    }
                }
            }
        }
        for (rb, facc) in facc.iter().enumerate() {
            let row = (b + rb) * BLOCK_ROWS;
            let valid = (r1 - row).min(BLOCK_ROWS);
            for (v, (lo, hi)) in facc[0].iter().zip(&facc[1]).enumerate() {
                let mut lanes = [0.0f32; BLOCK_ROWS];
                _mm256_storeu_ps(lanes.as_mut_ptr(), *lo);
                _mm256_storeu_ps(lanes.as_mut_ptr().add(8), *hi);
                let o = out.add(v * ldo + row - r0);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), o, valid);
            }
        }
        RB
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::{q8_rows_portable, QuantVec};

    /// Mixed values: the extremes ±127, zeros, and scales of different sizes.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * [1.0, 1e-3, 37.0, 0.0][(s >> 20) as usize % 4]
            })
            .collect()
    }

    /// Every packed kernel this CPU runs, for every row range, vector count and group size,
    /// equals the portable row-major kernel bit for bit.
    #[test]
    fn packed_kernels_equal_the_row_major_kernel_exactly() {
        type Kernel = unsafe fn(&PackedQ8, usize, usize, Xq, *mut f32, usize);
        let mut kernels: Vec<(&str, Kernel)> = vec![("portable", portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if simd_level() != Simd::None {
                kernels.push(("avx2", |m, a, b, x, o, l| unsafe {
                    avx2::product(m, a, b, x, o, l)
                }));
            }
            if simd_level() == Simd::Vnni {
                kernels.push(("vnni", |m, a, b, x, o, l| unsafe {
                    vnni::product(m, a, b, x, o, l)
                }));
            }
        }
        for (rows, cols, gs) in [
            (1, 4, 4),
            (17, 64, 32),
            (40, 288, 32),
            (130, 768, 64),
            (33, 172, 4),
        ] {
            let wq = QuantVec::new(&values(rows * cols, cols as u64), gs);
            let m = PackedQ8::new(&wq.q, &wq.s, rows, cols, gs).unwrap();
            for n in [1, 2, 3, 5, 7, 11] {
                let xs = values(n * cols, (n * 7 + rows) as u64);
                let xq: Vec<QuantVec> = xs
                    .chunks_exact(cols)
                    .map(|x| QuantVec::new(x, gs))
                    .collect();
                let q: Vec<i8> = xq.iter().flat_map(|x| x.q.clone()).collect();
                let s: Vec<f32> = xq.iter().flat_map(|x| x.s.clone()).collect();
                let ng = cols / gs;
                let x = Xq {
                    q: q.as_ptr(),
                    ldq: cols,
                    s: s.as_ptr(),
                    lds: ng,
                    n,
                };
                for r0 in (0..rows).step_by(BLOCK_ROWS) {
                    for r1 in [rows, (r0 + BLOCK_ROWS).min(rows), (r0 + 1).min(rows)] {
                        let mut want = vec![0.0f32; n * rows];
                        for (v, o) in want.chunks_exact_mut(rows).enumerate() {
                            let w = &wq.q[r0 * cols..];
                            let sw = &wq.s[r0 * ng..];
                            q8_rows_portable(
                                w,
                                sw,
                                cols,
                                gs,
                                &xq[v].q,
                                &xq[v].s,
                                &mut o[..r1 - r0],
                            );
                        }
                        for (name, kernel) in &kernels {
                            let mut got = vec![0.0f32; n * rows];
                            // SAFETY: features checked; x holds n vectors; got n * rows floats.
                            unsafe { kernel(&m, r0, r1, x, got.as_mut_ptr(), rows) };
                            let same = want
                                .iter()
                                .zip(&got)
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{name} {rows}x{cols} gs {gs} n {n} rows {r0}..{r1}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packing_keeps_every_value_and_refuses_odd_groups() {
        let (rows, cols, gs) = (19, 12, 4);
        let wq = QuantVec::new(&values(rows * cols, 3), gs);
        let m = PackedQ8::new(&wq.q, &wq.s, rows, cols, gs).unwrap();
        let mut row = vec![0.0; cols];
        for r in 0..rows {
            m.row_into(r, &mut row);
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v, wq.q[r * cols + j] as f32 * wq.s[r * cols / gs + j / gs]);
            }
        }
        assert!(PackedQ8::new(&wq.q, &wq.s, rows, cols, 2).is_none());
        assert!(PackedQ8::new(&wq.q, &wq.s, rows, cols, 0).is_none());
    }

    /// Several matrices in one region, one of them refused in the middle: each keeps its own
    /// values and scales.
    #[test]
    fn matrices_packed_together_keep_their_own_values() {
        let shapes = [(19, 12, 4), (5, 6, 2), (33, 64, 32), (1, 8, 8)];
        let quants: Vec<QuantVec> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(r, c, gs))| QuantVec::new(&values(r * c, 10 + i as u64), gs))
            .collect();
        let srcs: Vec<Q8Source<'_>> = shapes
            .iter()
            .zip(&quants)
            .map(|(&(rows, cols, gs), wq)| Q8Source {
                q: &wq.q,
                s: &wq.s,
                rows,
                cols,
                gs,
            })
            .collect();
        let packed = PackedQ8::pack_all(&srcs);
        assert!(packed[1].is_none());
        for (src, p) in srcs.iter().zip(&packed).filter(|(s, _)| s.gs != 2) {
            let p = p.as_ref().expect("packable");
            let mut row = vec![0.0; src.cols];
            for r in 0..src.rows {
                p.row_into(r, &mut row);
                for (j, v) in row.iter().enumerate() {
                    let ng = src.cols / src.gs;
                    assert_eq!(
                        *v,
                        src.q[r * src.cols + j] as f32 * src.s[r * ng + j / src.gs]
                    );
                }
            }
        }
    }
}

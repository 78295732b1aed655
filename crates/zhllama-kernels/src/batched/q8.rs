//! int8 rows × several quantized vectors, register-blocked: each 32-byte chunk of weights is
//! loaded once and multiplied by every vector of a small group.
//!
//! Exactness. The one-vector kernel ([`crate::int8`]) sums each group of a row in int32
//! lanes (lane `i` takes bytes `4i..4i+4` of every 32-byte chunk of the group), converts the
//! lanes to f32 and adds them into an 8-lane f32 accumulator with one FMA by
//! `sw[row, g] * xs[g]`, group after group, then `hsum`. The int32 sums are exact whatever
//! the order; the f32 part here is the same per (row, vector): same lanes, same scale product,
//! groups in order, same `hsum`. Every row is computed on its own, so a block of rows may be
//! of any height.
//!
//! Generated twice, as the one-vector kernel: AVX2 (`vpmaddubsw` + `vpmaddwd`, 16 registers:
//! 4 rows × 2 vectors) and AVX-512 VNNI (`vpdpbusd`, 256-bit; AVX-512VL gives 32 registers:
//! 4 rows × 3 vectors). They differ only in how a chunk's int32 lanes are summed
//! ([`chunk_avx2`], [`chunk_vnni`]); the lanes come out the same, exactly.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Where one call's quantized vectors and outputs are: vector `v`'s int8 values at
/// `q + v * ldq`, its group scales at `s + v * lds`, its row `r` result at `out + v * ldo + r`.
#[derive(Clone, Copy)]
pub(crate) struct QPanel {
    pub q: *const i8,
    pub ldq: usize,
    pub s: *const f32,
    pub lds: usize,
    pub n: usize,
    pub out: *mut f32,
    pub ldo: usize,
}

#[cfg(target_arch = "x86_64")]
macro_rules! q8_multi_kernel {
    ($modname:ident, $features:literal, $chunk:ident, $group:literal) => {
        pub(crate) mod $modname {
            use super::QPanel;
            use crate::batched::f32::{group, Ahead};
            use std::arch::x86_64::*;

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

            /// Rows `0..rows` of `w` (int8, `cols` wide, scales `sw`, groups of `gs`, a
            /// multiple of 32) times every vector of `p`. With `prefetch` the first vector
            /// group prefetches ~8 KiB ahead (`w` may run on past `rows` for that).
            ///
            /// # Safety
            /// The CPU has the features; `w` holds `rows * cols` values and `sw` their
            /// scales; `p` is valid for `p.n` vectors of `cols` values and `rows` results.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn rows(
                w: &[i8],
                sw: &[f32],
                rows: usize,
                cols: usize,
                gs: usize,
                p: QPanel,
                prefetch: bool,
            ) {
                let ng = cols / gs;
                let dist = 8192usize.div_ceil(4 * cols.max(1));
                let mut r = 0;
                while r < rows {
                    // blocks of 4 rows, then the last rows one by one
                    let h = if rows - r >= 4 { 4 } else { 1 };
                    let (mut v0, mut part, parts) = (0, 0, p.n.div_ceil($group));
                    while v0 < p.n {
                        let nv = group(p.n - v0, $group);
                        let ahead = (r + 4 * dist) * cols;
                        let pf = (prefetch && ahead + 4 * cols <= w.len()).then(|| Ahead {
                            p: w.as_ptr().add(ahead),
                            left: w.len() - ahead,
                            part,
                            parts,
                        });
                        part += 1;
                        let b = Block {
                            w: w.as_ptr().add(r * cols),
                            sw: sw.as_ptr().add(r * ng),
                            cols,
                            gs,
                            q: p.q.add(v0 * p.ldq),
                            ldq: p.ldq,
                            s: p.s.add(v0 * p.lds),
                            lds: p.lds,
                            out: p.out.add(v0 * p.ldo + r),
                            ldo: p.ldo,
                            pf,
                        };
                        match (h, nv) {
                            (4, 3) => block::<4, 3>(b),
                            (4, 2) => block::<4, 2>(b),
                            (4, _) => block::<4, 1>(b),
                            (_, 3) => block::<1, 3>(b),
                            (_, 2) => block::<1, 2>(b),
                            _ => block::<1, 1>(b),
                        }
                        v0 += nv;
                    }
                    r += h;
                }
            }

            #[derive(Clone, Copy)]
            struct Block {
                w: *const i8,
                sw: *const f32,
                cols: usize,
                gs: usize,
                q: *const i8,
                ldq: usize,
                s: *const f32,
                lds: usize,
                out: *mut f32,
                ldo: usize,
                pf: Option<Ahead<i8>>,
            }

            /// `R` rows × `V` vectors.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn block<const R: usize, const V: usize>(b: Block) {
                let (cols, gs) = (b.cols, b.gs);
                let ng = cols / gs;
                let mut acc = [[_mm256_setzero_ps(); V]; R];
                for g in 0..ng {
                    let mut iacc = [[_mm256_setzero_si256(); V]; R];
                    let mut corr = [_mm256_setzero_si256(); R];
                    let mut j = g * gs;
                    while j < (g + 1) * gs {
                        // this group's share of the block ahead (see `Ahead`)
                        if let Some(Ahead { p, part, parts, .. }) = b.pf {
                            if (j / 32) % parts == part {
                                _mm_prefetch(p.add(R * j), _MM_HINT_T0);
                                _mm_prefetch(p.add(R * j + 64), _MM_HINT_T0);
                            }
                        }
                        super::$chunk::<R, V>(&mut iacc, &mut corr, b.w, cols, b.q, b.ldq, j);
                        j += 32;
                    }
                    for (k, (acc, iacc)) in acc.iter_mut().zip(&iacc).enumerate() {
                        let swg = *b.sw.add(k * ng + g);
                        for v in 0..V {
                            // the group's exact int32 lanes, as the one-vector kernel has them
                            let lanes = _mm256_sub_epi32(iacc[v], corr[k]);
                            let sc = _mm256_set1_ps(swg * *b.s.add(v * b.lds + g));
                            acc[v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), sc, acc[v]);
                        }
                    }
                }
                for (k, acc) in acc.iter().enumerate() {
                    for v in 0..V {
                        *b.out.add(v * b.ldo + k) = hsum(acc[v]);
                    }
                }
            }
        }
    };
}

/// One 32-byte chunk (columns `j..j + 32`) of `R` rows × `V` vectors into the int32 lanes,
/// AVX2: the sign of x moves onto w (`vpsignb`) so that |x| is the unsigned side of
/// `vpmaddubsw`, as in the one-vector kernel (|x|, |w| ≤ 127 keep its 16-bit pair sums exact);
/// `corr` stays 0.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2<const R: usize, const V: usize>(
    iacc: &mut [[__m256i; V]; R],
    _corr: &mut [__m256i; R],
    w: *const i8,
    cols: usize,
    q: *const i8,
    ldq: usize,
    j: usize,
) {
    let mut xv = [_mm256_setzero_si256(); V];
    let mut ax = [_mm256_setzero_si256(); V];
    for v in 0..V {
        xv[v] = _mm256_loadu_si256(q.add(v * ldq + j).cast());
        ax[v] = _mm256_sign_epi8(xv[v], xv[v]);
    }
    for (k, iacc) in iacc.iter_mut().enumerate() {
        let wv = _mm256_loadu_si256(w.add(k * cols + j).cast());
        for v in 0..V {
            iacc[v] = crate::int8::step_avx2(iacc[v], ax[v], _mm256_sign_epi8(wv, xv[v]));
        }
    }
}

/// As [`chunk_avx2`] with VNNI, without a `vpsignb` per row and vector: `vpdpbusd` takes
/// `x + 128` (0..=255, `x ^ 0x80`) as the unsigned side, and `corr` gathers `128 · w` lane by
/// lane once per row for all vectors; `iacc - corr` is then exactly the int32 lanes of the
/// one-vector kernel (no 16-bit step, so nothing saturates).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
unsafe fn chunk_vnni<const R: usize, const V: usize>(
    iacc: &mut [[__m256i; V]; R],
    corr: &mut [__m256i; R],
    w: *const i8,
    cols: usize,
    q: *const i8,
    ldq: usize,
    j: usize,
) {
    let bias = _mm256_set1_epi8(-128);
    let mut xu = [_mm256_setzero_si256(); V];
    for (v, xu) in xu.iter_mut().enumerate() {
        *xu = _mm256_xor_si256(_mm256_loadu_si256(q.add(v * ldq + j).cast()), bias);
    }
    for (k, (iacc, corr)) in iacc.iter_mut().zip(corr.iter_mut()).enumerate() {
        let wv = _mm256_loadu_si256(w.add(k * cols + j).cast());
        *corr = _mm256_dpbusd_epi32(*corr, bias, wv);
        for v in 0..V {
            iacc[v] = _mm256_dpbusd_epi32(iacc[v], xu[v], wv);
        }
    }
}

#[cfg(target_arch = "x86_64")]
q8_multi_kernel!(avx2, "avx2,fma", chunk_avx2, 2);
#[cfg(target_arch = "x86_64")]
q8_multi_kernel!(vnni, "avx2,fma,avx512vnni,avx512vl", chunk_vnni, 3);

/// AVX-512 VNNI with 512-bit registers: one register holds two rows' int32 lanes (row `k` in
/// lanes 0–7, row `k + 1` in 8–15) for one vector: the weights load as two rows' 32-byte chunks
/// side by side, the vector's chunk twice. Each half is then exactly the 8 lanes of the 256-bit
/// kernel, so the per-group conversion, scale (`sw[k, g] * xs[g]`, the same f32 product lane by
/// lane) and FMA work on two rows in one instruction each, and a row's final `hsum` reads its
/// half. 4 rows × up to 4 vectors; the rows after the last multiple of 4 go to [`vnni::rows`].
#[cfg(target_arch = "x86_64")]
pub(crate) mod vnni512 {
    use super::{vnni, QPanel};
    use crate::batched::f32::{group, Ahead};
    use std::arch::x86_64::*;

    const GROUP: usize = 4;

    /// As [`vnni::rows`].
    ///
    /// # Safety
    /// As [`vnni::rows`], and AVX-512F present.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
    pub(crate) unsafe fn rows(
        w: &[i8],
        sw: &[f32],
        rows: usize,
        cols: usize,
        gs: usize,
        p: QPanel,
        prefetch: bool,
    ) {
        let ng = cols / gs;
        let dist = 8192usize.div_ceil(4 * cols.max(1));
        let mut r = 0;
        while r + 4 <= rows {
            let (mut v0, mut part, parts) = (0, 0, p.n.div_ceil(GROUP));
            while v0 < p.n {
                let nv = group(p.n - v0, GROUP);
                let ahead = (r + 4 * dist) * cols;
                let pf = (prefetch && ahead + 4 * cols <= w.len()).then(|| Ahead {
                    p: w.as_ptr().add(ahead),
                    left: w.len() - ahead,
                    part,
                    parts,
                });
                part += 1;
                let b = Block {
                    w: w.as_ptr().add(r * cols),
                    sw: sw.as_ptr().add(r * ng),
                    cols,
                    gs,
                    q: p.q.add(v0 * p.ldq),
                    ldq: p.ldq,
                    s: p.s.add(v0 * p.lds),
                    lds: p.lds,
                    out: p.out.add(v0 * p.ldo + r),
                    ldo: p.ldo,
                    pf,
                };
                match nv {
                    4 => block::<4>(b),
                    3 => block::<3>(b),
                    2 => block::<2>(b),
                    _ => block::<1>(b),
                }
                v0 += nv;
            }
            r += 4;
        }
        if r < rows {
            let tail = QPanel {
                out: p.out.add(r),
                ..p
            };
            vnni::rows(
                &w[r * cols..],
                &sw[r * ng..],
                rows - r,
                cols,
                gs,
                tail,
                false,
            );
        }
    }

    #[derive(Clone, Copy)]
    struct Block {
        w: *const i8,
        sw: *const f32,
        cols: usize,
        gs: usize,
        q: *const i8,
        ldq: usize,
        s: *const f32,
        lds: usize,
        out: *mut f32,
        ldo: usize,
        pf: Option<Ahead<i8>>,
    }

    /// Two rows' 32-byte chunks at column `j`, side by side.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
    unsafe fn two_rows(w: *const i8, cols: usize, j: usize) -> __m512i {
        let lo = _mm256_loadu_si256(w.add(j).cast());
        let hi = _mm256_loadu_si256(w.add(cols + j).cast());
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }

    /// 4 rows (2 pairs) × `V` vectors.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni,avx512vl")]
    unsafe fn block<const V: usize>(b: Block) {
        let (cols, gs) = (b.cols, b.gs);
        let ng = cols / gs;
        let bias = _mm512_set1_epi32(0x8080_8080u32 as i32);
        let mut acc = [[_mm512_setzero_ps(); V]; 2];
        for g in 0..ng {
            let mut iacc = [[_mm512_setzero_si512(); V]; 2];
            let mut corr = [_mm512_setzero_si512(); 2];
            let mut j = g * gs;
            while j < (g + 1) * gs {
                if let Some(Ahead { p, part, parts, .. }) = b.pf {
                    if (j / 32) % parts == part {
                        _mm_prefetch(p.add(4 * j), _MM_HINT_T0);
                        _mm_prefetch(p.add(4 * j + 64), _MM_HINT_T0);
                    }
                }
                let mut xu = [_mm512_setzero_si512(); V];
                for (v, xu) in xu.iter_mut().enumerate() {
                    let x = _mm256_loadu_si256(b.q.add(v * b.ldq + j).cast());
                    *xu = _mm512_xor_si512(_mm512_broadcast_i64x4(x), bias);
                }
                for (pair, (iacc, corr)) in iacc.iter_mut().zip(corr.iter_mut()).enumerate() {
                    let wv = two_rows(b.w.add(2 * pair * cols), cols, j);
                    *corr = _mm512_dpbusd_epi32(*corr, bias, wv);
                    for v in 0..V {
                        iacc[v] = _mm512_dpbusd_epi32(iacc[v], xu[v], wv);
                    }
                }
                j += 32;
            }
            for (pair, (acc, iacc)) in acc.iter_mut().zip(&iacc).enumerate() {
                let k = 2 * pair;
                let lo = _mm256_set1_ps(*b.sw.add(k * ng + g));
                let hi = _mm256_set1_ps(*b.sw.add((k + 1) * ng + g));
                let swv = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                    _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                    _mm256_castps_pd(hi),
                ));
                for v in 0..V {
                    let lanes = _mm512_sub_epi32(iacc[v], corr[pair]);
                    let sc = _mm512_mul_ps(swv, _mm512_set1_ps(*b.s.add(v * b.lds + g)));
                    acc[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), sc, acc[v]);
                }
            }
        }
        for (pair, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                let lo = _mm512_castps512_ps256(acc);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc)));
                *b.out.add(v * b.ldo + 2 * pair) = hsum(lo);
                *b.out.add(v * b.ldo + 2 * pair + 1) = hsum(hi);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        crate::float::avx2::hsum(v)
    }
}

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
//! 4 rows × 3 vectors).

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
    ($modname:ident, $features:literal, $step:path, $group:literal) => {
        pub(crate) mod $modname {
            use super::QPanel;
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
                    let mut v0 = 0;
                    while v0 < p.n {
                        let nv = crate::batched::f32::group(p.n - v0, $group);
                        let ahead = (r + 4 * dist) * cols;
                        let pf = (prefetch && v0 == 0 && ahead + 4 * cols <= w.len())
                            .then(|| w.as_ptr().add(ahead));
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
                pf: Option<*const i8>,
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
                    let mut j = g * gs;
                    while j < (g + 1) * gs {
                        if let Some(pf) = b.pf {
                            _mm_prefetch(pf.add(R * j), _MM_HINT_T0);
                            _mm_prefetch(pf.add(R * j + 64), _MM_HINT_T0);
                        }
                        let mut xv = [_mm256_setzero_si256(); V];
                        let mut ax = [_mm256_setzero_si256(); V];
                        for v in 0..V {
                            xv[v] = _mm256_loadu_si256(b.q.add(v * b.ldq + j).cast());
                            ax[v] = _mm256_sign_epi8(xv[v], xv[v]);
                        }
                        for (k, iacc) in iacc.iter_mut().enumerate() {
                            let wv = _mm256_loadu_si256(b.w.add(k * cols + j).cast());
                            for v in 0..V {
                                iacc[v] = $step(iacc[v], ax[v], _mm256_sign_epi8(wv, xv[v]));
                            }
                        }
                        j += 32;
                    }
                    for (k, (acc, iacc)) in acc.iter_mut().zip(&iacc).enumerate() {
                        let swg = *b.sw.add(k * ng + g);
                        for v in 0..V {
                            let sc = _mm256_set1_ps(swg * *b.s.add(v * b.lds + g));
                            acc[v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[v]), sc, acc[v]);
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

#[cfg(target_arch = "x86_64")]
q8_multi_kernel!(avx2, "avx2,fma", crate::int8::step_avx2, 2);
#[cfg(target_arch = "x86_64")]
q8_multi_kernel!(
    vnni,
    "avx2,fma,avx512vnni,avx512vl",
    crate::int8::step_vnni,
    3
);

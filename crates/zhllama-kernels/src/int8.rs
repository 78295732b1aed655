//! int8 matrices (FORMATS.md §1.3): group quantization, and the row kernel that multiplies an
//! int8 matrix by a quantized vector. The input vector is quantized once per product in the
//! matrix's groups (`scale = max|x| / 127`), each group's int8 × int8 products are summed
//! exactly in int32, then scaled by both scales into an f32 sum. On x86-64 the row kernel is
//! chosen at run time: AVX-512 VNNI (`vpdpbusd`, 256-bit form) or AVX2 (`vpmaddubsw` +
//! `vpmaddwd`), both for group sizes that are multiples of 32; anything else runs a portable
//! loop that LLVM vectorises.

use crate::dispatch::{simd_level, Simd};

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
        quantize_activations(x, gs, &mut q, &mut s);
        QuantVec { q, s, gs }
    }
}

/// [`quantize_groups`] with `f32::round`, as activations are quantized: compiled for AVX2
/// where the CPU has it, so that LLVM rounds, divides and clamps 8 lanes at a time instead of
/// calling libm's `roundf` per value (its lowering, `trunc(v + copysign(0.5 - ulp/4, v))`, is
/// exact: the same bytes).
pub(crate) fn quantize_activations(x: &[f32], gs: usize, q: &mut [i8], s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::have_avx2_fma() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(x: &[f32], gs: usize, q: &mut [i8], s: &mut [f32]) {
            quantize_groups(x, gs, q, s, f32::round)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked).
        return unsafe { avx2(x, gs, q, s) };
    }
    quantize_groups(x, gs, q, s, f32::round)
}

/// Group quantization: `scale = max|v| / 127`, `q = round(v / scale)` clamped to ±127; a
/// group of zeros gets scale 0 and zeros. `round` is the rounding rule: activations use
/// `f32::round` (C's `round`, as the usual int8 reader), weights quantized at load
/// `f32::round_ties_even` (torch.round, as the exporter), so both give the exporter's bytes.
#[inline]
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
    assert!(x.gs == gs);
    q8_rows_of(w, sw, cols, gs, &x.q, &x.s, out)
}

/// [`q8_rows`] with the quantized vector as its values `xq` and group scales `xs`.
pub(crate) fn q8_rows_of(
    w: &[i8],
    sw: &[f32],
    cols: usize,
    gs: usize,
    xq: &[i8],
    xs: &[f32],
    out: &mut [f32],
) {
    let rows = out.len();
    assert!(gs > 0 && cols.is_multiple_of(gs));
    assert!(w.len() >= rows * cols && sw.len() >= rows * (cols / gs));
    assert!(xq.len() >= cols && xs.len() >= cols / gs);
    #[cfg(target_arch = "x86_64")]
    if gs.is_multiple_of(32) {
        match simd_level() {
            Simd::Vnni => {
                // SAFETY: the CPU has AVX2, FMA, AVX-512 VNNI and VL (checked); bounds and
                // gs % 32 == 0 asserted above.
                unsafe { q8_vnni::q8_rows(w, sw, cols, gs, xq, xs, out) };
                return;
            }
            Simd::Avx2 => {
                // SAFETY: the CPU has AVX2 and FMA (checked); bounds asserted above.
                unsafe { q8_avx2::q8_rows(w, sw, cols, gs, xq, xs, out) };
                return;
            }
            Simd::None => {}
        }
    }
    q8_rows_portable(w, sw, cols, gs, xq, xs, out)
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

/// The int8 row kernel for x86-64, generated twice: with AVX2 only (`vpmaddubsw` then
/// `vpmaddwd`) and with AVX-512 VNNI (`vpdpbusd`, one instruction for both). Both multiply
/// unsigned by signed bytes, so the sign of x moves onto w (`vpsignb`) and |x| is the unsigned
/// side: |x| ≤ 127 and |w| ≤ 127 keep the 16-bit pair sums of `vpmaddubsw` (≤ 32,258) exact.
/// Four rows share each load of x; each group's int32 sums become f32 and are scaled with one
/// FMA per row; the horizontal sum happens once per row.
#[cfg(target_arch = "x86_64")]
macro_rules! q8_kernel {
    ($modname:ident, $features:literal, $step:ident) => {
        pub(crate) mod $modname {
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
pub(crate) unsafe fn step_avx2(
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
pub(crate) unsafe fn step_vnni(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MatRef;

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

    /// The AVX2-compiled activation quantizer gives libm `roundf`'s bytes, halves included
    /// (127 in a group makes its scale 1, so the halves reach the rounding as they are).
    #[test]
    fn activation_quantizer_rounds_as_roundf() {
        let mut x: Vec<f32> = vec![127.0, -0.5, 0.5, 1.5, 2.5, -2.5, 126.5, -126.5];
        x.extend((0..8).map(|i| i as f32 + 0.49999997));
        x.extend((0..4096).map(|i| ((i * 7919) % 2003) as f32 / 13.0 - 77.0));
        for gs in [8, 32, 64] {
            let n = x.len() / gs * gs;
            let (mut q1, mut s1) = (vec![0i8; n], vec![0f32; n / gs]);
            let (mut q2, mut s2) = (q1.clone(), s1.clone());
            quantize_groups(&x[..n], gs, &mut q1, &mut s1, roundf);
            quantize_activations(&x[..n], gs, &mut q2, &mut s2);
            assert_eq!((q1, s1), (q2, s2), "gs {gs}");
        }
    }

    /// C's roundf, called through libm (not inlined), the reference.
    fn roundf(v: f32) -> f32 {
        std::hint::black_box(v).round()
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
}

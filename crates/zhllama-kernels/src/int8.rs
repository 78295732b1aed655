//! int8 matrices (FORMATS.md §1.3): group quantization, and the row-major kernel that
//! multiplies an int8 matrix by a quantized vector. The input vector is quantized once per
//! product in the matrix's groups (`scale = max|x| / 127`), each group's int8 × int8 products
//! are summed exactly in int32, then scaled by both scales into an f32 sum, group after group.
//! This row-major kernel is portable (LLVM vectorises its integer dot products) and defines the
//! arithmetic; the SIMD kernels work on matrices packed at load ([`crate::packed`]) and give
//! its bits exactly.

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

    /// The int8 kernel, row-major and packed, against the scalar reference: with unit scales
    /// the f32 result is the int32 sum, exactly (sums stay far below 2^24, where f32 holds
    /// every integer).
    #[test]
    fn int8_kernels_equal_the_int32_reference_exactly() {
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
            let mut got = vec![0.0f32; rows];
            q8_rows(&w, &sw, cols, gs, &x, &mut got);
            assert_eq!(got, want, "row-major {rows}x{cols} gs {gs}");
            if let Some(p) = crate::PackedQ8::new(&w, &sw, rows, cols, gs) {
                let mut got = vec![0.0f32; rows];
                let xp = crate::packed::Xq {
                    q: x.q.as_ptr(),
                    ldq: cols,
                    s: x.s.as_ptr(),
                    lds: ng,
                    n: 1,
                };
                // SAFETY: x holds one vector of cols values; got holds rows floats.
                unsafe { crate::packed::product(&p, 0, rows, xp, got.as_mut_ptr(), rows) };
                assert_eq!(got, want, "packed {rows}x{cols} gs {gs}");
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

//! The per-position vector operations of the forward pass: RMSNorm, softmax, and one
//! attention head over the KV cache.

#[cfg(target_arch = "x86_64")]
use crate::dispatch::have_avx2_fma;
use crate::float::dot;

/// RMSNorm: `out = w ⊙ x / sqrt(mean(x²) + 1e-5)` (serial sum, as run.c).
#[inline]
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32]) {
    let mut ss = 0.0f32;
    for &v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += 1e-5;
    let ss = 1.0 / ss.sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (ss * v);
    }
}

/// RMSNorm in place.
#[inline]
pub fn rmsnorm_inplace(x: &mut [f32], w: &[f32]) {
    let mut ss = 0.0f32;
    for &v in x.iter() {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += 1e-5;
    let ss = 1.0 / ss.sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = g * (ss * *v);
    }
}

/// One attention head at one position, over the KV cache: `att[t] = q·k_t / sqrt(hs)` for
/// `t < att.len()`, softmax, then `out = Σ_t att[t] · v_t`. Key and value `t` start at
/// `t * stride` in `keys` / `values` (the cache's row of position t, offset to this head).
///
/// On AVX2+FMA the scores and the weighted sum are vector loops over the head's values inlined
/// here (a call per position to a dot product and a scalar sum over v cost a fifth of an
/// int8 110M token); the softmax stays as it is (libm `exp`), like run.c's.
#[inline]
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    att: &mut [f32],
    out: &mut [f32],
) {
    let (hs, n) = (q.len(), att.len());
    assert!(out.len() == hs && (n == 0 || (n - 1) * stride + hs <= keys.len().min(values.len())));
    let scale = (hs as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if have_avx2_fma() && hs % 8 == 0 {
        // SAFETY: AVX2 and FMA are present; every row read is in bounds (asserted above).
        unsafe { avx2::scores(q, keys, stride, scale, att) };
        softmax(att);
        // SAFETY: as above.
        unsafe { avx2::weighted_sum(att, values, stride, out) };
        return;
    }
    for (t, a) in att.iter_mut().enumerate() {
        *a = dot(q, &keys[t * stride..t * stride + hs]) / scale;
    }
    softmax(att);
    out.fill(0.0);
    for (t, &a) in att.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&values[t * stride..t * stride + hs]) {
            *o += a * v;
        }
    }
}

/// Softmax in place (subtracting the max first).
#[inline]
pub fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mut max = x[0];
    for &v in &x[1..] {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::float::avx2::dot;
    use std::arch::x86_64::*;

    /// Cache rows of later positions are requested this many positions ahead: a head's rows
    /// are a few cache lines each, a cache row (kv_dim floats) apart, which the hardware
    /// prefetchers do not follow across pages.
    const AHEAD: usize = 8;

    /// Prefetches the `n` floats at `p` (one request per cache line). Never dereferences `p`,
    /// which may lie past the end of the cache.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn prefetch_row(p: *const f32, n: usize) {
        for i in (0..n).step_by(16) {
            _mm_prefetch(p.wrapping_add(i).cast::<i8>(), _MM_HINT_T0);
        }
    }

    /// `att[t] = q·k_t / scale`, k_t the `q.len()` values at `t * stride` (the same dot
    /// product as everywhere, inlined here instead of called once per position).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, att: &mut [f32]) {
        let hs = q.len();
        for (t, a) in att.iter_mut().enumerate() {
            prefetch_row(keys.as_ptr().wrapping_add((t + AHEAD) * stride), hs);
            *a = dot(q, &keys[t * stride..t * stride + hs]) / scale;
        }
    }

    /// `out = Σ_t att[t] · v_t`, v_t the `out.len()` values at `t * stride`; `out.len() % 8 == 0`.
    /// Up to 64 outputs stay in registers across all positions.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(att: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        for c0 in (0..out.len()).step_by(64) {
            let lanes = (out.len() - c0).min(64) / 8;
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, &a) in att.iter().enumerate() {
                let v = values.as_ptr().add(t * stride + c0);
                prefetch_row(v.wrapping_add(AHEAD * stride), lanes * 8);
                let a = _mm256_set1_ps(a);
                for (i, acc) in acc.iter_mut().enumerate().take(lanes) {
                    *acc = _mm256_fmadd_ps(a, _mm256_loadu_ps(v.add(8 * i)), *acc);
                }
            }
            for (i, acc) in acc.iter().enumerate().take(lanes) {
                _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * i), *acc);
            }
        }
    }
}

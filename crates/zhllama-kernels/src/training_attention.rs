//! Causal self-attention forward and backward for training on a CPU, for small head sizes.
//!
//! Why it exists: torch's CPU flash-attention kernel spends most of its time on per-block
//! overhead when heads are small (the `tiny` preset has 8-dim heads), so attention was two
//! thirds of a `tiny` training step. Here each score costs a few vector instructions: per
//! query row, the scores against all earlier keys are one contiguous row of at most `seq`
//! floats, computed from keys stored transposed (`(head_dim, seq)`) so that the loop runs over
//! keys; the softmax uses an exp that vectorises; weighted sums of value (or key) rows run over
//! the rows in their natural layout, four keys at a time into independent accumulators. On
//! x86-64 the same code is compiled a second time with AVX2+FMA and chosen at run time.
//!
//! Layout, all row-major f32: `q`, `out`, `dout`, `dq` are `(batch, heads, seq, head_dim)`;
//! `k`, `v`, `dk`, `dv` are `(batch, kv_heads, seq, head_dim)` (grouped-query attention: query
//! head `h` reads kv head `h / (heads / kv_heads)`); `lse` is `(batch, heads, seq)`, the log of
//! each row's softmax denominator, saved by the forward for the backward (which recomputes the
//! probabilities from it instead of storing them, as flash attention does).
//! Scores are scaled by `1/sqrt(head_dim)`; position `i` attends to positions `0..=i`.

use rayon::prelude::*;

use crate::dispatch::{simd_level, Simd};

/// A shape that does not fit the call, or a buffer of the wrong size: the caller's mistake,
/// returned as a value (the Python binding raises it as `ValueError`), never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

type Result<T> = std::result::Result<T, ShapeError>;

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; divides `heads`.
    pub kv_heads: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// Values per head.
    pub head_dim: usize,
}

impl AttentionShape {
    fn check(&self, named: &[(&str, usize, usize)]) -> Result<()> {
        let s = self;
        if s.batch == 0 || s.heads == 0 || s.kv_heads == 0 || s.seq == 0 || s.head_dim == 0 {
            return Err(ShapeError(format!(
                "attention: every size must be positive: {s:?}"
            )));
        }
        if !s.heads.is_multiple_of(s.kv_heads) {
            return Err(ShapeError(format!(
                "attention: kv_heads={} does not divide heads={}",
                s.kv_heads, s.heads
            )));
        }
        for &(name, got, want) in named {
            if got != want {
                return Err(ShapeError(format!(
                    "attention: {name} holds {got} values, the shape {s:?} needs {want}"
                )));
            }
        }
        Ok(())
    }

    /// The forward's arrays have this shape's sizes.
    fn check_forward(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        out: &[f32],
        lse: &[f32],
    ) -> Result<()> {
        self.check(&[
            ("q", q.len(), self.q_len()),
            ("k", k.len(), self.kv_len()),
            ("v", v.len(), self.kv_len()),
            ("out", out.len(), self.q_len()),
            ("lse", lse.len(), self.lse_len()),
        ])
    }

    fn q_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.head_dim
    }

    fn kv_len(&self) -> usize {
        self.batch * self.kv_heads * self.seq * self.head_dim
    }

    fn lse_len(&self) -> usize {
        self.batch * self.heads * self.seq
    }

    /// Query heads per kv head.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Values in one (sequence, head) block of `q` or `k`: `seq * head_dim`.
    fn block(&self) -> usize {
        self.seq * self.head_dim
    }
}

/// Forward: fills `out` and `lse`. Work is split over (sequence, kv head) pairs on `pool`.
pub fn causal_attention_forward(
    pool: &rayon::ThreadPool,
    shape: AttentionShape,
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: &mut [f32],
    lse: &mut [f32],
) -> Result<()> {
    let s = shape;
    s.check_forward((q, k, v), out, lse)?;
    let (g, blk) = (s.group(), s.block());
    let simd = simd_level();
    pool.install(|| {
        // One task per (sequence, kv head): its query heads are contiguous in q/out/lse.
        out.par_chunks_mut(g * blk)
            .zip(lse.par_chunks_mut(g * s.seq))
            .enumerate()
            .for_each(|(unit, (out, lse))| {
                let kv = unit * blk..(unit + 1) * blk;
                let qs = &q[unit * g * blk..(unit + 1) * g * blk];
                let (k, v) = (&k[kv.clone()], &v[kv]);
                #[cfg(target_arch = "x86_64")]
                if simd != Simd::None {
                    // SAFETY: simd_level() found AVX2 and FMA on this CPU.
                    return unsafe { avx2::forward_unit(s, qs, k, v, out, lse) };
                }
                forward_unit::<Separate>(s, qs, k, v, out, lse)
            });
    });
    Ok(())
}

/// Backward: from the forward's inputs, `out`, `lse` and the gradient `dout`, writes `dq`, `dk`
/// and `dv` (overwritten, not accumulated).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward(
    pool: &rayon::ThreadPool,
    shape: AttentionShape,
    (q, k, v): (&[f32], &[f32], &[f32]),
    (out, lse, dout): (&[f32], &[f32], &[f32]),
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) -> Result<()> {
    let s = shape;
    s.check_forward((q, k, v), out, lse)?;
    s.check(&[
        ("dout", dout.len(), s.q_len()),
        ("dq", dq.len(), s.q_len()),
        ("dk", dk.len(), s.kv_len()),
        ("dv", dv.len(), s.kv_len()),
    ])?;
    let (g, blk) = (s.group(), s.block());
    let simd = simd_level();
    pool.install(|| {
        // One task per (sequence, kv head), so that a task owns its dk/dv blocks outright.
        dq.par_chunks_mut(g * blk)
            .zip(dk.par_chunks_mut(blk))
            .zip(dv.par_chunks_mut(blk))
            .enumerate()
            .for_each(|(unit, ((dq, dk), dv))| {
                let qr = unit * g * blk..(unit + 1) * g * blk;
                let kv = unit * blk..(unit + 1) * blk;
                let lr = unit * g * s.seq..(unit + 1) * g * s.seq;
                let ins = Unit {
                    q: &q[qr.clone()],
                    k: &k[kv.clone()],
                    v: &v[kv],
                    out: &out[qr.clone()],
                    dout: &dout[qr],
                    lse: &lse[lr],
                };
                #[cfg(target_arch = "x86_64")]
                if simd != Simd::None {
                    // SAFETY: simd_level() found AVX2 and FMA on this CPU.
                    return unsafe { avx2::backward_unit(s, &ins, dq, dk, dv) };
                }
                backward_unit::<Separate>(s, &ins, dq, dk, dv)
            });
    });
    Ok(())
}

/// The per-task kernels compiled a second time with AVX2+FMA enabled, chosen at run time (the
/// inner loops are plain Rust over 8-lane blocks; the attribute lets LLVM use 8-wide FMAs).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn forward_unit(
        s: AttentionShape,
        qs: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        super::forward_unit::<Fused>(s, qs, k, v, out, lse)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn backward_unit(
        s: AttentionShape,
        u: &Unit<'_>,
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        super::backward_unit::<Fused>(s, u, dq, dk, dv)
    }
}

/// How `a * b + c` is computed: fused where the CPU has FMA (one instruction, one rounding),
/// as a multiply then an add elsewhere (`f32::mul_add` without FMA hardware is a libm call).
/// Rust never fuses `a * b + c` on its own, so the kernels say which they want.
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// Fused multiply-add, for code compiled with the `fma` target feature.
struct Fused;
/// Multiply, then add.
struct Separate;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Keys per block: one 8-lane vector. Rows of scores and transposed keys are padded to a
/// multiple of it (with zeros), so every inner loop runs over whole blocks.
const L: usize = 8;

/// Per-task scratch: k (and for the backward v) of one (sequence, kv head) transposed to
/// `(head_dim, tp)` with `tp` = seq rounded up to a block, and two score rows.
struct Scratch {
    tp: usize,
    kt: Vec<f32>,
    vt: Vec<f32>,
    p: Vec<f32>,
    g: Vec<f32>,
}

impl Scratch {
    fn new(s: AttentionShape, k: &[f32], v: Option<&[f32]>) -> Scratch {
        let tp = s.seq.div_ceil(L) * L;
        let kt = transposed(k, s.seq, s.head_dim, tp);
        let vt = v.map_or_else(Vec::new, |v| transposed(v, s.seq, s.head_dim, tp));
        Scratch {
            tp,
            kt,
            vt,
            p: vec![0.0; tp],
            g: vec![0.0; tp],
        }
    }
}

/// `(rows, cols)` row-major → `(cols, stride)` row-major, zero beyond `rows` in each row.
fn transposed(src: &[f32], rows: usize, cols: usize, stride: usize) -> Vec<f32> {
    let mut dst = vec![0.0f32; cols * stride];
    for (r, row) in src.chunks_exact(cols).take(rows).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            dst[c * stride + r] = x;
        }
    }
    dst
}

/// `out[j] = scale * Σ_d x[d] · mt[d][j]` over the blocks of `out`; `mt` is `(x.len(), tp)`.
/// Four blocks at a time: four independent accumulators keep the FMA units busy instead of
/// waiting on one chain of `x.len()` dependent multiply-adds.
#[inline(always)]
fn scores<M: MulAdd>(x: &[f32], mt: &[f32], tp: usize, scale: f32, out: &mut [f32]) {
    let done = out.len() / (4 * L) * 4 * L;
    let mut quads = out.chunks_exact_mut(4 * L);
    for (qb, o) in quads.by_ref().enumerate() {
        let mut acc = [[0.0f32; L]; 4];
        for (d, &xd) in x.iter().enumerate() {
            let m = &mt[d * tp + qb * 4 * L..][..4 * L];
            for (b, acc) in acc.iter_mut().enumerate() {
                for l in 0..L {
                    acc[l] = M::mul_add(xd, m[b * L + l], acc[l]);
                }
            }
        }
        for (o, a) in o.chunks_exact_mut(L).zip(&acc) {
            for l in 0..L {
                o[l] = a[l] * scale;
            }
        }
    }
    for (b, o) in quads.into_remainder().chunks_exact_mut(L).enumerate() {
        let mut acc = [0.0f32; L];
        for (d, &xd) in x.iter().enumerate() {
            let m = &mt[d * tp + done + b * L..][..L];
            for l in 0..L {
                acc[l] = M::mul_add(xd, m[l], acc[l]);
            }
        }
        for l in 0..L {
            o[l] = acc[l] * scale;
        }
    }
}

/// Sum with L partial sums (a float sum in order would not vectorise).
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; L];
    for c in a.chunks_exact(L) {
        for l in 0..L {
            acc[l] += c[l];
        }
    }
    acc.iter().sum()
}

/// The largest of `p[..=i]`, with L partial maxima (the padding after `i` is set to -inf).
#[inline(always)]
fn max(p: &mut [f32], i: usize) -> f32 {
    p[i + 1..].fill(f32::NEG_INFINITY);
    let mut acc = [f32::NEG_INFINITY; L];
    for c in p.chunks_exact(L) {
        for l in 0..L {
            acc[l] = acc[l].max(c[l]);
        }
    }
    acc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `out = Σ_j w[j] · rows[j]` with `rows` row-major `(w.len().., out.len())`: the weighted
/// sum of value (or key) rows in their natural layout. With rows of whole blocks, four keys at
/// a time go to four independent accumulators per block of the row; otherwise a plain loop.
#[inline(always)]
fn weighted_rows<M: MulAdd>(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let hd = out.len();
    if !hd.is_multiple_of(L) {
        out.fill(0.0);
        for (&wj, r) in w.iter().zip(rows.chunks_exact(hd)) {
            for (o, &x) in out.iter_mut().zip(r) {
                *o = M::mul_add(wj, x, *o);
            }
        }
        return;
    }
    assert!(w.len() * hd <= rows.len());
    for (c, o) in out.chunks_exact_mut(L).enumerate() {
        let mut acc = [[0.0f32; L]; 4];
        // `row(j)` is block c of row j. SAFETY (of every call): j < w.len(), and
        // j * hd + c * L + L <= w.len() * hd <= rows.len() (asserted above).
        let row = |j: usize| unsafe { &*rows.as_ptr().add(j * hd + c * L).cast::<[f32; L]>() };
        let quads = w.chunks_exact(4);
        let rest = quads.remainder();
        for (j4, wq) in quads.enumerate() {
            for (k, acc) in acc.iter_mut().enumerate() {
                let r = row(4 * j4 + k);
                for l in 0..L {
                    acc[l] = M::mul_add(wq[k], r[l], acc[l]);
                }
            }
        }
        for (k, &wj) in rest.iter().enumerate() {
            let r = row(w.len() - rest.len() + k);
            for l in 0..L {
                acc[k][l] = M::mul_add(wj, r[l], acc[k][l]);
            }
        }
        for l in 0..L {
            o[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
        }
    }
}

/// `e^x` to about 1 ulp for x ≤ 88, written so that a loop over it vectorises (no libm call).
/// Below -87 it returns ~1e-38 instead of underflowing further, which no softmax can tell.
#[inline(always)]
fn exp<M: MulAdd>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for the n that occur (Cody and Waite's reduction).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer in the float unit.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    // |r| <= ln2/2
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r by its Taylor series to r^7 (Horner's rule): the first omitted term is below 6e-9
    // relative for |r| <= 0.35.
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = M::mul_add(p, r, c);
    }
    // 2^n from the bits: t's low mantissa bits hold n (two's complement). Integer arithmetic
    // vectorises; `n as i32` would not (Rust's saturating float-to-int conversion is scalar).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `p[j] = exp(p[j] - shift)` for keys `j <= i`, and 0 for the padding after them.
#[inline(always)]
fn exp_row<M: MulAdd>(p: &mut [f32], i: usize, shift: f32) {
    for x in p.iter_mut() {
        *x = exp::<M>(*x - shift);
    }
    p[i + 1..].fill(0.0);
}

/// The forward of one (sequence, kv head): `qs`/`out`/`lse` hold its group of query heads.
#[inline(always)]
fn forward_unit<M: MulAdd>(
    s: AttentionShape,
    qs: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (t, hd) = (s.seq, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut sc = Scratch::new(s, k, None);
    let rows = qs
        .chunks_exact(hd)
        .zip(out.chunks_exact_mut(hd))
        .zip(lse.iter_mut());
    for (row, ((qi, oi), li)) in rows.enumerate() {
        let i = row % t; // position of this query in its sequence
        let n = (i + 1).div_ceil(L) * L;
        let p = &mut sc.p[..n];
        scores::<M>(qi, &sc.kt, sc.tp, scale, p);
        let m = max(p, i);
        exp_row::<M>(p, i, m);
        let z = sum(p);
        weighted_rows::<M>(&sc.p[..=i], v, oi);
        for o in oi.iter_mut() {
            *o /= z;
        }
        *li = m + z.ln();
    }
}

/// Inputs of one (sequence, kv head) for the backward.
struct Unit<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    out: &'a [f32],
    dout: &'a [f32],
    lse: &'a [f32],
}

/// The backward of one (sequence, kv head). With p = softmax(s) and D = dout·out per row:
/// ds = p ⊙ (dout·vᵀ − D); dq = scale·ds·k; dk = scale·dsᵀ·q; dv = pᵀ·dout.
#[inline(always)]
fn backward_unit<M: MulAdd>(
    s: AttentionShape,
    u: &Unit<'_>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let (t, hd) = (s.seq, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut sc = Scratch::new(s, u.k, Some(u.v));
    let tp = sc.tp;
    // dk and dv accumulate transposed too, so that their updates run over keys.
    let mut dkt = vec![0.0f32; hd * tp];
    let mut dvt = vec![0.0f32; hd * tp];
    let rows =
        u.q.chunks_exact(hd)
            .zip(u.out.chunks_exact(hd))
            .zip(u.dout.chunks_exact(hd));
    for (row, (((qi, oi), doi), dqi)) in rows.zip(dq.chunks_exact_mut(hd)).enumerate() {
        let i = row % t;
        let n = (i + 1).div_ceil(L) * L;
        let (p, g) = (&mut sc.p[..n], &mut sc.g[..n]);
        scores::<M>(qi, &sc.kt, tp, scale, p);
        exp_row::<M>(p, i, u.lse[row]);
        scores::<M>(doi, &sc.vt, tp, 1.0, g);
        let dsum: f32 = doi.iter().zip(oi).map(|(a, b)| a * b).sum();
        for (gj, &pj) in g.iter_mut().zip(p.iter()) {
            *gj = pj * (*gj - dsum) * scale; // ds, zero on the padding since p is
        }
        let (p, g) = (&sc.p[..n], &sc.g[..n]);
        weighted_rows::<M>(&g[..=i], u.k, dqi);
        for d in 0..hd {
            let (qd, od) = (qi[d], doi[d]);
            for (a, &gj) in dkt[d * tp..d * tp + n].iter_mut().zip(g) {
                *a = M::mul_add(gj, qd, *a);
            }
            for (a, &pj) in dvt[d * tp..d * tp + n].iter_mut().zip(p) {
                *a = M::mul_add(pj, od, *a);
            }
        }
    }
    for (d, (kc, vc)) in dkt.chunks_exact(tp).zip(dvt.chunks_exact(tp)).enumerate() {
        for j in 0..t {
            dk[j * hd + d] = kc[j];
            dv[j * hd + d] = vc[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    /// The textbook computation, in f64, for comparison.
    fn naive(s: AttentionShape, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
        let (t, hd) = (s.seq, s.head_dim);
        let mut out = vec![0.0f64; s.q_len()];
        for b in 0..s.batch {
            for h in 0..s.heads {
                let kh = h / s.group();
                let qb = (b * s.heads + h) * t * hd;
                let kb = (b * s.kv_heads + kh) * t * hd;
                for i in 0..t {
                    let sc: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hd)
                                .map(|d| q[qb + i * hd + d] as f64 * k[kb + j * hd + d] as f64)
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        out[qb + i * hd + d] = (0..=i)
                            .map(|j| e[j] * v[kb + j * hd + d] as f64)
                            .sum::<f64>()
                            / z;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn exp_matches_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp::<Separate>(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, std gives {want}"
            );
            x += 0.0137;
        }
    }

    /// q, k, v for the shape, from three seeds starting at `seed`.
    fn qkv(s: AttentionShape, seed: u32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let kv = s.kv_len();
        (
            values(s.q_len(), seed),
            values(kv, seed + 1),
            values(kv, seed + 2),
        )
    }

    #[test]
    fn forward_matches_naive_with_grouped_heads() {
        // head sizes off the 8-lane blocks, on them, and two blocks; a length not a multiple of 8
        for head_dim in [6, 8, 16] {
            let s = AttentionShape {
                batch: 2,
                heads: 4,
                kv_heads: 2,
                seq: 19,
                head_dim,
            };
            let (q, k, v) = qkv(s, 1);
            let (mut out, mut lse) = (vec![0.0; s.q_len()], vec![0.0; s.lse_len()]);
            causal_attention_forward(&pool(), s, (&q, &k, &v), &mut out, &mut lse).unwrap();
            for (a, b) in out.iter().zip(naive(s, &q, &k, &v)) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5,
                    "head_dim {head_dim}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = AttentionShape {
            batch: 1,
            heads: 2,
            kv_heads: 1,
            seq: 7,
            head_dim: 8,
        };
        let (q, k, v) = qkv(s, 4);
        let w = values(s.q_len(), 7); // loss = Σ w ⊙ out, so dout = w
        let p = pool();
        let (mut out, mut lse) = (vec![0.0; s.q_len()], vec![0.0; s.lse_len()]);
        causal_attention_forward(&p, s, (&q, &k, &v), &mut out, &mut lse).unwrap();
        let (mut dq, mut dk, mut dv) = (
            vec![0.0; s.q_len()],
            vec![0.0; s.kv_len()],
            vec![0.0; s.kv_len()],
        );
        causal_attention_backward(
            &p,
            s,
            (&q, &k, &v),
            (&out, &lse, &w),
            &mut dq,
            &mut dk,
            &mut dv,
        )
        .unwrap();
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            naive(s, q, k, v)
                .iter()
                .zip(&w)
                .map(|(o, w)| o * *w as f64)
                .sum()
        };
        let h = 1e-3f32;
        for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
            for idx in 0..grad.len() {
                let mut ins = [q.clone(), k.clone(), v.clone()];
                ins[which][idx] += h;
                let up = loss(&ins[0], &ins[1], &ins[2]);
                ins[which][idx] -= 2.0 * h;
                let down = loss(&ins[0], &ins[1], &ins[2]);
                let fd = (up - down) / (2.0 * h as f64);
                assert!(
                    (fd - grad[idx] as f64).abs() < 2e-3,
                    "input {which}[{idx}]: {fd} vs {}",
                    grad[idx]
                );
            }
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let s = AttentionShape {
            batch: 1,
            heads: 3,
            kv_heads: 2,
            seq: 4,
            head_dim: 2,
        };
        let r = causal_attention_forward(&pool(), s, (&[], &[], &[]), &mut [], &mut []);
        assert!(r.unwrap_err().to_string().contains("does not divide"));
        let s = AttentionShape { kv_heads: 1, ..s };
        let r = causal_attention_forward(&pool(), s, (&[0.0; 5], &[], &[]), &mut [], &mut []);
        assert!(r.unwrap_err().to_string().contains("q holds 5 values"));
    }
}

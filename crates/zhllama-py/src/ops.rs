//! Training kernels for the trainer's CPU fast path (zhllama_trainer/cpu_attention.py): causal
//! attention forward and backward over numpy arrays that share memory with torch tensors.
//!
//! The arrays must be C-contiguous float32; the output arrays are written in place. The GIL is
//! released while the kernel runs. Thread pools are built once per thread count and kept, so
//! that a training step pays no pool start-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use numpy::PyUntypedArrayMethods;
use numpy::{PyReadonlyArray3, PyReadonlyArray4, PyReadwriteArray3, PyReadwriteArray4};
use pyo3::prelude::*;
use zhllama_kernels::training_attention::{
    causal_attention_backward, causal_attention_forward, AttentionShape, ShapeError,
};

use crate::errors::{bad_arg, Int};

/// A shape the kernel refuses, as the `ValueError` every other bad argument raises.
fn shape_error(e: ShapeError) -> PyErr {
    bad_arg(e.0)
}

/// More threads than this is a mistake, not a machine (each count gets a pool that is kept).
const MAX_THREADS: usize = 1024;

fn pool(threads: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let threads = if threads == 0 {
        zhllama_core::default_threads()
    } else {
        threads
    };
    if threads > MAX_THREADS {
        return Err(bad_arg(format!("threads={threads}: at most {MAX_THREADS}")));
    }
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.get(&threads) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zhllama-ops-{i}"))
        .build()
        .map_err(|e| bad_arg(format!("cannot start {threads} threads: {e}")))?;
    let p = Arc::new(p);
    pools.insert(threads, p.clone());
    Ok(p)
}

/// The attention shape read off q `(B, H, T, hd)` and k `(B, Hk, T, hd)`.
fn shape_of(q: &[usize], k: &[usize]) -> PyResult<AttentionShape> {
    if q[0] != k[0] || q[2] != k[2] || q[3] != k[3] {
        return Err(bad_arg(format!(
            "attention: q has shape {q:?} but k has {k:?} (batch, seq and head size must agree)"
        )));
    }
    Ok(AttentionShape {
        batch: q[0],
        heads: q[1],
        kv_heads: k[1],
        seq: q[2],
        head_dim: q[3],
    })
}

fn contiguous<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    name: &str,
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| bad_arg(format!("attention: {name} must be C-contiguous")))
}

macro_rules! slice_mut {
    ($name:literal, $a:expr) => {
        $a.as_slice_mut()
            .map_err(|_| bad_arg(concat!("attention: ", $name, " must be C-contiguous")))?
    };
}

type Qkv<'a> = (&'a [f32], &'a [f32], &'a [f32]);

/// What both directions start with: the shape (from q and k), the pool, q/k/v as slices.
fn inputs<'a>(
    q: &'a PyReadonlyArray4<'_, f32>,
    k: &'a PyReadonlyArray4<'_, f32>,
    v: &'a PyReadonlyArray4<'_, f32>,
    threads: usize,
) -> PyResult<(AttentionShape, Arc<rayon::ThreadPool>, Qkv<'a>)> {
    let shape = shape_of(q.shape(), k.shape())?;
    let qkv = (
        contiguous("q", q)?,
        contiguous("k", k)?,
        contiguous("v", v)?,
    );
    Ok((shape, pool(threads)?, qkv))
}

/// Causal attention forward: writes `out` (B, H, T, hd) and `lse` (B, H, T, the log of each
/// row's softmax denominator) from q (B, H, T, hd) and k, v (B, Hk, T, hd); scores scaled by
/// 1/sqrt(hd). `threads=0` means one per physical core.
#[pyfunction]
#[pyo3(signature = (q, k, v, out, lse, threads = Int(0)), text_signature = "(q, k, v, out, lse, threads=0)")]
pub(crate) fn causal_attention_forward_f32(
    py: Python<'_>,
    q: PyReadonlyArray4<'_, f32>,
    k: PyReadonlyArray4<'_, f32>,
    v: PyReadonlyArray4<'_, f32>,
    mut out: PyReadwriteArray4<'_, f32>,
    mut lse: PyReadwriteArray3<'_, f32>,
    threads: Int<usize>,
) -> PyResult<()> {
    let (shape, pool, (q, k, v)) = inputs(&q, &k, &v, threads.0)?;
    let (out, lse) = (slice_mut!("out", out), slice_mut!("lse", lse));
    py.detach(|| causal_attention_forward(&pool, shape, (q, k, v), out, lse))
        .map_err(shape_error)
}

/// Causal attention backward: from the forward's q, k, v, out, lse and the gradient `dout`,
/// overwrites `dq`, `dk`, `dv` (shapes of q, k, v).
#[pyfunction]
#[pyo3(signature = (q, k, v, out, lse, dout, dq, dk, dv, threads = Int(0)), text_signature = "(q, k, v, out, lse, dout, dq, dk, dv, threads=0)")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn causal_attention_backward_f32(
    py: Python<'_>,
    q: PyReadonlyArray4<'_, f32>,
    k: PyReadonlyArray4<'_, f32>,
    v: PyReadonlyArray4<'_, f32>,
    out: PyReadonlyArray4<'_, f32>,
    lse: PyReadonlyArray3<'_, f32>,
    dout: PyReadonlyArray4<'_, f32>,
    mut dq: PyReadwriteArray4<'_, f32>,
    mut dk: PyReadwriteArray4<'_, f32>,
    mut dv: PyReadwriteArray4<'_, f32>,
    threads: Int<usize>,
) -> PyResult<()> {
    let (shape, pool, (q, k, v)) = inputs(&q, &k, &v, threads.0)?;
    let (out, lse, dout) = (
        contiguous("out", &out)?,
        contiguous("lse", &lse)?,
        contiguous("dout", &dout)?,
    );
    let (dq, dk, dv) = (
        slice_mut!("dq", dq),
        slice_mut!("dk", dk),
        slice_mut!("dv", dv),
    );
    py.detach(|| causal_attention_backward(&pool, shape, (q, k, v), (out, lse, dout), dq, dk, dv))
        .map_err(shape_error)
}

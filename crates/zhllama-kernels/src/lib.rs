//! # zhllama-kernels
//!
//! The speed tricks, kept out of the forward pass so that it reads like the paper, and shared
//! by the inference engine (zhllama-core) and the trainer's CPU attention (through the
//! `zhllama_rs.ops` Python module). No model, file or error type of the engine inside.
//!
//! - [`matmul`](mod@matmul): matrix × vector products over a [`MatRef`] (f32 or int8), parallel
//!   over output rows on the caller's rayon pool; several matrices that read the same input in
//!   one pass ([`matmul_many`], [`swiglu`]).
//! - [`batched`]: a matrix × several vectors (the engine's batched forward), each weight tile
//!   read once for all of them, every output bit-identical to the one-vector product.
//! - [`float`]: the f32 row kernel and dot product (AVX2+FMA: four rows × 16 columns with
//!   software prefetch, since rows of the small models are a few cache lines long and hardware
//!   prefetchers lose the stream at each row; several independent partial sums so the FMA units
//!   never wait on one accumulator).
//! - [`int8`]: group quantization (FORMATS.md §1.3) and the portable row-major int8 kernel,
//!   whose arithmetic (exact int32 group sums, then f32 group by group) every int8 kernel gives.
//! - [`packed`]: int8 matrices repacked at load with rows in register lanes, and their kernels
//!   (AVX-512 VNNI or AVX2, one or many vectors): the same bits as the row-major kernel, on
//!   every CPU.
//! - [`vector`]: RMSNorm, softmax, one attention head over the KV cache.
//! - [`dispatch`]: which SIMD level this CPU runs, detected once at run time, so a portable
//!   build (no `target-cpu=native`) still uses AVX2 and AVX-512 where the CPU has them.
//! - [`training_attention`]: causal attention forward and backward for CPU training with small
//!   heads (the engine never calls it).
//!
//! f32 summation order differs from a naive serial loop; results agree with it to float
//! rounding. int8 products follow FORMATS.md §1.3's formula exactly, in group order.

#![warn(missing_docs)]

pub mod batched;
pub mod dispatch;
pub mod float;
pub mod int8;
pub mod matmul;
pub mod packed;
pub mod training_attention;
pub mod vector;

pub use batched::{matmul_batch, BatchInput};
pub use dispatch::{cpu_features, simd_level, Simd};
pub use float::{dot, f32_rows};
pub use int8::{dot_i8, q8_rows, q8_rows_portable, quantize_groups, QuantVec};
pub use matmul::{block_rows, matmul, matmul_many, swiglu, MatRef};
pub use packed::{PackedQ8, Q8Source};
pub use vector::{attend, rmsnorm, rmsnorm_inplace, softmax};

//! The parallel paths of the forward pass, on the published models' widths.
//!
//! A small model never leaves the serial path: a matrix is split across threads only from
//! ~16K multiply-adds per task (int8 ~48K, see `kernels::block_rows`) and one position's heads
//! only from `(pos + 1) · dim ≥ PARALLEL_ATTENTION_MIN_WORK`. So these tests use the 15M, 42M
//! and 110M models' dim, hidden and head sizes (48 and 64) with only 2 layers and a small vocab,
//! check with the very functions the forward pass consults that the split does happen, and
//! then require the logits of every position to be bit-identical with 1, 2 and 3 threads, f32
//! and int8 (quantized at load), and across the v0, v1 (and for int8 v2) files of one set of
//! weights.

use std::path::{Path, PathBuf};

use zhllama_testkit::{Shape, Weights};

use super::*;
use zhllama_kernels::block_rows;

/// The published shapes' widths; 2 layers, vocab 512, and just enough context that the last
/// positions run their attention in parallel.
const SHAPES: [(&str, Shape, bool); 3] = [
    // head size 48, separate classifier
    (
        "15M",
        Shape {
            dim: 288,
            hidden: 768,
            layers: 2,
            heads: 6,
            kv_heads: 6,
            vocab: 512,
            seq_len: 120,
        },
        false,
    ),
    // head size 64; grouped-query attention (2 query heads per kv head), hidden 1376 (int8
    // groups of 32)
    (
        "42M",
        Shape {
            dim: 512,
            hidden: 1376,
            layers: 2,
            heads: 8,
            kv_heads: 4,
            vocab: 512,
            seq_len: 72,
        },
        true,
    ),
    // head size 64
    (
        "110M",
        Shape {
            dim: 768,
            hidden: 2048,
            layers: 2,
            heads: 12,
            kv_heads: 12,
            vocab: 512,
            seq_len: 48,
        },
        true,
    ),
];

/// A folder for this test's files, removed at the end (the largest model is about 60 MB).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "zhllama-core-parallel-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        zhllama_testkit::write(&p, bytes);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The logits of every position of one sequence, one row per position.
fn run(path: &Path, threads: usize, quantize: Quantize) -> (Model, Vec<Vec<f32>>) {
    let mut m = Model::load_with(path, None, Some(threads), quantize).unwrap();
    assert_eq!(m.threads(), threads);
    let (v, t) = (m.vocab_size(), m.seq_len());
    let logits = (0..t)
        .map(|pos| {
            let token = ((pos * 7919 + 11) % v) as u32;
            m.forward(token, pos).unwrap().to_vec()
        })
        .collect();
    (m, logits)
}

/// Asserts that with `threads` the model's matrix products split into several tasks (the
/// condition `kernels::matmul` and `kernels::swiglu` test) and that the last positions run
/// their heads in parallel while the first do not, so that both attention paths are compared.
fn assert_parallel(m: &Model, threads: usize, what: &str) {
    let (st, w) = (&m.ckpt.storage, &m.ckpt.layout);
    for (name, mat) in [
        ("wq", &w.wq[0]),
        ("wo", &w.wo[0]),
        ("w1", &w.w1[0]),
        ("w2", &w.w2[0]),
        ("classifier", &w.wcls),
    ] {
        let mat = st.mat(mat);
        let rows = mat.rows();
        let bs = block_rows(&mat, rows, threads);
        assert!(
            bs < rows,
            "{what}, {threads} threads: {name} ({rows}x{}) stays in one task of {bs} rows",
            mat.cols()
        );
    }
    let (t, d) = (m.seq_len(), m.dim());
    assert!(
        attention_in_parallel(t - 1, d, threads),
        "{what}: attention never parallel"
    );
    assert!(
        !attention_in_parallel(0, d, threads),
        "{what}: attention always parallel"
    );
}

#[test]
fn threads_and_file_versions_give_identical_logits_on_published_widths() {
    for (name, shape, shared) in SHAPES {
        let dir = TempDir::new(name);
        let weights = Weights::random(shape, shared, 17);
        let v0 = dir.write("v0.bin", &weights.v0());
        let v1 = dir.write("v1.bin", &weights.v1());
        let gs = shape.default_group_size();
        let v2 = dir.write("v2.bin", &weights.v2(gs));
        drop(weights);
        let q8 = Quantize::Q8 { group_size: None };

        // f32: 1 thread (the serial path throughout), then 2 and 3; the v1 file of the same
        // weights gives the same logits
        let (_, serial) = run(&v0, 1, Quantize::None);
        assert!(serial.iter().flatten().all(|x| x.is_finite()));
        assert_ne!(
            serial[0], serial[1],
            "{name}: positions give different logits"
        );
        for threads in [2, 3] {
            let (m, logits) = run(&v0, threads, Quantize::None);
            assert_parallel(&m, threads, &format!("{name} f32"));
            assert!(
                logits == serial,
                "{name} f32: {threads} threads differ from 1"
            );
        }
        assert!(
            run(&v1, 1, Quantize::None).1 == serial,
            "{name} f32: the v1 file differs from the v0 file"
        );

        // int8 quantized at load, from either file, and the v2 file with the exporter's bytes
        let (m, serial_q8) = run(&v0, 1, q8);
        assert_eq!(m.group_size(), gs);
        assert!(
            serial_q8 != serial,
            "{name}: int8 weights give f32's logits"
        );
        for threads in [2, 3] {
            let (m, logits) = run(&v0, threads, q8);
            assert_parallel(&m, threads, &format!("{name} int8"));
            assert!(
                logits == serial_q8,
                "{name} int8: {threads} threads differ from 1"
            );
        }
        assert!(
            run(&v1, 2, q8).1 == serial_q8,
            "{name} int8: quantizing the v1 file differs from the v0 file"
        );
        assert!(
            run(&v2, 3, Quantize::None).1 == serial_q8,
            "{name} int8: the v2 file differs from quantizing at load"
        );
    }
}

//! Micro-benchmark of the f32 matrix × vector kernel on one thread: GFLOP/s and GB/s for
//! cache-resident and memory-sized matrices. `cargo run --release --example kernel_bench`.
use std::time::Instant;
use zhllama_core::kernels::f32_rows;

fn main() {
    for &(rows, cols, reps) in &[
        (288, 288, 20000),
        (768, 768, 2000),
        (2048, 768, 1000),
        (5000, 768, 200),
        (32768, 768, 20),
    ] {
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 * 0.01).collect();
        let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; rows];
        f32_rows(&w, cols, &x, &mut out);
        let t = Instant::now();
        for _ in 0..reps {
            f32_rows(&w, cols, &x, &mut out);
            std::hint::black_box(&mut out);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let bytes = (rows * cols * 4) as f64;
        println!(
            "{rows:>6}x{cols:<5} {:>8.1} us  {:>6.1} GFLOP/s  {:>6.1} GB/s",
            s * 1e6,
            2.0 * (rows * cols) as f64 / s / 1e9,
            bytes / s / 1e9
        );
    }
}

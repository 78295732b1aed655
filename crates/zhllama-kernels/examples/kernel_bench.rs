//! Micro-benchmark of the matrix × vector kernels on one thread, f32 and int8: GMAC/s and GB/s
//! for cache-resident and memory-sized matrices. `cargo run --release -p zhllama-kernels --example kernel_bench`
//! (`ZHLLAMA_SIMD=avx2` or `portable` caps the int8 kernel for an A/B; int8 times include
//! quantizing the vector, as in the engine).
use std::time::Instant;
use zhllama_kernels::{f32_rows, matmul, simd_level, MatRef, PackedQ8, QuantVec};

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    println!("int8 kernel: {:?}", simd_level());
    for &(rows, cols, reps) in &[
        (288, 288, 20000),
        (768, 768, 2000),
        (2048, 768, 1000),
        (768, 2048, 1000),
        (5000, 768, 200),
        (32768, 768, 20),
        (131072, 768, 5),
    ] {
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 * 0.01).collect();
        let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; rows];
        let gs = if cols % 64 == 0 { 64 } else { 32 };
        let wq = QuantVec::new(&w, gs);
        let packed = PackedQ8::new(&wq.q, &wq.s, rows, cols, gs).expect("gs is 32 or 64");
        let macs = (rows * cols) as f64;
        let s = time(reps, || {
            f32_rows(&w, cols, &x, &mut out);
            std::hint::black_box(&mut out);
        });
        let sq = time(reps, || {
            // one thread: the packed kernel, the activations quantized as in the engine
            matmul(&mut out, &x, MatRef::packed(&packed), 1);
            std::hint::black_box(&mut out);
        });
        println!(
            "{rows:>6}x{cols:<5} f32 {:>8.1} us {:>6.1} GMAC/s {:>6.1} GB/s | int8 gs {gs} {:>8.1} us {:>6.1} GMAC/s {:>6.1} GB/s",
            s * 1e6,
            macs / s / 1e9,
            macs * 4.0 / s / 1e9,
            sq * 1e6,
            macs / sq / 1e9,
            macs * (1.0 + 4.0 / gs as f64) / sq / 1e9
        );
    }
}

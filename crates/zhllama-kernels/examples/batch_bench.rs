//! Micro-benchmark of the batched products on one thread: GMAC/s of a matrix × n vectors,
//! f32 and int8, for a cache-resident matrix and a memory-sized one, beside n one-vector
//! products (the speed-up a batch buys). `cargo run --release -p zhllama-kernels --example
//! batch_bench [ROWSxCOLS,…] [N,…]` (`ZHLLAMA_SIMD=avx2` or `portable` caps the kernels for
//! an A/B; 256 vectors is a long prompt's prefill).
use std::time::{Duration, Instant};
use zhllama_kernels::{matmul, matmul_batch, simd_level, BatchInput, MatRef, PackedQ8, QuantVec};

/// Seconds per call: the best of a few timed rounds of at least 50 ms each.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let (t, mut reps) = (Instant::now(), 0);
        while t.elapsed() < Duration::from_millis(50) {
            f();
            reps += 1;
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn main() {
    println!("kernels: {}", simd_level().describe());
    let shapes: Vec<(usize, usize)> = match std::env::args().nth(1) {
        Some(a) => a
            .split(',')
            .filter_map(|s| s.split_once('x'))
            .filter_map(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
            .collect(),
        None => vec![(768, 768), (2048, 768), (768, 2048), (32768, 768)],
    };
    let counts: Vec<usize> = match std::env::args().nth(2) {
        Some(a) => a.split(',').filter_map(|n| n.parse().ok()).collect(),
        None => vec![1, 2, 4, 8, 16, 64],
    };
    for &(rows, cols) in &shapes {
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| (i % 7) as f32 * 0.01 - 0.03)
            .collect();
        let gs = if cols % 64 == 0 { 64 } else { 32 };
        let wq = QuantVec::new(&w, gs);
        let packed = PackedQ8::new(&wq.q, &wq.s, rows, cols, gs).expect("gs is 32 or 64");
        let mats = [
            ("f32 ", MatRef::F32 { w: &w, rows, cols }),
            ("int8", MatRef::packed(&packed)),
        ];
        for (name, m) in mats {
            let mut line = format!("{rows:>6}x{cols:<5} {name} GMAC/s, n: batched (one at a time)");
            for &n in &counts {
                let xs: Vec<f32> = (0..n * cols).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
                let mut out = vec![0.0f32; n * rows];
                let batched = time(|| {
                    let input = BatchInput::new(&xs, n, m.group_size());
                    matmul_batch(&mut out, &input, m, 1);
                    std::hint::black_box(&mut out);
                });
                let one = time(|| {
                    for (x, o) in xs.chunks_exact(cols).zip(out.chunks_exact_mut(rows)) {
                        matmul(o, x, m, 1);
                    }
                    std::hint::black_box(&mut out);
                });
                let macs = (n * rows * cols) as f64;
                line += &format!(
                    " {n}: {:.1} ({:.1})",
                    macs / batched / 1e9,
                    macs / one / 1e9
                );
            }
            println!("{line}");
        }
    }
}

//! The batched forward and the scheduler are exact: a sequence's logits are bit-identical to
//! the one-token forward's whatever the batch size (1/3/8), chunk size or thread count
//! (1/2/3), f32 and int8; a story told in a batch of 8 (slots reused) is byte-identical to
//! the same story told alone. (The recorded run.c outputs, now prefilled, are reference.rs.)

use std::path::{Path, PathBuf};

use zhllama_core::{
    Entry, FinishReason, GenerateOptions, Model, Quantize, Scheduler, Slots, BOS, EOS,
};
use zhllama_testkit::{Shape, Weights};

/// int8 groups of 32 (the SIMD int8 kernels), head size 24, 2 query heads per kv head, and a
/// vocab of 510 rows (not a multiple of 4: the classifier has tail rows).
const SHAPE: Shape = Shape {
    dim: 96,
    hidden: 224,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    vocab: 510,
    seq_len: 96,
};

fn files(name: &str, shape: Shape) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("zhllama-batched-{name}-{}", std::process::id()));
    let (model, tok) = (dir.join("m.bin"), dir.join("tok.bin"));
    zhllama_testkit::write(&model, &Weights::random(shape, false, 5).v1());
    zhllama_testkit::write(&tok, &zhllama_testkit::tokenizer(shape.vocab));
    (model, tok)
}

fn load(model: &Path, tok: &Path, threads: usize, int8: bool) -> Model {
    let q = if int8 {
        Quantize::Q8 { group_size: None }
    } else {
        Quantize::None
    };
    Model::load_with(model, Some(tok), Some(threads), q).unwrap()
}

/// Eight token sequences of different lengths.
fn sequences(vocab: u32) -> Vec<Vec<u32>> {
    (0..8u32)
        .map(|s| {
            (0..12 + 9 * s as usize)
                .map(|i| (i as u32 * 7919 + s * 104_729 + 3) % vocab)
                .collect()
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn logits_are_bit_identical_across_batch_sizes_chunks_and_threads() {
    let (model, tok) = files("logits", SHAPE);
    for int8 in [false, true] {
        // the reference: every sequence alone, one token at a time, one thread
        let mut alone = load(&model, &tok, 1, int8);
        let seqs = sequences(SHAPE.vocab as u32);
        let want: Vec<Vec<Vec<u32>>> = seqs
            .iter()
            .map(|seq| {
                alone.reset();
                let rows = seq.iter().enumerate();
                rows.map(|(p, &t)| bits(alone.forward(t, p).unwrap()))
                    .collect()
            })
            .collect();
        for threads in [1, 2, 3] {
            let mut m = load(&model, &tok, threads, int8);
            // Model::prefill of a whole sequence ends on the same logits
            for (seq, w) in seqs.iter().zip(&want) {
                assert_eq!(&bits(m.prefill(seq, 0).unwrap()), w.last().unwrap());
            }
            for batch in [1, 3, 8] {
                let mut slots = Slots::new(&m);
                for (g, group) in seqs.chunks(batch).enumerate() {
                    // a prompt chunk of a different size for each sequence, all in one call,
                    // then one token of every unfinished sequence per call
                    let ids: Vec<usize> = (0..group.len()).map(|_| slots.alloc()).collect();
                    let mut pos: Vec<usize> = (0..group.len()).map(|i| 1 + (i + g) % 7).collect();
                    let mut entries = Vec::new();
                    for (i, seq) in group.iter().enumerate() {
                        for (p, &token) in seq.iter().enumerate().take(pos[i]) {
                            entries.push((i, p, token));
                        }
                    }
                    while !entries.is_empty() {
                        let batch_entries: Vec<Entry> = entries
                            .iter()
                            .map(|&(i, p, token)| Entry {
                                slot: ids[i],
                                pos: p,
                                token,
                                logits: true,
                            })
                            .collect();
                        let logits = m.forward_batch(&mut slots, &batch_entries).unwrap();
                        for (row, &(i, p, _)) in logits.chunks_exact(SHAPE.vocab).zip(&entries) {
                            let s = g * batch + i;
                            assert!(
                                bits(row) == want[s][p],
                                "int8 {int8} threads {threads} batch {batch}: seq {s} pos {p}"
                            );
                        }
                        entries.clear();
                        for (i, seq) in group.iter().enumerate() {
                            if pos[i] < seq.len() {
                                entries.push((i, pos[i], seq[pos[i]]));
                                pos[i] += 1;
                            }
                        }
                    }
                    for id in ids {
                        slots.free(id);
                    }
                }
            }
        }
    }
}

/// Wide enough that a 150-token prompt splits its elementwise work (norms, SiLU, residuals,
/// int8 quantization of the activations) into tasks: 150 × 192 values and more.
const WIDE: Shape = Shape {
    dim: 192,
    hidden: 512,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    vocab: 510,
    seq_len: 160,
};

#[test]
fn a_long_prompt_split_into_tasks_is_exact() {
    let (model, tok) = files("wide", WIDE);
    let seq: Vec<u32> = (0..150u32).map(|i| (i * 7919 + 11) % 510).collect();
    for int8 in [false, true] {
        let mut alone = load(&model, &tok, 1, int8);
        let want: Vec<u32> = (0..seq.len())
            .flat_map(|p| bits(alone.forward(seq[p], p).unwrap()))
            .collect();
        for threads in [1, 2, 3] {
            let mut m = load(&model, &tok, threads, int8);
            let got = bits(m.prefill_each(&seq, 0).unwrap());
            assert!(got == want, "int8 {int8} threads {threads}: logits differ");
        }
    }
}

#[test]
fn a_batch_checks_its_entries() {
    let (model, tok) = files("checks", SHAPE);
    let mut m = load(&model, &tok, 1, false);
    let mut slots = Slots::new(&m);
    let s = slots.alloc();
    let e = |pos, token| Entry {
        slot: s,
        pos,
        token,
        logits: true,
    };
    let err = |m: &mut Model, slots: &mut Slots, es: &[Entry]| {
        m.forward_batch(slots, es).unwrap_err().to_string()
    };
    assert!(err(&mut m, &mut slots, &[e(1, 5)]).contains("gap"));
    assert!(err(&mut m, &mut slots, &[e(0, 5), e(2, 5)]).contains("must follow"));
    assert!(err(&mut m, &mut slots, &[e(0, 9999)]).contains("vocab"));
    assert!(err(&mut m, &mut slots, &[e(96, 5)]).contains("context"));
    let unknown = Entry { slot: 7, ..e(0, 5) };
    assert!(err(&mut m, &mut slots, &[unknown]).contains("not allocated"));
    assert_eq!(
        m.forward_batch(&mut slots, &[e(0, 5), e(1, 6)])
            .unwrap()
            .len(),
        2 * 510
    );
    assert_eq!(slots.len(s), Some(2));
}

/// Runs every request through one scheduler and returns (text, finish) per request.
fn run_all(
    m: &mut Model,
    reqs: &[(String, GenerateOptions)],
    parallel: usize,
    budget: usize,
) -> Vec<(String, FinishReason, usize)> {
    let mut sched = Scheduler::new(m, parallel, budget);
    let ids: Vec<u64> = reqs
        .iter()
        .map(|(p, o)| sched.add(m, p, o).unwrap())
        .collect();
    let mut out: Vec<(String, Option<FinishReason>, usize)> =
        vec![(String::new(), None, 0); reqs.len()];
    while !sched.is_idle() {
        for u in sched.step(m).unwrap() {
            let i = ids.iter().position(|&id| id == u.id).unwrap();
            assert!(out[i].1.is_none(), "no update after the last one");
            out[i].0.push_str(&u.text);
            if let Some(f) = u.finished {
                out[i].1 = Some(f.reason);
                out[i].2 = f.generated_tokens;
            }
        }
    }
    out.into_iter()
        .map(|(t, r, n)| (t, r.unwrap(), n))
        .collect()
}

#[test]
fn stories_in_a_batch_are_byte_identical_to_stories_alone() {
    let (model, tok) = files("stories", Shape::TINY);
    for int8 in [false, true] {
        let mut m = load(&model, &tok, 2, int8);
        // seeds whose story ends on EOS early (at different times), found by running them
        let opts = |seed: u64, steps: usize, temperature: f32| GenerateOptions {
            steps,
            temperature,
            top_p: 0.9,
            seed,
            stop_at_eos: true,
        };
        let mut eos_seeds = Vec::new();
        for seed in 1..400u64 {
            let g = m.generate("一", &opts(seed, 200, 1.0)).unwrap();
            let mut g = g;
            for _ in &mut g {}
            let ids = g.generator().generated_tokens();
            let n = ids.len();
            if ids.last() == Some(&EOS) && n > 3 && !eos_seeds.iter().any(|&(_, k)| k == n) {
                eos_seeds.push((seed, n));
            }
            if eos_seeds.len() == 3 {
                break;
            }
        }
        assert_eq!(eos_seeds.len(), 3, "three seeds that end on EOS");
        let prompts = [
            "一",
            "",
            "Once upon a time 一丁",
            "七 丁",
            "abc",
            "一丁丂七丄丅丆万丈三上下",
            "x",
            "三上",
        ];
        let reqs: Vec<(String, GenerateOptions)> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let o = match i {
                    0 | 3 | 6 => opts(eos_seeds[i / 3].0, 200, 1.0),
                    1 => opts(9, 0, 0.0),
                    2 => opts(10, 5, 0.8), // the prompt is longer than steps
                    _ => opts(20 + i as u64, 30 + 17 * i, 0.9),
                };
                let p = if i == 3 || i == 6 {
                    "一".to_string()
                } else {
                    p.to_string()
                };
                (p, o)
            })
            .collect();
        // each alone: its text and why it ended
        let alone: Vec<(String, FinishReason)> = reqs
            .iter()
            .map(|(p, o)| {
                let mut g = m.generate(p, o).unwrap();
                let text: String = (&mut g).collect();
                let last = g.generator().generated_tokens().last().copied();
                let eos = matches!(last, Some(EOS) | Some(BOS));
                (
                    text,
                    if eos {
                        FinishReason::Eos
                    } else {
                        FinishReason::Length
                    },
                )
            })
            .collect();
        for (parallel, budget) in [(8, 128), (3, 7), (8, 1)] {
            let got = run_all(&mut m, &reqs, parallel, budget);
            for (i, ((text, reason, n), want)) in got.iter().zip(&alone).enumerate() {
                assert_eq!(
                    text, &want.0,
                    "request {i}, parallel {parallel}, budget {budget}"
                );
                assert_eq!(*reason, want.1, "request {i}");
                if i % 3 == 0 {
                    assert_eq!(*reason, FinishReason::Eos);
                    assert_eq!(*n, eos_seeds[i / 3].1, "EOS counts as generated");
                }
            }
            assert_eq!(got[2].1, FinishReason::Length, "a prompt longer than steps");
        }
        // cancel: the request ends with its text so far, the others go on
        let mut sched = Scheduler::new(&m, 2, 16);
        let a = sched.add(&m, "一", &opts(5, 50, 1.0)).unwrap();
        let b = sched.add(&m, "丁", &opts(6, 20, 0.0)).unwrap();
        sched.step(&mut m).unwrap();
        sched.cancel(a);
        let mut ends = Vec::new();
        while !sched.is_idle() {
            for u in sched.step(&mut m).unwrap() {
                if let Some(f) = u.finished {
                    ends.push((u.id, f.reason));
                }
            }
        }
        assert_eq!(
            ends,
            [(a, FinishReason::Cancelled), (b, FinishReason::Length)]
        );
    }
}

//! Model::score on generated models: the log-probabilities forward's logits give, the same after
//! anything else ran, f32 and int8, and clear errors for what cannot be scored.

use zhllama_core::{Model, Quantize, BOS};
use zhllama_testkit::{Shape, Weights};

fn model(quantize: Quantize) -> Model {
    let dir = std::env::temp_dir().join(format!("zhllama-core-score-{}", std::process::id()));
    let path = dir.join("tiny.bin");
    zhllama_testkit::write(&path, &Weights::random(Shape::TINY, true, 5).v1());
    Model::load_with(&path, None, Some(2), quantize).unwrap()
}

fn log_softmax_at(logits: &[f32], t: usize) -> f64 {
    let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
    f64::from(logits[t]) - z.ln()
}

#[test]
fn score_is_the_log_probability_of_each_next_token() {
    for quantize in [Quantize::None, Quantize::Q8 { group_size: None }] {
        let mut m = model(quantize);
        let ids: Vec<u32> = [BOS, 40, 7, 300, 511, 2, 9].to_vec();
        let scores = m.score(&ids).unwrap();
        assert_eq!(scores.len(), ids.len() - 1);
        m.reset();
        for (pos, pair) in ids.windows(2).enumerate() {
            let want = log_softmax_at(m.forward(pair[0], pos).unwrap(), pair[1] as usize);
            assert!(
                (f64::from(scores[pos]) - want).abs() < 1e-5,
                "{quantize:?} {pos}"
            );
            assert!(scores[pos] < 0.0);
        }
        // whatever ran before (here: a longer sequence), the same ids score the same
        let _ = m.score(&[BOS, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        assert_eq!(m.score(&ids).unwrap(), scores);
        assert!(m.score(&[BOS]).unwrap().is_empty());
        assert!(m.score(&[]).unwrap().is_empty());
    }
}

#[test]
fn score_errors_name_the_problem() {
    let mut m = model(Quantize::None);
    let seq = m.seq_len();
    let too_long = vec![BOS; seq + 2];
    let e = m.score(&too_long).unwrap_err().to_string();
    assert!(e.contains(&format!("seq_len {seq}")), "{e}");
    // a training window: seq_len positions run, the last id only predicted
    assert_eq!(m.score(&vec![BOS; seq + 1]).unwrap().len(), seq);
    let e = m.score(&[BOS, 512]).unwrap_err().to_string();
    assert!(e.contains("token 512") && e.contains("vocab"), "{e}");
}

//! Generation on a generated model: the iterator, the borrow-free Generator driven by hand,
//! decode of the ids, and reset + forward all tell the same story.

use zhllama_core::{GenerateOptions, Generator, Model, Tokenizer, BOS};
use zhllama_testkit::{Shape, Weights};

#[test]
fn iterator_generator_decode_and_forward_agree() {
    let dir = std::env::temp_dir().join(format!("zhllama-core-generation-{}", std::process::id()));
    let (model, tok) = (dir.join("tiny.bin"), dir.join("tok.bin"));
    zhllama_testkit::write(&model, &Weights::random(Shape::TINY, true, 3).v1());
    zhllama_testkit::write(&tok, &zhllama_testkit::tokenizer(Shape::TINY.vocab));
    let mut m = Model::load(&model, Some(&tok), Some(2)).unwrap();
    let t = Tokenizer::from_file(&tok, Some(512)).unwrap();

    for opts in [
        GenerateOptions {
            steps: 100,
            temperature: 0.0,
            ..Default::default()
        },
        GenerateOptions {
            steps: 0,
            temperature: 0.9,
            top_p: 0.9,
            seed: 11,
            stop_at_eos: false,
        },
    ] {
        let prompt = "Once upon a time 一丁";
        let mut gen = m.generate(prompt, &opts).unwrap();
        let mut text = String::new();
        for piece in &mut gen {
            assert!(!piece.is_empty());
            text.push_str(&piece);
        }
        assert!(gen.tokens_per_second().is_some());
        assert!(text.starts_with(prompt), "{text}");

        // the borrow-free Generator, driven by hand, gives the same text; and decode() of the
        // prompt + generated ids gives it too
        let mut g = Generator::new(&m, prompt, &opts).unwrap();
        let mut by_hand = String::new();
        while let Some(p) = g.next_piece(&mut m) {
            by_hand.push_str(&p);
        }
        assert!(g.is_done());
        assert_eq!(by_hand, text);
        let mut ids = g.prompt_tokens().to_vec();
        ids.extend_from_slice(g.generated_tokens());
        assert_eq!(ids[0], BOS);
        assert_eq!(g.prompt_tokens(), t.encode(prompt, true, false));
        assert_eq!(t.decode(&ids).unwrap(), text);
    }

    // reset + forward by hand reproduce the greedy story's first token
    let opts = GenerateOptions {
        steps: 2,
        temperature: 0.0,
        ..Default::default()
    };
    let g = {
        let mut g = Generator::new(&m, "", &opts).unwrap();
        while g.next_piece(&mut m).is_some() {}
        g
    };
    m.reset();
    let logits = m.forward(BOS, 0).unwrap().to_vec();
    let first = logits
        .iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > logits[b] { i } else { b });
    assert_eq!(g.generated_tokens()[0], first as u32);
    let _ = std::fs::remove_dir_all(&dir);
}

//! `Scheduler::generated_tokens`: what a server reads after each step for its time to first
//! token and its token counters. It counts the tokens past the prompt, equals the final count
//! the last update reports, and is `None` once that update was returned.

use zhllama_core::{GenerateOptions, Model, Scheduler};
use zhllama_testkit::{Shape, Weights};

#[test]
fn generated_tokens_follow_each_step_and_end_with_the_last_update() {
    let dir = std::env::temp_dir().join(format!("zhllama-sched-progress-{}", std::process::id()));
    let (model, tok) = (dir.join("m.bin"), dir.join("tok.bin"));
    zhllama_testkit::write(&model, &Weights::random(Shape::TINY, false, 7).v1());
    zhllama_testkit::write(&tok, &zhllama_testkit::tokenizer(Shape::TINY.vocab));
    let mut m = Model::load(&model, Some(&tok), Some(1)).unwrap();
    let opts = GenerateOptions {
        steps: 40,
        temperature: 0.0,
        stop_at_eos: false,
        ..Default::default()
    };
    let prompt_tokens = m.tokenizer().unwrap().encode("abcdefgh", true, false).len();
    // a budget of 4 spreads the prompt over several steps
    let mut sched = Scheduler::new(&m, 2, 4);
    let id = sched.add(&m, "abcdefgh", &opts).unwrap();
    assert_eq!(sched.generated_tokens(id), Some(0));
    assert_eq!(sched.generated_tokens(id + 1), None);
    let mut seen = vec![0];
    let mut last = None;
    while !sched.is_idle() {
        for u in sched.step(&mut m).unwrap() {
            if let Some(f) = u.finished {
                last = Some(f.generated_tokens);
            }
        }
        if let Some(n) = sched.generated_tokens(id) {
            seen.push(n);
        }
    }
    // nothing generated while the prompt is read (prompt_tokens - 1 forced positions, 4 a
    // step), then one token a step, never going back
    let reading = (prompt_tokens - 1).div_ceil(4);
    assert!(seen[..reading].iter().all(|&n| n == 0), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1),
        "{seen:?}"
    );
    assert_eq!(last, Some(40 - (prompt_tokens - 1)));
    assert_eq!(sched.generated_tokens(id), None);
}

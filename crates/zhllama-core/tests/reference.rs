//! Conformance: the library against llama2.c's recorded outputs. The generation iterator yields
//! exactly the story `run` printed. Needs `../shared/reference`; without it the test prints
//! `SKIPPED <name>` (shown even with `--quiet`, see `zhllama_testkit::reference`) and passes.
//! What needs no recorded output (the hand-driven Generator, decode, reset) is in
//! generation.rs, on generated files.

use zhllama_core::{GenerateOptions, Model};

#[test]
fn generation_iterator_matches_runc() {
    let needs = [
        "llama2c/stories260K.bin",
        "llama2c/tok512.bin",
        "llama2c/runc/t0_n256.out",
        "llama2c/runc/t05_p095_s12345.out",
    ];
    let Some(r) = zhllama_testkit::reference("generation_iterator_matches_runc", &needs) else {
        return;
    };
    let ll = r.join("llama2c");
    let tok = ll.join("tok512.bin");
    let mut m = Model::load(ll.join("stories260K.bin"), Some(&tok), Some(2)).unwrap();
    assert_eq!(
        (m.dim(), m.n_layers(), m.n_heads(), m.n_kv_heads()),
        (64, 5, 8, 4)
    );
    assert_eq!((m.vocab_size(), m.seq_len(), m.version()), (512, 512, 0));

    let cases: [(&str, GenerateOptions, &str); 2] = [
        (
            "t0_n256",
            GenerateOptions {
                steps: 256,
                temperature: 0.0,
                ..Default::default()
            },
            "",
        ),
        (
            "t05_p095_s12345",
            GenerateOptions {
                steps: 256,
                temperature: 0.5,
                top_p: 0.95,
                seed: 12345,
                ..Default::default()
            },
            "The little dog",
        ),
    ];
    for (name, opts, prompt) in cases {
        let want = std::fs::read_to_string(ll.join(format!("runc/{name}.out"))).unwrap();
        let mut gen = m.generate(prompt, &opts).unwrap();
        let mut text = String::new();
        for piece in &mut gen {
            assert!(!piece.is_empty());
            text.push_str(&piece);
        }
        assert!(gen.tokens_per_second().is_some());
        assert_eq!(format!("{text}\n"), want, "{name}");
    }
}

//! `--batch-file` through the real binary: every JSON line's story is byte-identical to
//! `-i LINE -s SEED` run alone, in the file's order, with its counts and finish reason; bad
//! batch files and flag combinations give one clear line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zhllama_testkit::{Shape, Weights};

const BIN: &str = env!("CARGO_BIN_EXE_zhllama-rs");

fn files() -> (PathBuf, PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zhllama-cli-batch");
    let (m, q, t) = (
        dir.join("tiny.bin"),
        dir.join("tiny_q8.bin"),
        dir.join("tok.bin"),
    );
    let w = Weights::random(Shape::TINY, true, 1);
    zhllama_testkit::write(&m, &w.v0());
    zhllama_testkit::write(&q, &w.v2(4));
    zhllama_testkit::write(&t, &zhllama_testkit::tokenizer(Shape::TINY.vocab));
    (m, q, t)
}

fn run(model: &Path, tok: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg(model)
        .arg("-z")
        .arg(tok)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A flat JSON object of strings and integers, as the batch lines are (a test-sized reader).
fn parse_line(line: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut chars = line.trim().strip_prefix('{').unwrap().chars().peekable();
    let string = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> String {
        assert_eq!(chars.next(), Some('"'));
        let mut s = String::new();
        loop {
            match chars.next().unwrap() {
                '"' => return s,
                '\\' => match chars.next().unwrap() {
                    'n' => s.push('\n'),
                    'r' => s.push('\r'),
                    't' => s.push('\t'),
                    'u' => {
                        let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    c => s.push(c),
                },
                c => {
                    assert!(c as u32 >= 0x20, "raw control character in a JSON string");
                    s.push(c)
                }
            }
        }
    };
    loop {
        let key = string(&mut chars);
        assert_eq!(chars.next(), Some(':'));
        let value = if chars.peek() == Some(&'"') {
            string(&mut chars)
        } else {
            let mut v = String::new();
            while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                v.push(chars.next().unwrap());
            }
            assert!(!v.is_empty(), "a number");
            v
        };
        fields.insert(key, value);
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("unexpected {other:?} in {line}"),
        }
    }
    assert_eq!(chars.next(), None);
    fields
}

#[test]
fn every_batch_story_equals_the_story_told_alone() {
    let (model, model_q8, tok) = files();
    let prompts = [
        "一丁",
        "",
        "Once upon a time \"quoted\"\tand tabbed",
        "七",
        "丈三上下万",
        "x y",
    ];
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zhllama-cli-batch/prompts.txt");
    std::fs::write(&file, prompts.join("\r\n") + "\n").unwrap();
    let file = file.to_str().unwrap();
    for m in [&model, &model_q8] {
        for (parallel, steps) in [("1", "40"), ("4", "60"), ("8", "0")] {
            let out = run(
                m,
                &tok,
                &[
                    "--batch-file",
                    file,
                    "--parallel",
                    parallel,
                    "-n",
                    steps,
                    "-s",
                    "41",
                    "-t",
                    "0.9",
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("achieved tok/s: "));
            let stdout = String::from_utf8(out.stdout).unwrap();
            let lines: Vec<_> = stdout.lines().map(parse_line).collect();
            assert_eq!(lines.len(), prompts.len());
            for (i, (f, prompt)) in lines.iter().zip(prompts).enumerate() {
                assert_eq!(f["index"], i.to_string());
                assert_eq!(f["prompt"], prompt);
                let seed = (41 + i).to_string();
                assert_eq!(f["seed"], seed);
                let alone = run(
                    m,
                    &tok,
                    &["-i", prompt, "-n", steps, "-s", &seed, "-t", "0.9"],
                );
                assert!(alone.status.success());
                let alone = String::from_utf8(alone.stdout).unwrap();
                assert_eq!(
                    format!("{}\n", f["text"]),
                    alone,
                    "story {i} parallel {parallel}"
                );
                let (n_prompt, n_gen): (usize, usize) = (
                    f["prompt_tokens"].parse().unwrap(),
                    f["generated_tokens"].parse().unwrap(),
                );
                assert!(n_prompt >= 1);
                let total = if steps == "0" {
                    256
                } else {
                    steps.parse().unwrap()
                };
                match f["finish_reason"].as_str() {
                    "length" => assert_eq!((n_prompt - 1).min(total) + n_gen, total, "{f:?}"),
                    "eos" => assert!(n_prompt - 1 + n_gen <= total, "{f:?}"),
                    r => panic!("finish reason {r}"),
                }
            }
        }
    }
}

#[test]
fn bad_batch_files_and_flags_give_one_line() {
    let (model, _, tok) = files();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zhllama-cli-batch");
    let one_line = |out: &Output, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && !err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };
    let missing = dir.join("no-such-prompts.txt");
    let out = run(&model, &tok, &["--batch-file", missing.to_str().unwrap()]);
    one_line(&out, "no-such-prompts.txt: no such batch file");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    let out = run(&model, &tok, &["--batch-file", latin1.to_str().unwrap()]);
    one_line(&out, "latin1.txt: the batch file is not valid UTF-8");
    assert_eq!(out.status.code(), Some(1));
    // usage errors (exit 2): --parallel alone, 0, or with a prompt
    let ok = dir.join("ok.txt");
    std::fs::write(&ok, "一\n").unwrap();
    let ok = ok.to_str().unwrap();
    for args in [
        vec!["--parallel", "2"],
        vec!["--batch-file", ok, "--parallel", "0"],
        vec!["--batch-file", ok, "-i", "x"],
    ] {
        assert_eq!(run(&model, &tok, &args).status.code(), Some(2), "{args:?}");
    }
    let out = run(&model, &tok, &["--batch-file", ok, "-m", "chat"]);
    one_line(&out, "does not chat");
}

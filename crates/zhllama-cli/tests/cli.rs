//! Drives the real `zhllama-rs` binary.
//!
//! - Conformance: for every case in `../shared/reference/llama2c/runc/cases.tsv`, stdout equals
//!   what llama2.c's `run` printed, byte for byte; `--tokenize` gives sentencepiece's ids with the
//!   seed's tok5000. These need the reference folder: without it they print `SKIPPED <name>`
//!   (shown even with `--quiet`, see `zhllama_testkit::reference`) and pass.
//! - Everything else runs on random checkpoints and tokenizers written here (zhllama-testkit):
//!   thread-count independence on a model wide enough for the parallel paths, edge prompts and
//!   steps, chat, `--quantize`, `--tokenize`, and bad files and arguments (one line on stderr
//!   naming the file and the problem, a non-zero exit, never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use zhllama_core::{chat_prompt, GenerateOptions, Model, Tokenizer};
use zhllama_testkit::{Shape, Weights};

const BIN: &str = env!("CARGO_BIN_EXE_zhllama-rs");

/// The 15M model's widths (dim 288, hidden 768, head size 48) with 2 layers and a 128-token
/// context: its matmuls split across threads and, from position 113 on, so do its attention
/// heads (the thresholds are in zhllama-core's model.rs and kernels.rs).
const WIDE: Shape = Shape {
    dim: 288,
    hidden: 768,
    layers: 2,
    heads: 6,
    kv_heads: 6,
    vocab: 512,
    seq_len: 128,
};

/// The generated files every test shares (written once per test process).
struct Files {
    /// `Shape::TINY`, v0, shared classifier; default int8 group size 4 (hidden 172 = 4 · 43)
    tiny: PathBuf,
    /// the same weights as a v2 (int8, group size 4) file, as the exporter writes it
    tiny_q8: PathBuf,
    /// `WIDE`, v1, separate classifier
    wide: PathBuf,
    /// 512 entries: fits both models
    tok: PathBuf,
    /// 600 entries: a tokenizer for another model
    tok600: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        // Fixed names under cargo's scratch folder for tests; writes are atomic and the content
        // is always the same, so concurrent test runs cannot clash.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zhllama-cli-models");
        let put = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            zhllama_testkit::write(&p, &bytes);
            p
        };
        let tiny = Weights::random(Shape::TINY, true, 1);
        Files {
            tiny: put("tiny-v0.bin", tiny.v0()),
            tiny_q8: put("tiny-v2-gs4.bin", tiny.v2(4)),
            wide: put("wide-v1.bin", Weights::random(WIDE, false, 2).v1()),
            tok: put("tok512.bin", zhllama_testkit::tokenizer(512)),
            tok600: put("tok600.bin", zhllama_testkit::tokenizer(600)),
        }
    })
}

/// Splits an argument string as a POSIX shell would (quotes and backslashes; no expansions).
fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                have = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                if !matches!(n, '"' | '\\' | '$' | '`') {
                                    cur.push('\\');
                                }
                                cur.push(n);
                            }
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `model` with tokenizer `tok` and `args`; asserts success and returns stdout.
fn story(model: &Path, tok: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .arg(model)
        .arg("-z")
        .arg(tok)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("achieved tok/s: "));
    String::from_utf8(o.stdout).unwrap()
}

fn assert_clean_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zhllama-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn shell_split_handles_quotes() {
    assert_eq!(
        shell_split("-t 0 -i 'Once upon a time'"),
        ["-t", "0", "-i", "Once upon a time"]
    );
    assert_eq!(
        shell_split(r#"-i "a \"b\"" c\ d"#),
        ["-i", "a \"b\"", "c d"]
    );
}

#[test]
fn reproduces_every_runc_case_byte_for_byte() {
    let needs = [
        "llama2c/stories260K.bin",
        "llama2c/tok512.bin",
        "llama2c/runc/cases.tsv",
    ];
    let Some(r) = zhllama_testkit::reference("reproduces_every_runc_case_byte_for_byte", &needs)
    else {
        return;
    };
    let ll = r.join("llama2c");
    let cases = std::fs::read_to_string(ll.join("runc/cases.tsv")).unwrap();
    let mut n = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let (name, args) = line.split_once('\t').expect("name<TAB>args");
        let want = std::fs::read(ll.join(format!("runc/{name}.out"))).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg(ll.join("stories260K.bin"))
            .arg("-z")
            .arg(ll.join("tok512.bin"));
        cmd.args(shell_split(args));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == want,
            "{name} ({args}) differs:\n--- got\n{}\n--- want\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("achieved tok/s: "));
        n += 1;
    }
    assert!(n >= 8, "only {n} cases");
}

#[test]
fn thread_count_does_not_change_the_story() {
    // WIDE's whole context: split matmuls from the first token, parallel heads at the end.
    // Greedy runs it all (a random model's EOS and BOS logits are ~0, never the maximum);
    // sampled, a slightly different logit would sooner change a token.
    let f = files();
    for sampling in [["-t", "0", "-s", "1"], ["-t", "0.8", "-s", "7"]] {
        let go = |threads: &str| {
            let args = [&sampling[..], &["-n", "0", "--threads", threads]].concat();
            story(&f.wide, &f.tok, &args)
        };
        let one = go("1");
        assert_eq!(go("2"), one);
        assert_eq!(go("3"), one);
    }
}

#[test]
fn edge_prompts_and_steps() {
    let f = files();
    let go = |extra: &[&str]| story(&f.tiny, &f.tok, extra);
    // empty prompt = no prompt
    assert_eq!(
        go(&["-t", "0", "-n", "40", "-i", ""]),
        go(&["-t", "0", "-n", "40"])
    );
    // -n beyond the context = the context (256); -n 0 and negative too
    let full = go(&["-t", "0", "-n", "0"]);
    assert_ne!(full, go(&["-t", "0", "-n", "255"]));
    assert_eq!(go(&["-t", "0", "-n", "256"]), full);
    assert_eq!(go(&["-t", "0", "-n", "100000"]), full);
    assert_eq!(go(&["-t", "0", "-n", "-5"]), full);
    // a prompt longer than -n is echoed up to -n positions: after BOS come the dummy-prefix
    // space (dropped after BOS) and one token per character (each is in the generated vocab)
    let long = "一丁七万丈三上下不与";
    assert_eq!(go(&["-t", "0", "-n", "5", "-i", long]), "一丁七万\n");
    // a prompt longer than the whole context (one token per character here)
    let huge = "Lily and Ben were playing. ".repeat(20);
    let out = go(&["-t", "0", "-n", "0", "-i", &huge]);
    assert_eq!(out.trim_end().len(), 255, "{out}");
    assert!(huge.starts_with(out.trim_end()), "{out}");
    // long forms
    assert_eq!(
        go(&[
            "--temperature",
            "0",
            "--steps",
            "40",
            "--prompt",
            "The dog",
            "--threads",
            "2"
        ]),
        go(&["-t", "0", "-n", "40", "-i", "The dog"])
    );
}

#[test]
fn bad_files_give_one_clear_line() {
    let f = files();
    let (m, t) = (arg(&f.tiny), arg(&f.tok));

    // missing checkpoint
    let out = run(&["/nonexistent/model.bin", "-z", t]);
    assert_clean_error(&out, &["/nonexistent/model.bin", "no such file"]);

    // missing default tokenizer
    let out = Command::new(BIN)
        .arg(m)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_clean_error(&out, &["tokenizer.bin", "-z"]);

    // truncated checkpoint
    let bytes = std::fs::read(m).unwrap();
    let trunc = tmp("trunc.bin");
    std::fs::write(&trunc, &bytes[..bytes.len() - 100]).unwrap();
    let out = run(&[arg(&trunc), "-z", t]);
    assert_clean_error(&out, &["trunc.bin", "bytes"]);

    // tokenizer for another model (vocab 600 vs 512)
    let out = run(&[m, "-z", arg(&f.tok600)]);
    assert_clean_error(&out, &["tok600.bin", "600", "512"]);

    // the checkpoint passed as tokenizer, the tokenizer as checkpoint
    let out = run(&[t, "-z", m]);
    assert_clean_error(&out, &["tok512.bin"]);
    let out = run(&[m, "-z", m]);
    assert_clean_error(&out, &["tiny-v0.bin"]);

    // a directory
    let out = run(&[std::env::temp_dir().to_str().unwrap(), "-z", t]);
    assert_clean_error(&out, &["directory"]);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = run(&[]);
    assert!(!out.status.success());
    let out = run(&["m.bin", "-t", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["m.bin", "-q", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--temperature",
        "--top-p",
        "--seed",
        "--steps",
        "--prompt",
        "--tokenizer",
        "--mode",
        "--system",
        "--threads",
        "--no-eos-stop",
        "--tokenize",
        "context",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
        let out = Command::new(BIN)
            .args(["m.bin", "-i"])
            .arg(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn tokenize_mode_prints_ids() {
    // the mode itself, on the generated tokenizer: -i's text, then NUL-separated stdin records,
    // each the library's encoding (no BOS/EOS), one line per record
    use std::io::Write;
    let f = files();
    let tok = Tokenizer::from_file(&f.tok, None).unwrap();
    let ids = |text: &str| {
        let ids: Vec<String> = tok
            .encode(text, false, false)
            .iter()
            .map(u32::to_string)
            .collect();
        ids.join(" ") + "\n"
    };
    let texts = ["一丁  ab", "从前，有 a girl.", ""];
    let out = run(&["--tokenize", "-z", arg(&f.tok), "-i", texts[0]]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), ids(texts[0]));
    let mut child = Command::new(BIN)
        .args(["--tokenize", "-z", arg(&f.tok)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = texts.join("\0") + "\0";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: String = texts.iter().map(|t| ids(t)).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // byte tokens (3 + byte) for the characters the vocab lacks: 从 is E4 BB 8E
    assert!(ids("从").starts_with("259 231 190 145"), "{}", ids("从"));
}

#[test]
fn tokenize_mode_matches_sentencepiece_on_tok5000() {
    let Some(r) = zhllama_testkit::reference(
        "tokenize_mode_matches_sentencepiece_on_tok5000",
        &["zh/tok5000.bin"],
    ) else {
        return;
    };
    let zh = r.join("zh/tok5000.bin");
    let out = run(&[
        "--tokenize",
        "-z",
        arg(&zh),
        "-i",
        "从前，有一个小女孩叫莉莉。",
    ]);
    assert!(out.status.success());
    // sentencepiece's ids for this line with the seed's tok5000.model
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "265 296 319 260 271 262 269 281 340 314 315 267 267 259\n"
    );
}

#[test]
fn chat_mode_runs_from_stdin() {
    use std::io::Write;
    let f = files();
    let mut child = Command::new(BIN)
        .arg(&f.tiny)
        .arg("-z")
        .arg(&f.tok)
        .args(["-m", "chat", "-t", "0", "-n", "120", "-y", "You are kind."])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\nTell me a story\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    // One turn: the rendered [INST] prompt, then the greedy answer up to 120 positions (a random
    // model practically never samples EOS, which would end the turn). That answer is what the
    // library generates after the same prompt.
    let reply = s
        .strip_prefix("User: Assistant: ")
        .unwrap_or_else(|| panic!("{s}"));
    let prompt = chat_prompt(Some("You are kind."), "Hello");
    let mut m = Model::load(&f.tiny, Some(&f.tok), Some(1)).unwrap();
    let opts = GenerateOptions {
        steps: 120,
        temperature: 0.0,
        ..Default::default()
    };
    let whole: String = m.generate(&prompt, &opts).unwrap().collect();
    let tok = m.tokenizer().unwrap();
    let echo = tok.decode(&tok.encode(&prompt, true, false)).unwrap();
    let want = whole.strip_prefix(&echo).unwrap();
    assert!(!want.is_empty());
    assert_eq!(reply, format!("{want}\n"));
}

#[test]
fn quantize_q8_at_load() {
    let f = files();
    // sampled over the whole context: a random model's greedy story soon repeats one token
    let go = |model: &Path, extra: &[&str]| {
        story(
            model,
            &f.tok,
            &[&["-t", "1", "-s", "5", "-n", "0"], extra].concat(),
        )
    };
    let f32_story = go(&f.tiny, &[]);
    let q8 = go(&f.tiny, &["--quantize", "q8", "--threads", "1"]);
    // quantizing at load gives the exporter's bytes: the story of the int8 file of the same
    // weights (and the default group size is 4, the largest dividing 64 and 172)
    assert_eq!(q8, go(&f.tiny_q8, &[]));
    assert_eq!(q8, go(&f.tiny, &["--quantize", "q8", "--group-size", "4"]));
    // and it does change the numbers: int8's rounding moves the probabilities far more than
    // any f32 summation order could, and over 255 draws some coin falls between the two
    assert_ne!(q8, f32_story, "--quantize q8 ran f32 weights");
    // int8 with 1, 2 and 3 threads on the wide model (its int8 matmuls split from 172 rows)
    let wide = |threads: &str| {
        story(
            &f.wide,
            &f.tok,
            &[
                "-t",
                "0.8",
                "-s",
                "3",
                "-n",
                "0",
                "--quantize",
                "q8",
                "--threads",
                threads,
            ],
        )
    };
    let one = wide("1");
    assert_eq!(wide("2"), one);
    assert_eq!(wide("3"), one);
    // 8 divides dim 64 but not hidden 172
    let (m, t) = (arg(&f.tiny), arg(&f.tok));
    let o = run(&[m, "-z", t, "--quantize", "q8", "--group-size", "8"]);
    assert_clean_error(&o, &["group size 8", "172"]);
    let o = run(&[m, "--group-size", "4"]);
    assert_eq!(o.status.code(), Some(2), "--group-size needs --quantize");
    let o = run(&[m, "--quantize", "q4"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_sentencepiece_model_as_tokenizer_says_to_pass_the_bin() {
    // issue 16 item 5: `-z tok.model` used to say "entry 1 claims 3842378253 bytes".
    let Some(r) = zhllama_testkit::reference(
        "a_sentencepiece_model_as_tokenizer_says_to_pass_the_bin",
        &["llama2c/stories260K.bin", "llama2c/tok512.model"],
    ) else {
        return;
    };
    let (m, z) = (
        r.join("llama2c/stories260K.bin"),
        r.join("llama2c/tok512.model"),
    );
    for args in [
        vec![arg(&m), "-z", arg(&z)],
        vec!["--tokenize", "-z", arg(&z), "-i", "hi"],
    ] {
        let out = run(&args);
        assert_clean_error(
            &out,
            &[
                "tok512.model",
                "sentencepiece .model",
                "tokenizer.bin",
                "zhllama tokenizer export",
            ],
        );
    }
}

#[test]
fn the_default_tokenizer_is_found_beside_the_checkpoint() {
    // issue 16 item 5: no -z, no tokenizer.bin in the current folder, one beside the checkpoint.
    let f = files();
    let dir = tmp("beside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&f.tiny, dir.join("model.bin")).unwrap();
    std::fs::copy(&f.tok, dir.join("tokenizer.bin")).unwrap();
    let cwd = tmp("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let args = ["-t", "0", "-n", "40", "-i", "Once"];
    let out = Command::new(BIN)
        .arg(dir.join("model.bin"))
        .args(args)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        story(&f.tiny, &f.tok, &args)
    );
    // --tokenize finds it the same way
    let out = Command::new(BIN)
        .arg(dir.join("model.bin"))
        .args(["--tokenize", "-i", "Once"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nowhere at all: the error says where it looked
    let out = Command::new(BIN)
        .arg(&f.tiny)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_clean_error(&out, &["tokenizer.bin", "beside the checkpoint", "-z"]);
}

#[test]
fn chat_says_when_the_context_is_full() {
    // issue 16 item 7: a reply that fills -n used to end with status 0 and not a word.
    use std::io::Write;
    let f = files();
    let mut child = Command::new(BIN)
        .arg(&f.tiny)
        .arg("-z")
        .arg(&f.tok)
        .args(["-m", "chat", "-t", "0", "-n", "90"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the first line is the system prompt (stdin is not a terminal: no hint line)
    let stdin = child.stdin.take().unwrap();
    writeln!(&stdin, "be kind\nhello").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("Enter system prompt (optional): User: Assistant: "));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "zhllama-rs: context full at 90 tokens (-n 90 of the model's 256); the conversation \
         ends here\n"
    );
}

#[test]
fn chat_mode_is_documented_in_help() {
    let out = run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        r"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]",
        "FIRST LINE",
        "context full at N tokens",
        "not\ntrained on this template",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from --help");
    }
}

#[test]
fn version_names_the_build_and_the_cpu_features_used_here() {
    // issue 16 item 8
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(concat!("zhllama-rs ", env!("CARGO_PKG_VERSION")))
    );
    let features = lines.next().unwrap();
    #[cfg(target_arch = "x86_64")]
    for (name, has) in [
        ("avx2", is_x86_feature_detected!("avx2")),
        ("fma", is_x86_feature_detected!("fma")),
        ("avx512f", is_x86_feature_detected!("avx512f")),
        ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
    ] {
        let want = format!("{name} {}", if has { "yes" } else { "no" });
        assert!(features.contains(&want), "{want:?} not in {features:?}");
    }
    assert!(lines.next().unwrap().starts_with("kernels: "));
    // capped for an A/B, the report follows
    let capped = Command::new(BIN)
        .arg("-V")
        .env("ZHLLAMA_SIMD", "portable")
        .output()
        .unwrap();
    assert!(String::from_utf8(capped.stdout)
        .unwrap()
        .contains("kernels: portable code"));
}

//! Faults found by fuzzing and crash tests (issue 15), each reproduced on the real binary with
//! files written here: a header whose context would not fit in memory, files that are not
//! regular files, a stdout that fails or closes, and a file name holding a newline.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zhllama-rs");

/// A time after which a run that should end at once is called a hang. Generous: it only
/// decides between "ended" and "never ends", never how fast anything is.
const HANG: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zhllama-cli-faults-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A version-1 checkpoint: dim 64, hidden 96, 2 layers, 4 heads, 2 kv heads, vocab 300, the
/// given context, shared classifier, small pseudo-random weights.
fn checkpoint(seq_len: usize) -> Vec<u8> {
    let (d, h, l, nh, nkv, v) = (64usize, 96usize, 2usize, 4usize, 2usize, 300usize);
    let kvd = nkv * d / nh;
    let mut out = 0x616b_3432u32.to_le_bytes().to_vec();
    out.extend_from_slice(&1i32.to_le_bytes());
    for x in [d, h, l, nh, nkv, v, seq_len] {
        out.extend_from_slice(&(x as i32).to_le_bytes());
    }
    out.push(1);
    out.resize(256, 0);
    let floats = v * d + l * (2 * d + 2 * d * d + 2 * kvd * d + 3 * h * d) + d;
    let mut state = 12345u64;
    for _ in 0..floats {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// A 300-entry tokenizer.bin: <unk>, BOS, EOS, the 256 byte tokens, a few pieces.
fn tokenizer() -> Vec<u8> {
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    for p in [" ", "h", "i", "hi", " hi", "s", "y", "从", "前"] {
        pieces.push(p.as_bytes().to_vec());
    }
    let mut i = 0;
    while pieces.len() < 300 {
        pieces.push(format!("w{i}").into_bytes());
        i += 1;
    }
    let mut out = 8u32.to_le_bytes().to_vec();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&(-(i as f32)).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn files(seq_len: usize) -> (PathBuf, PathBuf) {
    let model = tmp(&format!("model-{seq_len}.bin"));
    let tok = tmp("tok.bin");
    // Atomic writes: tests run in parallel, and one must never read a file another is still
    // writing (a "truncated" checkpoint made this test flaky).
    if !model.exists() {
        zhllama_testkit::write(&model, &checkpoint(seq_len));
    }
    if !tok.exists() {
        zhllama_testkit::write(&tok, &tokenizer());
    }
    (model, tok)
}

/// Waits for `child`, killing it (and failing) if it runs into [`HANG`].
fn finish(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {HANG:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str], what: &str) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, what)
}

/// Exit status 1 from `exit(1)`, not a signal or a panic, and exactly one line on stderr
/// holding every needle.
fn assert_one_line_error(out: &Output, needles: &[&str], what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: status {:?}, stderr {err:?}",
        out.status
    );
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: stderr is not one line: {err:?}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: {err:?} lacks {n:?}");
    }
}

/// The binary under `ulimit -v` (KiB of address space), through the shell.
fn run_limited(kib: u64, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("ulimit -v {kib} && exec '{BIN}' {}", quoted.join(" "));
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, "ulimit run")
}

fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[test]
fn a_huge_context_costs_only_the_positions_run_and_fails_cleanly() {
    // seq_len 2^20: the whole KV cache would be 4·(2·2·2^20·32 + 4·2^20) bytes ≈ 553 MB, past
    // a 400 MB address-space limit. A file of version 1 has nothing whose size depends on
    // seq_len, so the size check cannot catch it; the old engine allocated it all at load
    // and aborted (SIGABRT) when the allocation failed.
    let (model, tok) = files(1 << 20);
    let (m, t) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let limit = 400_000;
    let ok = run_limited(limit, &[m, "-z", t, "-n", "8", "-t", "0", "-i", "hi"]);
    assert_eq!(signal_of(&ok.status), None, "{ok:?}");
    assert!(ok.status.success(), "8 positions need a few KiB: {ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("hi"));
    for mode in ["generate", "chat"] {
        let out = run_limited(
            limit,
            &[m, "-z", t, "-n", "0", "-m", mode, "-y", "s", "-i", "hi"],
        );
        assert_eq!(
            signal_of(&out.status),
            None,
            "{mode}: killed by a signal: {out:?}"
        );
        assert_one_line_error(
            &out,
            &[
                "cannot allocate 553648128 bytes",
                "KV cache of 1048576 positions",
                "-n",
            ],
            mode,
        );
    }
}

fn mkfifo(name: &str) -> PathBuf {
    let p = tmp(name);
    let _ = std::fs::remove_file(&p);
    let st = Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(st.success());
    p
}

#[test]
fn devices_and_fifos_are_refused_without_reading_them() {
    let (model, tok) = files(64);
    let (m, t) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let fifo = mkfifo("pipe.bin");
    let f = fifo.to_str().unwrap();
    // Before: /dev/zero as tokenizer grew to GBs, /dev/urandom never ended, a FIFO waited
    // for a writer forever.
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["/dev/zero", "-z", t],
            "/dev/zero",
            "is a character device, not a checkpoint file",
        ),
        (
            vec![m, "-z", "/dev/zero"],
            "/dev/zero",
            "is a character device, not a tokenizer file",
        ),
        (
            vec![m, "-z", "/dev/urandom"],
            "/dev/urandom",
            "not a tokenizer file",
        ),
        (
            vec![f, "-z", t],
            f,
            "is a named pipe (FIFO), not a checkpoint file",
        ),
        (
            vec![m, "-z", f],
            f,
            "is a named pipe (FIFO), not a tokenizer file",
        ),
        (
            vec!["--tokenize", "-z", "/dev/urandom", "-i", "hi"],
            "/dev/urandom",
            "tokenizer file",
        ),
        (vec!["--tokenize", "-z", f, "-i", "hi"], f, "tokenizer file"),
        (
            vec![f, "--tokenize", "-z", t, "-i", "hi"],
            f,
            "checkpoint file",
        ),
    ];
    for (args, name, why) in cases {
        let what = args.join(" ");
        let out = run(&args, &what);
        assert_one_line_error(&out, &[name, why], &what);
    }
}

#[test]
fn a_full_stdout_is_one_error_line_in_every_mode() {
    let (model, tok) = files(64);
    let (m, t) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let modes: [&[&str]; 4] = [
        &["-i", "hi"],
        &["-m", "chat", "-y", "sys", "-i", "hi"],
        &["-m", "chat"], // the prompts for the system and user lines are output too
        &["--tokenize", "-i", "hi"],
    ];
    for mode in modes {
        let mut args = vec![m, "-z", t, "-n", "20", "-t", "0"];
        args.extend_from_slice(mode);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = finish(child, &args.join(" "));
        assert_one_line_error(
            &out,
            &["cannot write to stdout", "No space left on device"],
            &args.join(" "),
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly_in_every_mode() {
    let (model, tok) = files(64);
    let (m, t) = (model.to_str().unwrap(), tok.to_str().unwrap());
    let modes: [&[&str]; 3] = [
        &["-i", "hi", "--no-eos-stop"],
        &["-m", "chat", "-y", "sys", "-i", "hi"],
        &["--tokenize", "-i", "hi"],
    ];
    for mode in modes {
        let mut args = vec![m, "-z", t, "-n", "64", "-t", "0"];
        args.extend_from_slice(mode);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before anything is written
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = finish(child, &args.join(" ")).status;
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?} {err}");
        assert!(
            !err.contains("panicked") && !err.contains("zhllama-rs:"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_name_with_a_newline_stays_on_one_line() {
    let (model, _) = files(64);
    let odd = tmp("bad\nname.bin");
    std::fs::write(&odd, b"short").unwrap();
    let m = model.to_str().unwrap();
    let o = odd.to_str().unwrap();
    let out = run(&[m, "-z", o], "tokenizer with a newline");
    assert_one_line_error(
        &out,
        &["bad\\nname.bin\"", "entry 0 is cut off"],
        "tokenizer",
    );
    let out = run(&[o, "-z", o], "checkpoint with a newline");
    assert_one_line_error(
        &out,
        &["bad\\nname.bin\"", "too short for a checkpoint"],
        "ckpt",
    );
    let missing = tmp("it's missing.bin");
    let out = run(&[missing.to_str().unwrap(), "-z", o], "quote in the name");
    assert_one_line_error(&out, &["it's missing.bin\": no such file"], "missing");
}

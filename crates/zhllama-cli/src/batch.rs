//! `--batch-file FILE --parallel N`: one story per line of FILE, N told at a time by the core
//! scheduler (one weight pass per step for all of them), one JSON line per story on stdout, in
//! the file's order.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use zhllama_core::{batch_seeds, GenerateOptions, Model, Scheduler, DEFAULT_STEP_TOKENS};

/// The prompts of `path`, one per line (`\r\n` or `\n`; an empty line is an empty prompt).
pub fn read_prompts(path: &Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown}: no such batch file"),
        _ => format!("{shown}: cannot read the batch file: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{shown}: the batch file is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// `s` as a JSON string (RFC 8259: quotes, backslashes and control characters escaped, the
/// rest as UTF-8).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One finished story, as its JSON line is written.
struct Story {
    text: String,
    done: Option<String>,
}

/// Tells every prompt's story, `parallel` at a time; story `i` uses seed `seed + i` (`seed` 0:
/// from the clock, then + i). Each line: index, prompt, text (the prompt then the story, as
/// `zhllama-rs -i PROMPT` prints it), prompt and generated token counts, finish reason
/// (`eos` or `length`), seed. Returns the stories' generated tokens per second.
pub fn run(
    model: &mut Model,
    prompts: &[String],
    opts: &GenerateOptions,
    parallel: usize,
    out: &mut impl Write,
) -> Result<Option<f64>, super::Failure> {
    let seeds = batch_seeds(opts.seed, prompts.len());
    let mut sched = Scheduler::new(model, parallel, DEFAULT_STEP_TOKENS);
    for (i, (p, &seed)) in prompts.iter().zip(&seeds).enumerate() {
        let o = GenerateOptions {
            seed,
            ..opts.clone()
        };
        let id = sched.add(model, p, &o)?;
        debug_assert_eq!(id as usize, i, "ids are given in order from 0");
    }
    let mut stories: Vec<Story> = (0..prompts.len())
        .map(|_| Story {
            text: String::new(),
            done: None,
        })
        .collect();
    let (mut written, mut generated) = (0, 0usize);
    let start = Instant::now();
    while !sched.is_idle() {
        for u in sched.step(model)? {
            let i = u.id as usize;
            let s = &mut stories[i];
            s.text.push_str(&u.text);
            if let Some(f) = u.finished {
                generated += f.generated_tokens;
                s.done = Some(format!(
                    "{{\"index\":{i},\"prompt\":{},\"text\":{},\"prompt_tokens\":{},\
                     \"generated_tokens\":{},\"finish_reason\":\"{}\",\"seed\":{}}}\n",
                    json_str(&prompts[i]),
                    json_str(&s.text),
                    f.prompt_tokens,
                    f.generated_tokens,
                    f.reason.as_str(),
                    seeds[i]
                ));
            }
        }
        // in the file's order, each line as soon as the stories before it are done
        while let Some(line) = stories.get_mut(written).and_then(|s| s.done.take()) {
            super::emit(out, line.as_bytes())?;
            stories[written].text = String::new();
            written += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((generated > 0 && secs > 0.0).then(|| generated as f64 / secs))
}

#[cfg(test)]
mod tests {
    use super::json_str;

    #[test]
    fn json_strings_escape_what_they_must() {
        assert_eq!(
            json_str("a\"b\\c\nd\u{1}é一"),
            "\"a\\\"b\\\\c\\nd\\u0001é一\""
        );
    }
}

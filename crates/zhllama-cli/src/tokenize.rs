//! `--tokenize`: the ids sentencepiece would give, one line per record.

use std::io::{Read, Write};

use zhllama_core::Tokenizer;

use crate::args::Cli;
use crate::{load_tokenizer_hint, Failure};

/// stdin's records: lines (a final newline ends the last one, `\r\n` counts as one newline) or,
/// with `null`, NUL-terminated records. Empty input is one empty record, as `-i ''` is.
fn records(text: &str, null: bool) -> Vec<String> {
    let sep = if null { '\0' } else { '\n' };
    let mut recs: Vec<String> = text.split(sep).map(str::to_string).collect();
    if recs.len() > 1 && recs.last().is_some_and(|r| r.is_empty()) {
        recs.pop();
    }
    if !null {
        for r in &mut recs {
            if r.ends_with('\r') {
                r.pop();
            }
        }
    }
    recs
}

pub(crate) fn tokenize(cli: &Cli) -> Result<(), Failure> {
    let vocab = match &cli.checkpoint {
        Some(c) => Some(zhllama_core::read_config(c)?.vocab_size),
        None => None,
    };
    let tok = Tokenizer::from_file(cli.tokenizer_path(), vocab)
        .map_err(|e| load_tokenizer_hint(e, cli))?;
    let texts: Vec<String> = match &cli.prompt {
        Some(p) => vec![p.clone()],
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("stdin: {e}"))?;
            let text = String::from_utf8(buf).map_err(|_| "stdin: not valid UTF-8".to_string())?;
            records(&text, cli.null)
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for t in texts {
        let ids: Vec<String> = tok
            .encode(&t, false, false)
            .iter()
            .map(u32::to_string)
            .collect();
        writeln!(out, "{}", ids.join(" "))?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::records;

    #[test]
    fn lines_by_default_nul_records_on_request() {
        assert_eq!(records("a\nb c\r\n\nd", false), ["a", "b c", "", "d"]);
        assert_eq!(records("a\nb\n", false), ["a", "b"]);
        assert_eq!(records("", false), [""]);
        assert_eq!(records("x\ny\0z\0", true), ["x\ny", "z"]);
    }
}

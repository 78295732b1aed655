//! `--tokenize`: the ids sentencepiece would give, one line per record.

use std::io::{Read, Write};

use zhllama_core::Tokenizer;

use crate::args::Cli;
use crate::{load_tokenizer_hint, Failure};

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
            let mut recs: Vec<String> = text.split('\0').map(str::to_string).collect();
            if recs.len() > 1 && recs.last().is_some_and(|r| r.is_empty()) {
                recs.pop();
            }
            recs
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

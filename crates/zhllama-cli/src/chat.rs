//! `-m chat`: the terminal side of a conversation (reading lines, printing the reply as it is
//! sampled). The template and the turn loop are zhllama-core's [`Chat`].

use std::io::{BufRead, IsTerminal, Write};

use zhllama_core::{Chat, GenerateOptions, Model};

use crate::args::Cli;
use crate::{emit, Failure};

/// Reads one line from stdin after printing `guide`; `None` at end of input.
fn read_line(out: &mut impl Write, guide: &str) -> Result<Option<String>, Failure> {
    emit(out, guide.as_bytes())?;
    let mut line = String::new();
    Ok(match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            while line.ends_with('\n') || line.ends_with('\r') {
                line.pop();
            }
            Some(line)
        }
    })
}

/// Chat as run.c does: the system prompt (`-y`, or else the first line of input), then user
/// turns (`-i` for the first, then a line each), until the positions run out or stdin ends.
pub(crate) fn chat(model: &mut Model, cli: &Cli, opts: &GenerateOptions) -> Result<(), Failure> {
    let mut chat = Chat::new(model, opts)?;
    let mut out = std::io::stdout().lock();
    if cli.system.is_none() && std::io::stdin().is_terminal() {
        // Typed by hand: say what the first line is before asking for it.
        let _ = writeln!(
            std::io::stderr(),
            "(chat: the first line is the system prompt, Enter for none, or pass -y; then one \
             line per turn; Ctrl-D ends)"
        );
    }
    while chat.awaiting_user() {
        let first = chat.is_first_turn();
        let system = match (&cli.system, first) {
            (Some(s), true) => Some(s.clone()),
            (None, true) => match read_line(&mut out, "Enter system prompt (optional): ")? {
                Some(s) => Some(s),
                None => break,
            },
            _ => None,
        };
        let user = match (&cli.prompt, first) {
            (Some(p), true) => p.clone(),
            _ => match read_line(&mut out, "User: ")? {
                Some(s) => s,
                None => break,
            },
        };
        chat.say(model, system.as_deref(), &user)?;
        emit(&mut out, b"Assistant: ")?;
        while let Some(text) = chat.step(model)? {
            emit(&mut out, text.as_bytes())?;
        }
    }
    let text = chat.finish();
    emit(&mut out, text.as_bytes())?;
    emit(&mut out, b"\n")?;
    if chat.is_full() {
        let limit = if chat.steps() < model.seq_len() {
            format!("-n {} of the model's {}", chat.steps(), model.seq_len())
        } else {
            "the model's whole context".to_owned()
        };
        crate::report(&format!(
            "context full at {} tokens ({limit}); the conversation ends here",
            chat.positions()
        ));
    }
    Ok(())
}

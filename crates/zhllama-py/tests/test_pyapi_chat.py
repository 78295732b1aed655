"""Model.chat against `zhllama-rs -m chat`: the same lines give the same replies, over several
turns (the engine's one chat state machine behind both), and the edges a user meets: the
context filling up, the system prompt counting once, a chat outlived by another run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import zhllama_rs

LINES = ["hello", "tell me more", "and then?"]


def cli_transcript(native: Path, files, steps: int, seed: int, system: str) -> str:
    """What the binary prints for LINES on stdin (the system prompt from -y)."""
    args = [str(files.model), "-z", str(files.tokenizer), "-m", "chat", "-y", system]
    args += ["-n", str(steps), "-t", "1.0", "-p", "0.9", "-s", str(seed), "--threads", "1"]
    stdin = "".join(line + "\n" for line in LINES).encode()
    r = subprocess.run([str(native), *args], input=stdin, capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def python_transcript(files, steps: int, seed: int, system: str) -> tuple[str, int]:
    """The same conversation through Model.chat, laid out as the CLI prints it; and its turns."""
    model = zhllama_rs.Model(files.model, files.tokenizer, threads=1)
    chat = model.chat(steps=steps, temperature=1.0, top_p=0.9, seed=seed)
    out, turns = "", 0
    for line in LINES:
        out += "User: Assistant: " + chat.say(line, system=system)
        turns += 1
        if chat.full:
            return out + "\n", turns
    return out + "User: \n", turns  # the CLI asks once more, then stdin ends


def test_replies_match_the_cli_over_several_turns(native_cli, tiny) -> None:
    # A random model ends a turn only when it happens to sample EOS: look for a seed whose
    # conversation has more than one reply, then compare it whole, byte for byte.
    multi = 0
    for seed in range(1, 40):
        want = cli_transcript(native_cli, tiny, 256, seed, "be kind")
        got, turns = python_transcript(tiny, 256, seed, "be kind")
        assert got == want, seed
        multi += turns > 1
        if multi >= 2:
            break
    assert multi >= 2, "no seed gave a conversation of several turns"


def test_a_full_context_stops_the_reply_and_then_refuses(tiny) -> None:
    model = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    chat = model.chat(steps=80, temperature=0.0)
    assert (chat.steps, chat.positions, chat.full) == (80, 0, False)
    reply = chat.say("hello", system="be kind")
    assert chat.full and chat.positions == 80 and reply
    with pytest.raises(ValueError, match="context full at 80 tokens"):
        chat.say("more")
    # steps 0 or beyond the context: the whole context
    assert model.chat(steps=0).steps == model.seq_len == model.chat(steps=10**6).steps


def test_system_prompt_counts_on_the_first_turn_only(tiny) -> None:
    model = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    first = model.chat(steps=60, temperature=0.0).say("hi", system="be kind")
    # the reply is the greedy continuation of the rendered first turn
    prompt = "[INST] <<SYS>>\nbe kind\n<</SYS>>\n\nhi [/INST]"
    whole = model.generate(prompt, steps=60, temperature=0.0)
    tok = model.tokenizer
    assert tok is not None
    assert whole == tok.decode(tok.encode(prompt)) + first


def test_a_chat_outlived_by_another_run_refuses(tiny) -> None:
    model = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    chat = model.chat(steps=30, temperature=0.0)
    model.generate("x", steps=5)
    with pytest.raises(RuntimeError, match="start a new chat"):
        chat.say("hi")
    with pytest.raises(ValueError, match="NaN"):
        model.chat(temperature=float("nan"))

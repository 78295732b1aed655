"""zhllama_rs.Model, Stream and Tokenizer: every call, on random models (and one conformance
check on the reference model)."""

from __future__ import annotations

import numpy as np
import pytest
import zhllama_rs


def test_config_properties(tiny, tiny_v1) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    assert (m.dim, m.hidden_dim, m.n_layers, m.n_heads, m.n_kv_heads) == (64, 172, 2, 8, 4)
    assert (m.vocab_size, m.seq_len, m.version) == (512, 256, 0)
    assert m.quantized is False and m.shared_classifier is True and m.threads == 1
    assert m.checkpoint == str(tiny.model)
    assert "dim=64" in repr(m)
    v1 = zhllama_rs.Model(str(tiny_v1.model))  # str or PathLike; no tokenizer
    assert (v1.version, v1.shared_classifier, v1.tokenizer) == (1, False, None)
    assert v1.threads >= 1  # None = the physical cores
    with pytest.raises(AttributeError):
        m.dim = 3  # type: ignore[misc]


def test_generate_equals_stream(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    for kw in [
        dict(prompt="从前", steps=40, temperature=0.0),
        dict(prompt="", steps=60, temperature=1.0, top_p=0.9, seed=5),
        dict(prompt="一丁", steps=0, temperature=0.7, top_p=1.0, seed=9, stop_at_eos=False),
    ]:
        text = m.generate(**kw)
        s = m.stream(**kw)
        pieces = list(s)
        assert all(pieces), "pieces are never empty"
        assert "".join(pieces) == text
        assert s.done and s.steps == (kw["steps"] or m.seq_len)
        assert 1 <= s.positions <= s.steps  # EOS/BOS may end it early
        assert s.prompt_tokens[0] == zhllama_rs.BOS
        assert len(s.prompt_tokens) + len(s.generated_tokens) == s.positions + 1
        assert s.tokens_per_second is not None and s.tokens_per_second > 0
        assert list(s) == []  # a finished stream stays finished
    assert m.generate("从前", steps=40, temperature=0.8, seed=3) == m.generate(
        "从前", steps=40, temperature=0.8, seed=3
    )


def test_stream_pieces_are_whole_characters(tiny) -> None:
    """前 (U+524D) is not in the random vocab: its 3 UTF-8 bytes are 3 byte tokens, yet the
    stream yields it whole, never a U+FFFD or a broken piece."""
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    tok = m.tokenizer
    assert tok is not None
    prompt = "从前有一座山"
    ids = tok.encode(prompt)
    assert len(ids) > len(prompt) + 1  # byte tokens are in there
    # n prompt tokens take n - 1 positions to echo; stop there: nothing is sampled
    pieces = list(m.stream(prompt, steps=len(ids) - 1))
    assert "".join(pieces) == prompt
    assert "前" in pieces or any("前" in p for p in pieces)
    assert all("\ufffd" not in p for p in pieces)


def test_forward_and_reset_match_generate(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    tok = m.tokenizer
    assert tok is not None
    ids = tok.encode("从")
    steps = 24
    m.reset()
    first = None
    for pos in range(steps):
        logits = m.forward(ids[pos], pos)
        assert isinstance(logits, np.ndarray)
        assert logits.dtype == np.float32 and logits.shape == (m.vocab_size,)
        if pos == 0:
            first = logits.copy()
        if pos + 1 >= len(ids):
            ids.append(int(np.argmax(logits)))
    assert tok.decode(ids) == m.generate("从", steps=steps, temperature=0.0)
    m.reset()
    again = m.forward(ids[0], 0)
    np.testing.assert_array_equal(again, first)
    again[:] = 0  # a fresh array each call: writing to it changes nothing in the model
    np.testing.assert_array_equal(m.forward(ids[0], 0), first)


def test_score_is_forwards_log_softmax(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=2)
    ids = m.tokenizer.encode("从前有一只猫。")  # type: ignore[union-attr]
    scores = m.score(ids)
    assert scores.dtype == np.float32 and scores.shape == (len(ids) - 1,)
    m.reset()
    for pos in range(len(ids) - 1):
        logits = m.forward(ids[pos], pos).astype(np.float64)
        want = logits[ids[pos + 1]] - np.log(np.exp(logits).sum())
        assert abs(scores[pos] - want) < 1e-5
    # batched: each sequence as if scored alone, whatever came before it
    other = [1, 5, 9, 300]
    batch = m.score_batch([other, ids, (i for i in ids[:3])])
    np.testing.assert_array_equal(batch[1], scores)
    np.testing.assert_array_equal(batch[0], m.score(other))
    np.testing.assert_array_equal(batch[2], scores[:2])
    assert m.score([1]).shape == (0,)
    with pytest.raises(ValueError, match="outside the vocab"):
        m.score_batch([other, [1, 512]])  # checked before anything runs
    with pytest.raises(ValueError, match="seq_len 256"):
        m.score([1] * 258)
    assert m.score([1] * 257).shape == (256,)  # a training window of seq_len + 1


def test_tokenizer(tiny) -> None:
    tok = zhllama_rs.Tokenizer(tiny.tokenizer, 512)
    assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (512, 1, 2)
    ids = tok.encode("Once upon a time")
    assert ids[0] == 1 and ids[-1] != 2
    assert tok.encode("Once upon a time", bos=False, eos=True)[-1] == 2
    assert tok.encode("Once upon a time", bos=False, eos=True)[:-1] == ids[1:]
    assert tok.decode(ids) == "Once upon a time"
    assert tok.decode(np.array(ids, dtype=np.int64)) == "Once upon a time"  # any iterable
    assert tok.encode("") == [1] and tok.decode([]) == ""
    # without a vocab size: every entry of the file
    assert zhllama_rs.Tokenizer(tiny.tokenizer).vocab_size == 512
    assert "vocab_size=512" in repr(tok)
    # the model's tokenizer is the same thing
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer)
    assert m.tokenizer is not None and m.tokenizer.encode("Lily") == tok.encode("Lily")
    assert m.tokenizer is m.tokenizer


def test_stream_refuses_an_overwritten_cache(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    for interrupt in [
        lambda: m.generate("从", steps=5),
        lambda: m.forward(1, 0),
        lambda: m.reset(),
        lambda: m.stream("从"),
    ]:
        s = m.stream("从前", steps=30, temperature=0.0)
        next(s)
        interrupt()
        with pytest.raises(RuntimeError, match="start a new stream"):
            next(s)
    # a stream that already finished is unaffected
    s = m.stream("从", steps=4, temperature=0.0)
    list(s)
    m.reset()
    assert list(s) == []


def test_reference_story(reference) -> None:
    """Conformance: stories260K's greedy story begins as llama2.c's run prints it."""
    m = zhllama_rs.Model(reference.model, reference.tokenizer)
    text = m.generate("Once upon a time", steps=64, temperature=0.0)
    assert text.startswith("Once upon a time, there was a little girl named Lily.")

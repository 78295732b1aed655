from __future__ import annotations

import struct

import pytest
import sentencepiece as spm
from zhllama.errors import ZhllamaError
from zhllama_tokenizer.binfile import (
    BOS_TEXT,
    EOS_TEXT,
    export_llama2c,
    read_tokenizer_bin,
)


def _f32(x: float) -> bytes:
    return struct.pack("<f", x)


def assert_agrees(tb, model_path) -> None:
    """Every id: the same piece (byte tokens as their raw byte) and the same f32 score."""
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    assert tb.vocab_size == sp.vocab_size()
    for i in range(sp.vocab_size()):
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            assert tb.is_byte(i)
            assert tb.pieces[i] == bytes([int(piece[3:5], 16)]), i
        elif i == sp.bos_id():
            assert tb.pieces[i] == BOS_TEXT
        elif i == sp.eos_id():
            assert tb.pieces[i] == EOS_TEXT
        else:
            assert not tb.is_byte(i)
            assert tb.pieces[i] == piece.replace("\u2581", " ").encode(), i
            assert tb.piece_id(tb.pieces[i]) == i  # lookups answer the normal piece
        assert _f32(tb.scores[i]) == _f32(sp.get_score(i)), i


def test_tok512_export_is_byte_identical(tmp_path, reference):
    out = export_llama2c(reference("llama2c", "tok512.model"), tmp_path / "tok512.bin")
    assert out.read_bytes() == reference("llama2c", "tok512.bin").read_bytes()


def test_tok5000_old_byte_format_reads(reference):
    tb = read_tokenizer_bin(reference("zh", "tok5000.bin"), 5000)
    assert tb.byte_format == "latin1"
    assert_agrees(tb, reference("zh", "tok5000.model"))
    # the plain space is both byte token 35 and the real piece 265: lookups give the piece
    assert tb.piece_id(b" ") == 265


def test_tok5000_latin1_export_is_the_seed_file(tmp_path, reference):
    """`zhllama tokenizer export tok5000.model --format llama2c-latin1` writes the seed's own
    tok5000.bin byte for byte (the older exporter's format, for tools that only read that)."""
    from zhllama.cli import main

    out = tmp_path / "tok5000.bin"
    argv = ["tokenizer", "export", str(reference("zh", "tok5000.model")), "-f", "llama2c-latin1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.read_bytes() == reference("zh", "tok5000.bin").read_bytes()


def test_trained_round_trip_both_formats(trained, tmp_path, vocab_size):
    assert read_tokenizer_bin(trained.bin, vocab_size).byte_format == "hex"
    for fmt in ("hex", "latin1"):
        path = export_llama2c(trained.model, tmp_path / f"{fmt}.bin", byte_format=fmt)
        tb = read_tokenizer_bin(path, vocab_size)
        assert tb.byte_format == fmt
        assert_agrees(tb, trained.model)


def test_wrong_vocab_size_and_truncation(trained, tmp_path, vocab_size):
    with pytest.raises(ZhllamaError, match="bytes left"):
        read_tokenizer_bin(trained.bin, vocab_size - 1)
    with pytest.raises(ZhllamaError, match="ends after"):
        read_tokenizer_bin(trained.bin, vocab_size + 1)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(trained.bin.read_bytes()[:-3])
    with pytest.raises(ZhllamaError, match="cut.bin"):
        read_tokenizer_bin(cut, vocab_size)

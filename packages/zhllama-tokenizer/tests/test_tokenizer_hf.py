from __future__ import annotations

import json

import pytest
import sentencepiece as spm
import tokenizers
import transformers
from zhllama_tokenizer.hf import export_hf

CHINESE = [
    "从前，有一个小女孩叫莉莉。她喜欢在公园里玩。",
    "他说：“你好！我今年5岁了，123。”\n然后他们一起回家了。",
    "小猫咪🐱看见了一只蝴蝶，觉得很奇怪：这是什么？",
    "",
]
# whitespace sentencepiece normalises: runs of spaces, leading/trailing spaces
WHITESPACE = ["从前  有   猫", "  两个  空格 ", " ", "a\tb\u3000c  ", " 前\n 后 ", "猫 "]


@pytest.fixture(scope="module")
def hf_dir(trained, tmp_path_factory):
    return export_hf(trained.model, tmp_path_factory.mktemp("hf") / "tokenizer")


def test_files_and_config(hf_dir, trained):
    names = {p.name for p in hf_dir.iterdir()}
    assert {
        "tokenizer.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    assert (hf_dir / "tokenizer.model").read_bytes() == trained.model.read_bytes()
    config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["add_bos_token"] is True and config["add_eos_token"] is False
    assert "chat_template" not in config


@pytest.mark.parametrize("cls", ["AutoTokenizer", "LlamaTokenizer", "LlamaTokenizerFast"])
def test_transformers_encodes_like_sentencepiece(hf_dir, trained, stories, cls):
    sp = spm.SentencePieceProcessor(model_file=str(trained.model))
    tok = getattr(transformers, cls).from_pretrained(hf_dir)
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 2, 0)
    for text in CHINESE + stories[:20]:
        assert tok.encode(text) == [1, *sp.encode(text)], text
        assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_auto_tokenizer_matches_sentencepiece_whitespace(hf_dir, trained, stories):
    # what users call (AutoTokenizer) and tokenizer.json as written (tokenizers,
    # PreTrainedTokenizerFast) normalise whitespace exactly as sentencepiece does
    sp = spm.SentencePieceProcessor(model_file=str(trained.model))
    raw = tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    loaded = [
        transformers.AutoTokenizer.from_pretrained(hf_dir),
        transformers.PreTrainedTokenizerFast.from_pretrained(hf_dir),
    ]
    for text in CHINESE + WHITESPACE + stories[20:]:
        want = [1, *sp.encode(text)]
        assert raw.encode(text).ids == want, repr(text)
        for tok in loaded:
            assert tok.encode(text) == want, (type(tok).__name__, repr(text))
            assert tok.decode(want, skip_special_tokens=True) == sp.decode(want[1:]), repr(text)


def test_tok5000_hf_agrees(tmp_path, reference):
    model = reference("zh", "tok5000.model")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    tok = transformers.AutoTokenizer.from_pretrained(export_hf(model, tmp_path / "hf"))
    for text in CHINESE + WHITESPACE:
        assert tok.encode(text) == [1, *sp.encode(text)], text

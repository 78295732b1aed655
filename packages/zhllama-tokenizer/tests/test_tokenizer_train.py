from __future__ import annotations

import hashlib
import json

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry
from zhllama_tokenizer.train import TrainOptions, train_tokenizer


def test_seed_settings_and_files(trained, vocab_size):
    proto = pb.ModelProto()
    proto.ParseFromString(trained.model.read_bytes())
    spec = proto.trainer_spec
    assert spec.model_type == pb.TrainerSpec.BPE
    assert spec.byte_fallback and spec.split_digits and spec.allow_whitespace_only_pieces
    assert spec.character_coverage == 1.0
    assert (spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id) == (0, 1, 2, -1)
    assert proto.normalizer_spec.name == "identity"
    assert spec.vocab_size == vocab_size
    for path in (trained.vocab, trained.bin, trained.report_path):
        assert path.is_file()
    assert len(trained.vocab.read_text(encoding="utf-8").splitlines()) == vocab_size


def test_no_nfkc(trained):
    sp = spm.SentencePieceProcessor(model_file=str(trained.model))
    text = "ＡＢ１２３，全角"  # NFKC would turn these into ASCII
    assert sp.decode(sp.encode(text)) == text


def test_report(trained, vocab_size):
    report = json.loads(trained.report_path.read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(trained.report))
    vocab, held = report["vocab"], report["heldout"]
    assert sum(vocab.values()) == vocab_size
    assert vocab["byte"] == 256 and vocab["special"] == 3
    assert vocab["merge"] > 0 and not report["character_level"]
    assert held["texts"] == 150  # every 20th of 3,000 stories
    # merges make tokens longer than one character; newlines are byte-fallback tokens
    assert held["chars_per_token"] > 1.2
    assert 0 < held["byte_fallback_share"] < 0.05
    assert report["training"]["sentences"] > 0
    assert report["training"]["settings"]["normalization_rule_name"] == "identity"


def test_component(trained, stories, vocab_size):
    tok = get_registry().create("tokenizers", "sentencepiece", model=trained.model)
    assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (vocab_size, 1, 2)
    assert tok.sha256 == hashlib.sha256(trained.model.read_bytes()).hexdigest()
    ids = tok.encode(stories[0])
    assert ids[0] not in (tok.bos_id, tok.eos_id)
    assert tok.decode(ids) == stories[0]
    assert tok.encode_batch(stories[:3]) == [tok.encode(s) for s in stories[:3]]


def test_component_bad_file(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ZhllamaError, match="bad.model"):
        get_registry().create("tokenizers", "sentencepiece", model=bad)
    with pytest.raises(ZhllamaError, match="missing.model"):
        get_registry().create("tokenizers", "sentencepiece", model=tmp_path / "missing.model")


def _source(n: int):
    return get_registry().create("sources", "synthetic", num_stories=n)


def test_overrides_and_bounded_sample(tmp_path):
    # lower coverage drops rare characters and leaves more room for merges
    opts = TrainOptions(
        vocab_size=1100, max_sentences=800, heldout_stories=50, sp={"character_coverage": "0.99"}
    )
    result = train_tokenizer(_source(1000), tmp_path, opts)
    assert result.report["training"]["sentences"] == 800
    assert result.report["training"]["settings"]["character_coverage"] == "0.99"
    assert result.report["vocab"]["single_char"] < 800
    assert result.report["heldout"]["texts"] == 50


def test_training_errors(tmp_path):
    with pytest.raises(ZhllamaError, match="vocab"):
        train_tokenizer(_source(300), tmp_path, TrainOptions(vocab_size=400))
    with pytest.raises(ZhllamaError, match="no_such_option"):
        train_tokenizer(
            _source(300), tmp_path, TrainOptions(vocab_size=1500, sp={"no_such_option": "1"})
        )
    with pytest.raises(ZhllamaError, match="no text"):
        train_tokenizer(_source(0), tmp_path, TrainOptions(vocab_size=1500))

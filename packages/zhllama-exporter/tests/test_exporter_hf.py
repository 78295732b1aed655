"""The HF directory against transformers itself: logits, greedy generation, dtypes, tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from safetensors import safe_open
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry


def _hf_model(path):
    return transformers.LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_transformers_logits_and_greedy_match(tmp_path, shaped_model):
    out = tmp_path / "hf"
    get_registry().create("exporters", "hf").export(shaped_model, out)
    hf = _hf_model(out)
    assert hf.config.num_key_value_heads == shaped_model.args.kv_heads

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, shaped_model.args.vocab_size, (2, 12), generator=g)
    with torch.no_grad():
        want = shaped_model(tokens)
        got = hf(tokens).logits
    assert (got - want).abs().max().item() < 1e-5

    prompt = torch.tensor([[1, 5, 9, 11]])
    steps = shaped_model.args.max_seq_len - prompt.shape[1]
    ours = shaped_model.generate(prompt, steps, temperature=0.0, eos_id=2)
    theirs = hf.generate(prompt, max_new_tokens=steps, do_sample=False)
    assert theirs.tolist() == ours.tolist()
    assert ours.shape[1] > prompt.shape[1] + 3  # a real continuation, not an instant EOS


def test_configs(tmp_path, make_model):
    model = make_model(0, dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=40)
    out = tmp_path / "hf"
    get_registry().create("exporters", "hf").export(model, out)
    gen = json.loads((out / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"]) == (1, 2)
    cfg = transformers.AutoConfig.from_pretrained(out)
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (32, 4, 2)
    assert cfg.tie_word_embeddings is True


@pytest.mark.parametrize(
    "dtype, torch_dtype, st_dtype",
    [("fp16", torch.float16, "F16"), ("bf16", torch.bfloat16, "BF16"), ("fp32", None, "F32")],
)
def test_dtype_is_actually_written(tmp_path, make_model, dtype, torch_dtype, st_dtype):
    model = make_model(0, dim=32, n_layers=1, n_heads=4, vocab_size=40, shared_classifier=False)
    out = tmp_path / "hf"
    exporter = get_registry().create("exporters", "hf", dtype=dtype)
    exporter.export(model, out)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert "lm_head.weight" in names
        for name in names:
            assert f.get_slice(name).get_dtype() == st_dtype, name
    assert (
        json.loads((out / "config.json").read_text())["torch_dtype"]
        == {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype]
    )
    back = exporter.read(out)  # read back as fp32: exactly the rounded values
    for name, t in model.state_dict().items():
        expect = t if torch_dtype is None else t.to(torch_dtype).float()
        assert torch.equal(back.state_dict()[name], expect), name


def test_tokenizer_files_load_with_auto_tokenizer(tmp_path, reference):
    model_file = reference("llama2c", "tok512.model")
    stories = reference("llama2c", "stories260K.bin")
    model = get_registry().create("exporters", "llama2c").read(stories)
    out = tmp_path / "hf"
    get_registry().create("exporters", "hf", tokenizer=model_file).export(model, out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    sp = get_registry().create("tokenizers", "sentencepiece", model=model_file)
    text = "Once upon a time, there was a little girl."
    ids = tok(text).input_ids
    assert ids == [1, *sp.encode(text)]
    # the real model through transformers continues the story like the torch model does
    hf = _hf_model(out)
    prompt = torch.tensor([ids])
    theirs = hf.generate(prompt, max_new_tokens=20, do_sample=False)
    ours = model.generate(prompt, 20, temperature=0.0, eos_id=2)
    assert theirs.tolist() == ours.tolist()
    assert len(tok.decode(theirs[0], skip_special_tokens=True)) > len(text)


def test_tokenizer_vocab_mismatch_leaves_nothing(tmp_path, make_model, reference):
    model_file = reference("llama2c", "tok512.model")
    model = make_model(0, dim=32, n_layers=1, n_heads=4, vocab_size=40)
    out = tmp_path / "hf"
    with pytest.raises(ZhllamaError, match="512 tokens"):
        get_registry().create("exporters", "hf", tokenizer=model_file).export(model, out)
    assert list(tmp_path.iterdir()) == []


def test_gqa_permutation_is_per_kv_head():
    """wk is permuted over Hk heads of hs rows: pairs (2i, 2i+1) become rows (i, i + hs/2)."""
    from zhllama_exporter.hf import from_hf_rows, to_hf_rows

    heads, hs, d = 2, 6, 4
    w = torch.arange(heads * hs * d, dtype=torch.float32).view(heads * hs, d)
    p = to_hf_rows(w, heads)
    for h in range(heads):
        for i in range(hs // 2):
            assert torch.equal(p[h * hs + i], w[h * hs + 2 * i])
            assert torch.equal(p[h * hs + hs // 2 + i], w[h * hs + 2 * i + 1])
    assert torch.equal(from_hf_rows(p, heads), w)


def test_reads_what_transformers_saves(tmp_path, make_model):
    """A directory written by save_pretrained (e.g. after fine-tuning) reads back exactly."""
    model = make_model(0, dim=32, n_layers=1, n_heads=4, n_kv_heads=1, vocab_size=40)
    get_registry().create("exporters", "hf").export(model, tmp_path / "ours")
    _hf_model(tmp_path / "ours").save_pretrained(tmp_path / "theirs")
    back = get_registry().create("exporters", "hf").read(tmp_path / "theirs")
    for name, t in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name


def test_unsupported_rope_is_an_error(tmp_path, make_model):
    model = make_model(0, dim=32, n_layers=1, n_heads=4, vocab_size=40)
    out = tmp_path / "hf"
    get_registry().create("exporters", "hf").export(model, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_theta": 500000.0, "rope_type": "llama3"}
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ZhllamaError, match="rope_parameters"):
        get_registry().create("exporters", "hf").read(out)

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from sentencepiece import sentencepiece_model_pb2 as pb
from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.registry import Component, get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_data.shards import MANIFEST, ShardSet, WindowSampler

STORIES = 1200


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A real sentencepiece model trained on the synthetic source (asked from the registry)."""
    from zhllama_tokenizer.train import TrainOptions, train_tokenizer

    source = get_registry().create("sources", "synthetic", num_stories=2000, seed=50_000)
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=20)).model


def opts(**kw) -> PretokenizeOptions:
    base = dict(
        shard_tokens=40_000,
        chunk_stories=100,
        val_stories=50,
        workers=1,
        source_settings={"num_stories": str(STORIES)},
    )
    return PretokenizeOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def single(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    pretokenize("synthetic", model, out, opts())
    return out


def split_stories(stream: np.ndarray, bos: int = 1) -> list[np.ndarray]:
    starts = np.flatnonzero(stream == bos)
    assert starts[0] == 0
    return np.split(stream, starts[1:])


def stream(ss: ShardSet, split: str) -> np.ndarray:
    return np.concatenate([np.asarray(a) for a in ss.arrays(split)])


def test_manifest_and_layout(single, model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    ss = ShardSet(single)
    m = json.loads((single / MANIFEST).read_text())
    assert m["format"] == "zhllama-shards" and m["version"] == 1
    assert (m["dtype"], m["vocab_size"], m["bos_id"], m["eos_id"]) == ("uint16", 1500, 1, 2)
    assert m["tokenizer"] == str(model) and m["source"] == "synthetic"
    assert len(m["tokenizer_sha256"]) == 64
    assert m["counts"]["train"]["stories"] == STORIES - 50
    assert m["counts"]["val"]["stories"] == 50
    assert len(m["shards"]["train"]) > 1 and m["shards"]["val"] == ["val_00000.bin"]
    for split in ("train", "val"):
        assert m["counts"][split]["tokens"] == ss.num_tokens(split)
        for f in ss.files(split):
            assert f.stat().st_size % 2 == 0
    source = get_registry().create("sources", "synthetic", num_stories=STORIES)
    texts = list(source.stories())
    for split, want in (("val", texts[:50]), ("train", texts[50:])):
        stories = split_stories(stream(ss, split))
        assert len(stories) == len(want)
        for ids, text in zip(stories, want, strict=True):
            assert ids[0] == 1 and ids[-1] == 2
            assert not np.isin(ids[1:-1], [1, 2]).any()
            assert sp.decode(ids[1:-1].tolist()) == text
    # every shard holds whole stories
    for a in ss.arrays("train"):
        assert a[0] == 1 and a[-1] == 2


def test_windows_over_pretokenized(single):
    sampler = WindowSampler(ShardSet(single), "val", seq_len=64, batch_size=4, seed=0)
    assert sampler.next_batch().shape == (4, 65)


def test_no_eos_layout(model, tmp_path):
    pretokenize("synthetic", model, tmp_path, opts(eos=False))
    ss = ShardSet(tmp_path)
    assert ss.eos_id is None and ss.manifest["eos_id"] is None
    ids = stream(ss, "train")
    assert not (ids == 2).any()
    assert len(split_stories(ids)) == STORIES - 50


def test_val_fraction(model, tmp_path):
    pretokenize("synthetic", model, tmp_path, opts(val_stories=None, val_fraction=0.01))
    m = ShardSet(tmp_path).manifest
    assert m["counts"]["val"]["stories"] == STORIES // 100


def test_two_workers_match_one(single, model, tmp_path):
    pretokenize("synthetic", model, tmp_path, opts(workers=2))
    one, two = ShardSet(single).manifest, ShardSet(tmp_path).manifest
    assert one["shards"] == two["shards"] and one["counts"] == two["counts"]
    for split in ("train", "val"):
        for name in one["shards"][split]:
            assert (single / name).read_bytes() == (tmp_path / name).read_bytes()


def test_rerun_of_finished_dir_does_nothing(single, model):
    files = sorted(single.glob("*.bin"))
    before = [(p.name, p.stat().st_mtime_ns) for p in files]
    manifest = (single / MANIFEST).read_text()
    pretokenize("synthetic", model, single, opts())
    assert [(p.name, p.stat().st_mtime_ns) for p in sorted(single.glob("*.bin"))] == before
    assert (single / MANIFEST).read_text() == manifest


def test_other_tokenizer_or_settings_is_an_error(single, model, tmp_path):
    proto = pb.ModelProto()
    proto.ParseFromString(model.read_bytes())
    proto.pieces[300].score -= 0.5  # a different, still valid tokenizer
    other = tmp_path / "other.model"
    other.write_bytes(proto.SerializeToString())
    with pytest.raises(ZhllamaError, match="another tokenizer"):
        pretokenize("synthetic", other, single, opts())
    with pytest.raises(ZhllamaError, match="other settings"):
        pretokenize("synthetic", model, single, opts(val_stories=10))


# -- resuming a killed run, through a streaming source (no random access) -----------------


@dataclass
class FlakyConfig:
    num_stories: int = STORIES


class FlakySource:
    """Synthetic stories as a plain stream; dies after `fail_after` stories when armed."""

    name = "flaky-test"
    fail_after: int | None = None

    def __init__(self, config: FlakyConfig) -> None:
        self.inner = get_registry().create("sources", "synthetic", num_stories=config.num_stories)

    def stories(self):
        for i, story in enumerate(self.inner.stories()):
            if FlakySource.fail_after is not None and i == FlakySource.fail_after:
                raise KeyboardInterrupt  # as if the run were killed
            yield story


def test_resume_after_kill_gives_the_same_shards(model, tmp_path):
    get_registry().register("sources", Component("flaky-test", "test", FlakySource, FlakyConfig))
    o = opts(val_stories=None, val_fraction=0.02, source_settings={})
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    pretokenize("flaky-test", model, whole, o)
    FlakySource.fail_after = 700
    try:
        with pytest.raises(KeyboardInterrupt):
            pretokenize("flaky-test", model, resumed, o)
    finally:
        FlakySource.fail_after = None
    partial = json.loads((resumed / MANIFEST).read_text())
    assert not partial["complete"] and partial["shards"]["train"]
    with pytest.raises(ZhllamaError, match="did not finish"):
        ShardSet(resumed)
    done = partial["progress"]["train"]["stories_done"]
    assert 0 < done <= 700
    pretokenize("flaky-test", model, resumed, o)
    a, b = ShardSet(whole).manifest, ShardSet(resumed).manifest
    assert a["shards"] == b["shards"] and a["counts"] == b["counts"]
    for name in [*a["shards"]["train"], *a["shards"]["val"]]:
        assert (whole / name).read_bytes() == (resumed / name).read_bytes()


def test_cli(model, tmp_path, capsys):
    args = ["data", "pretokenize", "synthetic", "-z", str(model), "-o", str(tmp_path / "s")]
    assert main([*args, "num_stories=300", "-j", "1", "--val-stories", "10"]) == 0
    ss = ShardSet(tmp_path / "s")
    assert ss.manifest["counts"]["val"]["stories"] == 10
    assert main([*args, "num_stories=300", "--val-fraction", "2"]) == 1
    assert "val-fraction" in capsys.readouterr().err


def test_held_out_file_is_the_validation_split(model, tmp_path):
    """tinystories-zh with val_file=data00_zh.jsonl, as the original project splits the hub
    repo: a .tar.gz of jsonl shards written here in the hub's layout (the hub is not reached)."""
    import io
    import tarfile

    import sentencepiece as spm

    files = {
        "data00_zh.jsonl": ["从前，有一只小猫。", "小猫很开心。", "它们是好朋友。"],
        "data01_zh.jsonl": ["有一天，小狗去公园。", "小狗看到了花。", "天气很好。", "再见。"],
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    with tarfile.open(repo / "TinyStories_all_data_zh.tar.gz", "w:gz") as tar:
        for name in ("data01_zh.jsonl", "data00_zh.jsonl"):  # the held-out one is not first
            lines = [json.dumps({"story_zh": s}, ensure_ascii=False) for s in files[name]]
            data = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    settings = {"local_dir": str(repo), "val_file": "data00_zh.jsonl"}
    out = tmp_path / "shards"
    pretokenize("tinystories-zh", model, out, opts(val_stories=None, source_settings=settings))
    ss = ShardSet(out)
    assert ss.manifest["counts"]["val"]["stories"] == 3
    assert ss.manifest["counts"]["train"]["stories"] == 4
    sp = spm.SentencePieceProcessor(model_file=str(model))
    for split, name in (("val", "data00_zh.jsonl"), ("train", "data01_zh.jsonl")):
        texts = [sp.decode(s[1:-1].tolist()) for s in split_stories(stream(ss, split))]
        assert texts == files[name]


def test_manifest_records_the_hub_commit_and_a_resume_keeps_to_it(model, tmp_path):
    """tinystories-zh read from the hub cache (offline; the cache is laid out here as
    huggingface_hub keeps it): the manifest names the commit read, and when the cache's `main`
    has moved on, finishing those shards is refused (it would mix two versions)."""
    import io
    import tarfile

    repo = tmp_path / "cache" / "datasets--adam89--TinyStoriesChinese"
    commits = ["1" * 40, "2" * 40]
    for n, commit in enumerate(commits):
        folder = repo / "snapshots" / commit
        folder.mkdir(parents=True)
        lines = [json.dumps({"story_zh": f"从前，有一只小猫{i}号。"}) for i in range(4 + n)]
        data = ("\n".join(lines) + "\n").encode()
        with tarfile.open(folder / "TinyStories_all_data_zh.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("data00_zh.jsonl")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commits[0])
    settings = {"cache_dir": str(tmp_path / "cache"), "offline": True}
    out = tmp_path / "shards"
    pretokenize("tinystories-zh", model, out, opts(source_settings=settings))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["source_revision"] == commits[0]

    # an unfinished folder (as after a kill), then the hub's main moves to the second commit
    manifest["complete"] = False
    (out / MANIFEST).write_text(json.dumps(manifest))
    (repo / "refs" / "main").write_text(commits[1])
    with pytest.raises(ZhllamaError, match=f"revision {commits[0]}.*now reads {commits[1]}"):
        pretokenize("tinystories-zh", model, out, opts(source_settings=settings))

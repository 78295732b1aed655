"""Type stubs of the native module (crates/zhllama-py/src); the public names are re-exported
by zhllama_rs."""

import os
from collections.abc import Iterable
from typing import Literal, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BOS",
    "BatchStream",
    "Chat",
    "EOS",
    "Model",
    "Stream",
    "Tokenizer",
    "causal_attention_backward_f32",
    "causal_attention_forward_f32",
    "run_cli",
    "run_server",
    "__version__",
]

__version__: str
BOS: int
EOS: int

@final
class Tokenizer:
    def __new__(cls, path: str | os.PathLike[str], vocab_size: int | None = None) -> Tokenizer: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def bos_id(self) -> int: ...
    @property
    def eos_id(self) -> int: ...
    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...

@final
class BatchStream:
    def __iter__(self) -> BatchStream: ...
    def __next__(self) -> tuple[int, str]: ...
    @property
    def finish_reasons(self) -> list[Literal["eos", "length"] | None]: ...

@final
class Chat:
    def say(self, user: str, system: str | None = None) -> str: ...
    @property
    def positions(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def full(self) -> bool: ...

@final
class Stream:
    def __iter__(self) -> Stream: ...
    def __next__(self) -> str: ...
    @property
    def prompt_tokens(self) -> list[int]: ...
    @property
    def generated_tokens(self) -> list[int]: ...
    @property
    def positions(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def done(self) -> bool: ...
    @property
    def tokens_per_second(self) -> float | None: ...

@final
class Model:
    def __new__(
        cls,
        checkpoint: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        quantize: Literal["q8", "int8", "none"] | None = None,
        group_size: int | None = None,
    ) -> Model: ...
    @property
    def dim(self) -> int: ...
    @property
    def hidden_dim(self) -> int: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def n_heads(self) -> int: ...
    @property
    def n_kv_heads(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def seq_len(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def quantized(self) -> bool: ...
    @property
    def group_size(self) -> int: ...
    @property
    def shared_classifier(self) -> bool: ...
    @property
    def threads(self) -> int: ...
    @property
    def checkpoint(self) -> str: ...
    @property
    def tokenizer(self) -> Tokenizer | None: ...
    def generate(
        self,
        prompt: str = "",
        steps: int = 256,
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int | None = None,
        stop_at_eos: bool = True,
    ) -> str: ...
    def stream(
        self,
        prompt: str = "",
        steps: int = 256,
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int | None = None,
        stop_at_eos: bool = True,
    ) -> Stream: ...
    def generate_batch(
        self,
        prompts: list[str],
        steps: int = 256,
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int | None = None,
        stop_at_eos: bool = True,
        parallel: int = 8,
    ) -> list[str]: ...
    def stream_batch(
        self,
        prompts: list[str],
        steps: int = 256,
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int | None = None,
        stop_at_eos: bool = True,
        parallel: int = 8,
    ) -> BatchStream: ...
    def chat(
        self,
        steps: int = 256,
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int | None = None,
    ) -> Chat: ...
    def forward(self, token: int, pos: int) -> npt.NDArray[np.float32]: ...
    def score(self, ids: Iterable[int]) -> npt.NDArray[np.float32]: ...
    def score_batch(self, batch: Iterable[Iterable[int]]) -> list[npt.NDArray[np.float32]]: ...
    def reset(self) -> None: ...

def run_cli(argv: list[str]) -> int: ...
def run_server(argv: list[str]) -> int: ...
def causal_attention_forward_f32(
    q: npt.NDArray[np.float32],
    k: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    lse: npt.NDArray[np.float32],
    threads: int = 0,
) -> None: ...
def causal_attention_backward_f32(
    q: npt.NDArray[np.float32],
    k: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    lse: npt.NDArray[np.float32],
    dout: npt.NDArray[np.float32],
    dq: npt.NDArray[np.float32],
    dk: npt.NDArray[np.float32],
    dv: npt.NDArray[np.float32],
    threads: int = 0,
) -> None: ...

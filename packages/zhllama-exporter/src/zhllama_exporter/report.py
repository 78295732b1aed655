"""What int8 quantization does to each tensor: max and mean absolute error against its bound."""

from __future__ import annotations

from zhllama_exporter.llama2c import body_order, is_matrix
from zhllama_exporter.quant import QuantError, quant_error
from zhllama_exporter.weights import Weights


def quantized_names(w: Weights) -> list[str]:
    """The tensors llama2c-int8 quantizes (norms stay fp32), in file order."""
    return [n for n in body_order(w.shape, 2) if is_matrix(n)]


def quant_report(w: Weights, group_size: int) -> list[QuantError]:
    return [quant_error(n, w.tensors[n], group_size) for n in quantized_names(w)]


def by_kind(errors: list[QuantError]) -> list[QuantError]:
    """Fold per-layer rows into one per matrix kind (worst max, mean of means, worst ratio)."""
    kinds: dict[str, list[QuantError]] = {}
    for e in errors:
        parts = e.name.split(".")
        kind = ".".join(parts[2:]) if parts[0] == "layers" else e.name
        kinds.setdefault(kind, []).append(e)
    return [
        QuantError(
            kind,
            max(e.max_abs for e in group),
            sum(e.mean_abs for e in group) / len(group),
            max(e.ratio for e in group),
        )
        for kind, group in kinds.items()
    ]

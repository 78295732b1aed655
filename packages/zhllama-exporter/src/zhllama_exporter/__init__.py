"""zhllama_exporter: the torch model to and from llama2.c's .bin formats and HuggingFace.

- `components`: the `zhllama.exporters` entries (llama2c, llama2c-v1, llama2c-int8, hf) and
  `ExportConfig`; light to import.
- `exporters`: the exporter objects (`export(model, out)`, `read(path)`), atomic writes.
- `llama2c`: version 0/1/2 writers and readers; `quant`: Q8_0 groups; `hf`: the HF directory.
- `weights`: the bridge between a `Transformer` and named fp32 tensors; `load`: read any
  checkpoint (ckpt.pt or an exported format); `report`: int8 error per tensor; `cli`: the
  `zhllama export` command.
"""

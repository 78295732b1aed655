"""zhllama_exporter: the torch model to and from llama2.c's .bin formats, HuggingFace and GGUF.

- `components`: the `zhllama.exporters` entries (llama2c, llama2c-v1, llama2c-int8, hf, gguf)
  and `ExportConfig`; light to import.
- `exporters`: the exporter objects (`export(model, out)`, `read(path)`), atomic writes.
- `llama2c`: version 0/1/2 writers and readers; `quant`: Q8_0 groups; `hf`: the HF directory.
- `gguf_format`: GGUF (llama.cpp) writer, reader and exporter; `gguf_vocab`: the sentencepiece
  vocabulary GGUF holds, from a .model, a tok.bin or a GGUF.
- `weights`: the bridge between a `Transformer` and named fp32 tensors; `load`: read any
  checkpoint (ckpt.pt or an exported format); `report`: int8 error per tensor; `cli`: the
  `zhllama export` command.
"""

"""zhllama_trainer: the Llama model in torch, size presets and the training loop."""

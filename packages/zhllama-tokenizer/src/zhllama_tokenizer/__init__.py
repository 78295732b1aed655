"""zhllama_tokenizer."""

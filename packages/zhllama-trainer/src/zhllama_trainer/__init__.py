"""zhllama_trainer."""

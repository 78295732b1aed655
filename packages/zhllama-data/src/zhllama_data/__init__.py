"""zhllama_data."""

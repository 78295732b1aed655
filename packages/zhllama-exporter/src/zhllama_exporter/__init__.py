"""zhllama_exporter."""

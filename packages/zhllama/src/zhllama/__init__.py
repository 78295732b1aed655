"""zhllama."""

"""Built-in readers, one module per format family; each module exposes ``READERS``."""

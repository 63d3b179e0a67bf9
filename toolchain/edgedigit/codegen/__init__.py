"""C code generation: Jinja environment, banners and identifiers (``render``), one module per backend."""

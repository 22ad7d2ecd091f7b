"""Hash-list parsers: one module per import format, all yielding typed records with line numbers."""

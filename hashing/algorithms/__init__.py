"""Per-algorithm hashing code: one module per algorithm family."""

"""Pure, typed, I/O-free money and metrics logic (docs/money-rules.md)."""

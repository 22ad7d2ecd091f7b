"""Click commands only: each command parses arguments and calls one library function."""

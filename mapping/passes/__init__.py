"""Graph passes: plain functions ``DataflowGraph -> DataflowGraph`` that never mutate their input."""

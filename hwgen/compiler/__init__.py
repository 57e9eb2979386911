"""The program compiler: the instruction set (``isa``), program layers, buffer
allocation, code generation and ``compile_program`` (program = f(model, schedule))."""

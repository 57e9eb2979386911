"""Golden integer reference model, cocotb testbenches, simulator runners."""

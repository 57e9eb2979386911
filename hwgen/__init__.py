"""Hardware generator: Amaranth components, the accelerator top, programs, Verilog emission, CLI."""

__version__ = "0.1.0"

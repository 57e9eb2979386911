"""The build flow: model -> schedule -> program -> Verilog/RTLIL, reports, and the
build-directory contract that sim/, boards/ and dse/ read."""

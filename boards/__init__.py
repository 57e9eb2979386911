"""FPGA device catalogue, synthesis and place-and-route wrappers, resource model."""

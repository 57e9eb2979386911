"""Design-space exploration over architecture, quantisation and mapping."""

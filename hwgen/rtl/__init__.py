"""Amaranth components of the accelerator: PE, array, scratchpads, DMA, post-processing,
element-wise units, tile engine, sequencer and the ``Accelerator`` top level.
Hardware = f(ArchSpec) (+ the baked program); nothing here compiles a model."""

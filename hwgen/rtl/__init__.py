"""Amaranth components of the accelerator: PE, array, scratchpads, DMA, post-processing,
element-wise units, tile engine (with its issue logic in ``tile_issue``), sequencer,
the input / output streams and the ``Accelerator`` top level. Their internal
interfaces are the ``wiring.Signature``s of ``interfaces``, wired with
``wiring.connect``. Hardware = f(ArchSpec) (+ the baked program); nothing here
compiles a model."""

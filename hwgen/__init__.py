"""Hardware generator, in layers (each imports only the ones above it in this list):

- ``hwgen.compiler``: instruction set, program layers, buffers, code generation;
- ``hwgen.rtl``: the Amaranth components and the ``Accelerator`` top level;
- ``hwgen.build``: compile flow, emission, reports, the build-directory contract;
- ``hwgen.cli``: the ``hwgen`` command.
"""

__version__ = "0.1.0"

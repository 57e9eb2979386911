"""hwgen from Python (notebooks, scripts): compile a model, simulate a batch on its RTL.

The same flow as ``hwgen compile`` and ``hwgen sim``::

    import torch
    from hwgen import api
    from lenet5 import Net                      # your model (examples/lenet5.py)

    cm = api.compile(Net(), torch.randn(1, 1, 32, 32), arch="edge-8x8",
                     calib=x_train[:256], out_dir="build/lenet5")
    r = api.simulate(cm.out_dir, x_test[:8], labels=y_test[:8])
    r.bit_exact, r.cycles, r.predicted_cycles, r.accuracy

``model`` may also be a specifier string: ``"path/to/file.py:NAME"``, a ``.pt2`` or an
``.onnx`` file (:func:`mapping.source.load_source`), or a zoo name. Errors are the
packages' one-line errors (all ``ValueError``): :class:`mapping.source.SourceError` /
``mapping.graph.GraphError`` (model, data), ``mapping.quant.QuantError``,
``hwgen.build.flow.FlowError`` (does not fit the architecture),
``sim.accelerator.BuildError``.

This is a wiring module at the level of :mod:`hwgen.cli` (tests/test_layering.py): it
may import every package (mapping, hwgen.build, sim, models for zoo names) and nothing
imports it but user code.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Simulation", "compile", "load_model", "simulate"]


def load_model(model, example_input=None, *, calib=None, labels=None, input_shape=None,
               weights=None):
    """A zoo ``ModelEntry`` or a :class:`mapping.source.ModelSource` for ``model``: an
    ``nn.Module`` (``example_input``: one sample, batch first), a specifier string or a zoo
    name. ``calib``: an array (batch first) or, for a specifier, a ``.npy``/``.npz`` path."""
    from mapping.source import ModelSource, is_source_spec, load_source

    if isinstance(model, str) and not is_source_spec(model):
        import models

        if any(v is not None for v in (example_input, calib, input_shape, weights)):
            raise ValueError(f"zoo model {model!r} has its own example input, data and "
                             "weights; example_input/calib/input_shape/weights apply to your "
                             "own model")
        return models.get(model)
    if isinstance(model, (str, Path)):
        path = calib if isinstance(calib, (str, Path)) else None
        src = load_source(str(model), input_shape=input_shape, weights=weights, calib=path)
        if example_input is not None:
            raise ValueError("example_input applies to an nn.Module; for a file give "
                             "input_shape")
        return src if calib is None or path is not None else src.with_calib(calib, labels)
    if weights is not None or input_shape is not None:
        raise ValueError("weights/input_shape apply to a model file; load the state dict "
                         "into your module and pass example_input")
    return ModelSource.from_module(model, example_input, calib, labels)


def compile(model, example_input=None, *, arch: Any = "edge-8x8", calib=None, labels=None,
            out_dir: str | Path = "build/model", bits: int = 8, objective: str = "latency",
            input_shape=None, weights=None, overrides: dict | None = None):
    """Trace, quantise (``bits``, calibrated on ``calib``; seeded random inputs with a
    warning when none) and compile ``model`` for ``arch`` (a preset name, a TOML file or an
    ``ArchSpec``; ``overrides``: ArchSpec fields) into ``out_dir``.

    Returns :class:`hwgen.build.flow.CompiledModel` (``out_dir``, ``arch``, ``schedule``,
    ``program``, ``manifest``, ``host_ops``).
    """
    from hwgen.build.flow import compile_model
    from mapping.arch import ArchSpec, resolve
    from mapping.passes import prepare_entry

    if not 2 <= int(bits) <= 16:
        raise ValueError(f"bits={bits} is invalid: must be from 2 to 16")
    spec = arch if isinstance(arch, ArchSpec) else resolve(str(arch))
    if overrides:
        spec = spec.replace(**overrides)
    entry = load_model(model, example_input, calib=calib, labels=labels,
                       input_shape=input_shape, weights=weights)
    msg = getattr(entry, "calibration_warning", None)
    if msg:
        warnings.warn(msg, UserWarning, stacklevel=2)
    graph = prepare_entry(entry, bits=int(bits), acc_bits=spec.acc_bits)
    settings: dict[str, Any] = {"bits": int(bits)}
    if hasattr(entry, "record"):
        settings["source"] = entry.record()
    return compile_model(graph, spec, out_dir, model=entry.name, objective=objective,
                         settings=settings)


@dataclass
class Simulation:
    """The result of :func:`simulate`. ``outputs``/``golden``: (samples, output elements)
    integers in stream order; ``cycles``: measured start..done per sample;
    ``accuracy``: top-1 (argmax) of the hardware outputs on ``labels``, else ``None``."""

    outputs: np.ndarray
    golden: np.ndarray
    bit_exact: bool
    cycles: list[int]
    predicted_cycles: int
    layer_cycles: dict[str, int]  # measured, first sample
    accuracy: float | None
    golden_accuracy: float | None
    result: Any  # sim.accelerator.SimResult: every counter and timing

    @property
    def cycles_as_predicted(self) -> bool:
        """Measured cycles equal the prediction (mapping.timing) on every sample and layer."""
        r = self.result
        return (all(c == self.predicted_cycles for c in self.cycles)
                and bool(np.all(r.layer_cycles == np.asarray(r.predicted)[None, :])))


def simulate(build_dir, inputs, labels=None, *, engine: str = "fast",
             simulator: str = "verilator", cache_dir: str | Path | None = None) -> Simulation:
    """Run float ``inputs`` (batch first, shaped like the model input) on the RTL of
    ``build_dir`` (a path or a ``CompiledModel``): quantised with the build's input scale,
    every output compared bit-exactly with ``sim.golden``, cycles measured."""
    from math import prod

    from mapping.datafiles import check_labels, check_samples
    from sim.accelerator import load_build, quantize_inputs
    from sim.accelerator import simulate as run

    build = load_build(getattr(build_dir, "out_dir", build_dir))
    man = build.manifest
    x = check_samples(np.asarray(inputs), tuple(man.input.shape[1:]), "inputs")
    y = None
    if labels is not None:
        y = check_labels(np.asarray(labels), len(x), "labels", prod(man.output.shape[1:]))
    res = run(build, quantize_inputs(build, x), simulator=simulator, engine=engine,
              cache_dir=cache_dir)
    acc = gacc = None
    if y is not None:
        acc = float(np.mean(res.outputs.argmax(-1) == y))
        gacc = float(np.mean(res.golden.argmax(-1) == y))
    return Simulation(outputs=res.outputs, golden=res.golden, bit_exact=res.bit_exact,
                      cycles=list(res.run_cycles), predicted_cycles=res.predicted_run,
                      layer_cycles={n: int(c) for n, c in zip(res.layer_names,
                                                             res.layer_cycles[0], strict=True)},
                      accuracy=acc, golden_accuracy=gacc, result=res)

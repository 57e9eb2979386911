"""Accuracy of a quantisation choice: the golden integer model on the test split (cached).

:class:`AccuracyTable` quantises the zoo model for a quant key ``(bits,
per-layer bits)`` (:func:`mapping.passes.quantize` on the folded, fused
graph, calibrated on the training split), runs :mod:`sim.golden` on the whole
test split and stores the top-1 accuracy in ``<cache_dir>/accuracy/<key>.json``
so restarts and other worker processes reuse it. Models without a data set
have no accuracy (``None``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def key_name(qkey: tuple) -> str:
    bits, layers = qkey
    return f"b{bits}" + "".join(f"_{n}-{b}" for n, b in layers)


class AccuracyTable:
    """Callable ``qkey -> accuracy`` for model ``model`` (a zoo name or a source spec,
    :func:`dse.model.model_entry`; disk cache in ``cache_dir``)."""

    def __init__(self, model: str, cache_dir: str | Path):
        self.model = model
        self.dir = Path(cache_dir) / "accuracy"
        self._mem: dict[tuple, float | None] = {}
        self._graph = None

    def _float_graph(self):
        if self._graph is None:
            from dse.model import model_entry
            from mapping.graph import trace
            from mapping.passes import calibration_inputs, fold_batchnorm, fuse_activations

            entry = model_entry(self.model)
            self._entry = entry
            self._graph = fuse_activations(fold_batchnorm(trace(entry.load(),
                                                                entry.example_input())))
            self._calib = calibration_inputs(entry)
        return self._graph

    def compute(self, qkey: tuple) -> float | None:
        """Accuracy of the golden model on the test split (no cache)."""
        from dse.model import model_entry
        from mapping.passes import lower, quantize
        from sim.golden import predict

        ds = model_entry(self.model).dataset()
        if ds is None or ds.y_test is None:
            return None
        g = self._float_graph()
        bits, layers = qkey
        q = lower(quantize(g, self._calib, bits=bits, w_bits=bits,
                           per_layer_bits=dict(layers) or None))
        pred = predict(q, np.asarray(ds.x_test, dtype=np.float32))
        return float(np.mean(pred == ds.y_test))

    def __call__(self, qkey: tuple) -> float | None:
        if qkey in self._mem:
            return self._mem[qkey]
        path = self.dir / f"{key_name(qkey)}.json"
        if path.is_file():
            acc = json.loads(path.read_text())["accuracy"]
        else:
            acc = self.compute(qkey)
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"model": self.model, "key": key_name(qkey),
                                       "accuracy": acc, "split": "test",
                                       "source": "measured (sim.golden on the test split)"}))
            os.replace(tmp, path)
        self._mem[qkey] = acc
        return acc

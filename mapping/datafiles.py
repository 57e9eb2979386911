"""The user's data files: calibration, input and label arrays and ``--weights`` state dicts.

:func:`load_arrays` / :func:`load_samples` read ``.npy``/``.npz`` files with
``numpy.load(allow_pickle=False)``; :func:`check_samples` and :func:`check_labels` check
dtype, shape and finiteness (also for in-memory arrays); :func:`load_weights` loads a
state dict with ``torch.load(weights_only=True)`` and ``strict=True``; :class:`SourceData`
holds the samples like ``models.datasets.Dataset``. Loading a data file never executes
code. Every bad input is a one-line :class:`SourceError` saying what was wrong and what is
allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mapping.graph import GraphError


class SourceError(GraphError):
    """A model file, its options or a data file is unusable; the message says why."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

def _load_npy(path: Path, what: str):
    if not path.is_file():
        raise SourceError(f"{what} {path}: no such file")
    if path.suffix not in (".npy", ".npz"):
        raise SourceError(f"{what} {path}: unsupported file type {path.suffix or '(none)'}; "
                          "give a .npy or .npz file (numpy.save / numpy.savez)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise SourceError(f"{what} {path} holds Python objects (pickle); hwgen reads plain "
                              "numeric arrays only (numpy.load allow_pickle=False)") from None
        raise SourceError(f"{what} {path} is not a numpy file: {first_line(exc)}") from None
    except (OSError, EOFError) as exc:
        raise SourceError(f"{what} {path} is not a numpy file: {first_line(exc)}") from None


def load_arrays(path: str | Path, what: str = "--calib") -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y or None)`` from a ``.npy`` (samples only) or ``.npz`` (``x`` or its only
    array; optional ``y`` labels) file, never unpickling."""
    path = Path(path)
    data = _load_npy(path, what)
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        keys = list(data.files)
        if "x" in keys:
            x, y = data["x"], (data["y"] if "y" in keys else None)
        elif len(keys) == 1:
            x, y = data[keys[0]], None
        else:
            raise SourceError(f"{what} {path} holds arrays {', '.join(keys) or '(none)'}; "
                              "name the samples 'x' (and labels 'y'): numpy.savez(f, x=..., "
                              "y=...)")
    return x, y


def check_samples(x: np.ndarray, sample_shape: tuple[int, ...] | None, what: str) -> np.ndarray:
    """Float32 samples, batch first, checked: real numbers, finite, shaped ``(N,) +
    sample_shape`` (when given), at least one sample."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise SourceError(f"{what}: samples have dtype {x.dtype}; give real numbers (float, or "
                          "integers, which are converted)")
    want = "(N, " + ", ".join(map(str, sample_shape)) + ")" if sample_shape else "(N, ...)"
    if x.ndim < 2 or (sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape)):
        hint = (" (add the batch dimension: x[None])"
                if sample_shape is not None and tuple(x.shape) == tuple(sample_shape) else "")
        raise SourceError(f"{what}: samples have shape {tuple(x.shape)}; the model needs "
                          f"{want}, batch first{hint}")
    if x.shape[0] == 0:
        raise SourceError(f"{what}: the file holds no samples (shape {tuple(x.shape)})")
    x = x.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise SourceError(f"{what}: {bad} of {x.size} values are NaN or infinite; samples must "
                          "be finite")
    return x


def check_labels(y: np.ndarray, count: int, what: str = "--labels",
                 classes: int | None = None) -> np.ndarray:
    """Integer class ids, one per sample (``count``), each in ``0..classes-1`` when given."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise SourceError(f"{what}: labels have dtype {y.dtype} and shape {tuple(y.shape)}; "
                          "give one integer class id per sample, shape (N,)")
    if len(y) != count:
        raise SourceError(f"{what}: {len(y)} labels for {count} samples; give one label per "
                          "sample")
    if classes is not None and len(y) and (y.min() < 0 or y.max() >= classes):
        raise SourceError(f"{what}: labels range {int(y.min())}..{int(y.max())}; the model "
                          f"has {classes} outputs, so labels must be 0..{classes - 1}")
    return y.astype(np.int64)


def load_samples(path: str | Path, sample_shape: tuple[int, ...] | None,
                 what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`load_arrays` + :func:`check_samples` (+ :func:`check_labels` for an ``.npz``
    ``y``)."""
    x, y = load_arrays(path, what)
    x = check_samples(x, sample_shape, f"{what} {path}")
    if y is not None:
        y = check_labels(y, len(x), f"{what} {path} (y)")
    return x, y


@dataclass(frozen=True)
class SourceData:
    """The user's samples, shaped like ``models.datasets.Dataset``: calibration samples are
    the train split; with labels they are also the test split (``y_test``) for accuracy."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    name: str

    @property
    def num_classes(self) -> int | None:
        return None if self.y_train is None else int(self.y_train.max()) + 1


def load_weights(module, path: str | Path, what: str) -> None:
    """``module.load_state_dict(torch.load(path, weights_only=True), strict=True)`` with
    one-line errors naming the missing, unexpected and mis-shaped keys."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise SourceError(f"--weights {path}: not a state dict torch.load(weights_only=True) "
                          f"accepts (hwgen never unpickles code): {first_line(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise SourceError(f"--weights {path} holds a {type(state).__name__}, not a state dict; "
                          "save it with torch.save(model.state_dict(), path)")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{label} {_few(keys)}" for label, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected),
                  ("wrong shapes (file vs model)", shapes)) if keys]
        raise SourceError(f"--weights {path} does not fit {what}: {'; '.join(parts)} "
                          "(load_state_dict strict=True)")
    module.load_state_dict(state, strict=True)


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")

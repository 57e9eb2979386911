"""Your own model: ``file.py:NAME``, a ``torch.export`` program (``.pt2``) or an ONNX file.

:func:`load_source` turns a model specifier plus the user's options into a
:class:`ModelSource`, duck-compatible with the zoo's ``models.ModelEntry`` as
:func:`mapping.passes.prepare_entry` and the CLI use it (``name``, ``load()``,
``example_input()``, ``dataset()``, ``input_shape``, ``input_kind``)::

    src = load_source("examples/lenet5.py:Net", input_shape=(1, 1, 32, 32), calib="x.npy")
    graph = prepare_entry(src, bits=8)

Trust: a ``.py`` file named by the user is the user's code and is executed
(imported with :mod:`importlib` under a unique module name). Data files never
execute code: :mod:`mapping.datafiles` reads weights with
``torch.load(weights_only=True)`` and sample arrays with ``numpy.load(allow_pickle=False)``.
Every bad input is a one-line :class:`SourceError` (defined there) saying what was wrong
and what is allowed.

Zoo names are not resolved here (``mapping`` does not import ``models``): the
CLI tells them apart with :func:`is_source_spec`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mapping.datafiles import (
    SourceData,
    SourceError,
    check_labels,
    check_samples,
    first_line,
    load_samples,
    load_weights,
)

SUFFIXES = (".py", ".pt2", ".onnx")
RANDOM_CALIB = 32  # samples of the default calibration (mapping.passes.calibration_inputs)
SPECIFIERS = ("path/to/file.py:NAME (NAME an nn.Module instance, an nn.Module class or a "
              "factory function), a torch.export program (.pt2) or an ONNX file (.onnx)")


def is_source_spec(spec: str) -> bool:
    """True when ``spec`` names a model file (``.py[:NAME]``, ``.pt2``, ``.onnx``), not a zoo
    name."""
    s = str(spec)
    return s.endswith(SUFFIXES) or ".py:" in s


def parse_input_shape(text: str | tuple | list | None,
                      what: str = "--input-shape") -> tuple[int, ...] | None:
    """``"1,3,32,32"`` (or a sequence) -> ``(1, 3, 32, 32)``; batch first and 1. ``what``
    names the value in errors."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise SourceError(f"{what} {text!r} is invalid: give positive integers, batch "
                          "first, e.g. 1,3,32,32 (image) or 1,16 (features)")
    if shape[0] != 1:
        raise SourceError(f"{what} {','.join(map(str, shape))}: the batch (first) "
                          "dimension must be 1; hwgen compiles one sample per inference "
                          "(hwgen sim runs batches)")
    return shape


# ----------------------------------------------------------------- the source
@dataclass(frozen=True)
class SourceSpec:
    """What to load (JSON-serialisable, hashable): the specifier and the options, paths
    absolute so another process (a DSE worker) loads the same model."""

    spec: str
    input_shape: tuple[int, ...] | None = None
    weights: str | None = None
    calib: str | None = None
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "input_shape": list(self.input_shape)
                           if self.input_shape else None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SourceSpec:
        d = json.loads(text)
        shape = d.get("input_shape")
        return cls(d["spec"], tuple(shape) if shape else None, d.get("weights"), d.get("calib"),
                   int(d.get("seed", 0)))


class ModelSource:
    """A user's model, duck-compatible with ``models.ModelEntry``: ``load()`` gives what
    :func:`mapping.graph.trace` takes (an ``nn.Module``, or the ``ExportedProgram`` of a
    ``.pt2``), ``module()`` a callable float model, ``dataset()`` the ``--calib`` samples
    (:class:`SourceData`) or ``None`` (then calibration is seeded random normal and
    :attr:`calibration_warning` says so)."""

    trained = True
    num_classes = None
    qat = None  # mapping.passes.qat_import.QatImport of a model with Brevitas layers

    def __init__(self, name: str, model, input_shape: tuple[int, ...], *,
                 example=None, data: SourceData | None = None, spec: SourceSpec | None = None,
                 description: str = ""):
        self.name = name
        self._model = model
        self.input_shape = tuple(int(d) for d in input_shape)
        self._example = example
        self._data = data
        self.spec = spec
        self.description = description or name
        self.input_kind = "data" if data is not None else "normal"
        self.qat = _brevitas_import(model)
        if self.qat is not None:
            self.description += f" ({self.qat_note})"
        if data is not None and data.y_train is not None:
            self.num_classes = data.num_classes

    @classmethod
    def from_module(cls, module, example_input=None, calib=None, labels=None,
                    name: str | None = None) -> ModelSource:
        """An in-memory ``nn.Module`` (notebooks): ``example_input`` fixes the input shape;
        ``calib`` (float array, batch first) and ``labels`` as for ``--calib``."""
        from torch import nn

        if not isinstance(module, nn.Module):
            raise SourceError(f"a torch.nn.Module is needed, got {type(module).__name__}")
        if example_input is None:
            raise SourceError("give an example input (one sample, batch first) to fix the "
                              "model's input shape")
        ex = _tensor(example_input)
        shape = parse_input_shape(tuple(ex.shape), "the example input's shape")
        src = cls(name or type(module).__name__, module.eval(), shape, example=ex)
        return src if calib is None else src.with_calib(calib, labels)

    def with_calib(self, calib, labels=None) -> ModelSource:
        """A copy calibrated on the array ``calib`` (batch first; ``labels`` optional),
        checked like ``--calib``."""
        x = check_samples(np.asarray(calib), self.input_shape[1:], "calib")
        y = None if labels is None else check_labels(np.asarray(labels), len(x), "labels")
        return ModelSource(self.name, self._model, self.input_shape, example=self._example,
                           data=SourceData(x, y, x, y, "calib"), spec=self.spec,
                           description=self.description)

    def load(self):
        """What ``trace`` takes: the ``nn.Module`` (eval mode) or the ``ExportedProgram``; for
        a Brevitas model its plain-torch import (:attr:`qat`)."""
        return self._model if self.qat is None else self.qat.module

    @property
    def qat_note(self) -> str | None:
        """``"QAT scales imported from Brevitas: ..."`` for a Brevitas model, else ``None``."""
        return None if self.qat is None else self.qat.describe()

    def module(self):
        """A callable float model (``ExportedProgram.module()`` for a ``.pt2``)."""
        return self._model.module() if hasattr(self._model, "graph_signature") else self._model

    def example_input(self, seed: int = 0):
        """One input of ``input_shape``: the factory's example (seed 0), else a calibration
        sample (``default_rng(seed)`` index), else seeded standard normal."""
        import torch

        if seed == 0 and self._example is not None:
            return self._example
        if self._data is not None:
            idx = int(np.random.default_rng(int(seed)).integers(len(self._data.x_train)))
            return torch.from_numpy(np.array(self._data.x_train[idx:idx + 1]))
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(self.input_shape, generator=g)

    def dataset(self) -> SourceData | None:
        return self._data

    @property
    def calibration_warning(self) -> str | None:
        """Why accuracy is unknown (no ``--calib``), or ``None``."""
        if self._data is not None:
            return None
        return (f"no --calib samples for {self.name}: calibrating on {RANDOM_CALIB} seeded "
                "random-normal inputs; the accuracy of the quantised model on real data is "
                "unknown")

    def record(self) -> dict[str, Any]:
        """What a manifest records about the source (paths and SHA-256 of every file)."""
        if self.spec is None:
            return {"spec": f"<in-memory {self.name}>", "input_shape": list(self.input_shape)}
        d = json.loads(self.spec.to_json())
        d["input_shape"] = list(self.input_shape)
        files = [Path(self.spec.spec.rpartition(":")[0] if ".py:" in self.spec.spec
                      else self.spec.spec), self.spec.weights, self.spec.calib]
        d["sha256"] = {str(p): _sha256(Path(p)) for p in files if p and Path(p).is_file()}
        return d

    def __repr__(self) -> str:
        return f"ModelSource({self.name!r}, input_shape={self.input_shape})"


def _brevitas_import(model):
    """The :class:`~mapping.passes.qat_import.QatImport` of a module with Brevitas layers
    (their learned quantisation is used instead of calibration), else ``None``."""
    from mapping.passes.qat_import import import_brevitas, is_brevitas

    return import_brevitas(model) if is_brevitas(model) else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tensor(x):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(torch.float32)


# ----------------------------------------------------------------- loaders
@contextlib.contextmanager
def _on_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def import_file(path: Path):
    """Execute the user's ``.py`` file as a module with a unique name (its folder on
    ``sys.path`` meanwhile, so it may import its neighbours)."""
    path = path.resolve()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"hwgen_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        with _on_path(path.parent):
            spec.loader.exec_module(mod)
    except Exception as exc:  # the user's code: any error is theirs, reported in one line
        sys.modules.pop(name, None)
        raise SourceError(f"{path.name}: importing it failed: {type(exc).__name__}: "
                          f"{first_line(exc)}") from None
    return mod


def _module_names(mod) -> list[str]:
    """Names in ``mod`` that could be NAME: nn.Module instances and classes defined there."""
    from torch import nn

    out = []
    for k, v in vars(mod).items():
        if k.startswith("_"):
            continue
        if isinstance(v, nn.Module) or (isinstance(v, type) and issubclass(v, nn.Module)
                                        and v.__module__ == mod.__name__):
            out.append(k)
    return out


def _from_python(path: Path, name: str, seed: int):
    """``(module, example or None)`` from ``NAME`` in ``path`` (see :func:`load_source`)."""
    import torch
    from torch import nn

    mod = import_file(path)
    candidates = _module_names(mod)
    hint = (f"; models in {path.name}: {', '.join(candidates)}" if candidates
            else f"; {path.name} defines no nn.Module")
    if not name:
        raise SourceError(f"{path}: name the model in the file, {path}:NAME{hint}")
    if not hasattr(mod, name):
        raise SourceError(f"{path}: no name {name!r} in the file{hint}")
    obj = getattr(mod, name)
    what = f"{path.name}:{name}"
    if isinstance(obj, nn.Module):
        return obj, None
    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise SourceError(f"{what} is a class {obj.__name__} that is not a torch.nn.Module "
                          f"subclass; NAME must be an nn.Module instance, an nn.Module class or "
                          f"a factory function{hint}")
    if not callable(obj):
        raise SourceError(f"{what} is a {type(obj).__name__}, not a torch.nn.Module; NAME must "
                          f"be an nn.Module instance, an nn.Module class or a factory "
                          f"function{hint}")
    kind = "class" if isinstance(obj, type) else "factory"
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            made = obj()
    except TypeError as exc:
        raise SourceError(f"{what}: calling the {kind} with no arguments failed ({first_line(exc)}); "
                          "write a factory function without arguments that returns the model "
                          f"and name it instead, e.g. def make(): return {name}(...)") from None
    except Exception as exc:  # the user's code
        raise SourceError(f"{what}: the {kind} raised {type(exc).__name__}: {first_line(exc)}"
                          ) from None
    example = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], nn.Module):
        made, example = made
        try:
            example = _tensor(example)
        except Exception:
            raise SourceError(f"{what}() returned an example input of type "
                              f"{type(example).__name__}; give one tensor or array, batch "
                              "first") from None
    if not isinstance(made, nn.Module):
        raise SourceError(f"{what}() returned a {type(made).__name__}; a factory must return an "
                          "nn.Module or (module, example_input)")
    return made, example


def _from_pt2(path: Path):
    import torch

    try:
        ep = torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for a bad archive
        raise SourceError(f"{path}: not a torch.export program (torch.export.save): "
                          f"{type(exc).__name__}: {first_line(exc)}") from None
    args = None
    with contextlib.suppress(Exception):
        args, _ = ep.example_inputs
    example = _tensor(args[0]) if args and len(args) >= 1 else None
    if example is None:  # the first user input's fake tensor
        specs = [s for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        nodes = {n.name: n for n in ep.graph.nodes}
        val = nodes[specs[0].arg.name].meta.get("val") if specs else None
        if val is not None:
            example = torch.zeros(tuple(int(d) for d in val.shape))
    return ep, example


def _from_onnx(path: Path, shape: tuple[int, ...] | None):
    try:
        from mapping.onnx_import import load_onnx
    except ModuleNotFoundError as exc:
        if exc.name == "mapping.onnx_import":
            raise SourceError(f"{path}: ONNX import is not available in this version "
                              "(mapping.onnx_import is missing)") from None
        raise
    return load_onnx(path) if shape is None else load_onnx(path, input_shape=shape)


def load_source(spec: str, *, input_shape=None, weights: str | Path | None = None,
                calib: str | Path | None = None, seed: int = 0) -> ModelSource:
    """Load the user's model named by ``spec`` (see the module docstring).

    ``spec``: ``path/to/file.py:NAME`` (NAME an ``nn.Module`` instance, an ``nn.Module``
    class instantiated with no arguments, or a factory returning a module or ``(module,
    example_input)``), a ``.pt2`` (``torch.export.save``) or an ``.onnx`` file (or a
    :class:`SourceSpec`). ``input_shape``: batch first (``"1,3,32,32"`` or a tuple); needed
    unless the factory, the ``.pt2``/``.onnx`` file or ``calib`` tells it. ``weights``: a
    state dict for a ``.py`` model, loaded with ``weights_only=True`` and
    ``strict=True``. ``calib``: ``.npy``/``.npz`` float samples, batch first (an ``.npz``
    may add labels ``y``). ``seed``: the model's initialisation (before ``weights``) and
    the random example inputs.
    """
    if isinstance(spec, SourceSpec):
        spec, input_shape, weights, calib, seed = (spec.spec, spec.input_shape, spec.weights,
                                                   spec.calib, spec.seed)
    spec = str(spec)
    shape = parse_input_shape(input_shape)
    file, sep, name = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    path = Path(file)
    if path.suffix not in SUFFIXES:
        raise SourceError(f"{spec!r} is not a model file; give {SPECIFIERS}")
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix == ".py":
        model, example = _from_python(path, name, seed)
        label = f"{path.stem}.{name}"
    elif weights is not None:
        raise SourceError(f"--weights applies to file.py:NAME models; {path.name} carries its "
                          "own weights")
    elif path.suffix == ".pt2":
        model, example = _from_pt2(path)
        label = path.stem
    else:
        model, onnx_shape = _from_onnx(path, shape)
        example, label = None, path.stem
        shape = shape or parse_input_shape(tuple(onnx_shape), f"{path.name}'s input shape")
    if weights is not None:
        load_weights(model, weights, f"{path.name}:{name}")
    data = None
    if calib is not None:
        want = shape[1:] if shape else (tuple(example.shape[1:]) if example is not None
                                        else None)
        x, y = load_samples(calib, want, "--calib")
        data = SourceData(x, y, x, y, Path(calib).name)
    if shape is None:
        shape = (tuple(example.shape) if example is not None else
                 (1,) + tuple(data.x_train.shape[1:]) if data is not None else None)
        if shape is None:
            raise SourceError(f"{spec}: cannot tell the model's input shape; pass "
                              "--input-shape, batch first, e.g. 1,3,32,32")
        shape = parse_input_shape(shape, "the example input's shape")
    if example is not None and tuple(example.shape) != shape:
        example = None  # --input-shape overrides the file's example
    if hasattr(model, "eval") and not hasattr(model, "graph_signature"):
        model.eval()
    src = ModelSource(label, model, shape, example=example, data=data, description=f"{label} "
                      f"from {spec}")
    check_runs(src)
    src_spec = SourceSpec(spec=_absolute(spec), input_shape=shape,
                          weights=str(Path(weights).resolve()) if weights else None,
                          calib=str(Path(calib).resolve()) if calib else None, seed=int(seed))
    src.spec = src_spec
    return src


def check_runs(src: ModelSource) -> None:
    """Run the float model once on ``src.example_input()``: a shape the model rejects is a
    one-line error here (before tracing, whose shape propagation prints a traceback)."""
    import torch

    x = src.example_input()
    try:
        with torch.no_grad():
            src.module()(x)
    except Exception as exc:  # the user's code: any error is theirs, in one line
        raise SourceError(f"example input of shape {tuple(x.shape)} does not fit {src.name}: "
                          f"PyTorch said: {first_line(exc)}; give the model's input shape with "
                          "--input-shape, batch first") from None


def _absolute(spec: str) -> str:
    file, sep, name = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    return str(Path(file).resolve()) + sep + name

"""The MODEL argument of ``graph``, ``map``, ``compile`` and ``dse``: a zoo name or your own
model (``file.py:NAME``, ``.pt2``, ``.onnx``) with ``--input-shape``, ``--weights`` and
``--calib`` (:mod:`mapping.source`, docs/your_model.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwgen.cli import CliError

MODEL_HELP = ("a zoo model name (see `hwgen models`), or your own model: path/to/file.py:NAME "
              "(an nn.Module instance, class or factory function in that file), a "
              "torch.export program (.pt2) or an ONNX file (.onnx)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Register MODEL and the options of a user's model on a sub-command's parser."""
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    g = p.add_argument_group("your own model (file.py:NAME, .pt2, .onnx; see "
                             "docs/your_model.md)")
    g.add_argument("--input-shape", metavar="1,C,H,W", default=None,
                   help="input shape, batch first (batch 1), e.g. 1,3,32,32 or 1,16; needed "
                   "unless the factory returns an example input, the .pt2/.onnx file or "
                   "--calib tells it")
    g.add_argument("--weights", metavar="STATE_DICT.pt", default=None,
                   help="trained weights for a file.py:NAME model: torch.save(model.state_dict()"
                   ", path), loaded with weights_only=True and strict=True")
    g.add_argument("--calib", metavar="DATA.npy|.npz", default=None,
                   help="float calibration samples, batch first, shaped like the input (an .npz "
                   "holds x and optionally labels y); default: 32 seeded random-normal inputs "
                   "(then the accuracy on real data is unknown)")


def is_user_model(spec: str) -> bool:
    from mapping.source import is_source_spec

    return is_source_spec(spec)


def resolve_model(spec: str, input_shape: str | None = None, weights: str | None = None,
                  calib: str | None = None, *, warn: bool = True, calibrates: bool = True):
    """The zoo ``ModelEntry`` or the user's :class:`mapping.source.ModelSource` (CliError if
    bad); when ``warn``, prints to stderr the calibration warning of a user's model without
    ``--calib`` (unless the command does not calibrate: ``calibrates=False``) and the
    ``qat_note`` of a Brevitas model (its imported QAT scales)."""
    if is_user_model(spec):
        from mapping.graph import GraphError
        from mapping.source import load_source

        try:
            src = load_source(spec, input_shape=input_shape, weights=weights, calib=calib)
        except GraphError as exc:
            raise CliError(str(exc)) from None
        if warn and calibrates and src.calibration_warning:
            print(f"warning: {src.calibration_warning}", file=sys.stderr)
        if warn and getattr(src, "qat_note", None):
            print(f"note: {src.qat_note}", file=sys.stderr)
        return src
    given = [opt for opt, v in (("--input-shape", input_shape), ("--weights", weights),
                                ("--calib", calib)) if v is not None]
    import models

    try:
        entry = models.get(spec)
    except (KeyError, ValueError) as exc:
        raise CliError(f"{exc}; or give your own model: path/to/file.py:NAME, a .pt2 or an "
                       ".onnx file") from None
    if given:
        raise CliError(f"{', '.join(given)} apply to your own model (file.py:NAME, .pt2, "
                       f".onnx), not to the zoo model {spec!r}, which has its own data")
    return entry


def model_from_args(args: argparse.Namespace, *, warn: bool = True, calibrates: bool = True):
    """:func:`resolve_model` of a parsed command line (``add_model_arguments``)."""
    return resolve_model(args.model, args.input_shape, args.weights, args.calib, warn=warn,
                         calibrates=calibrates)


def model_key(entry) -> str:
    """A string naming ``entry`` that another process turns back into it
    (:func:`dse.model.model_entry`): the zoo name, or the source's JSON spec."""
    spec = getattr(entry, "spec", None)
    return entry.name if spec is None else spec.to_json()


def source_settings(entry) -> dict:
    """Manifest settings describing the model: ``{"source": ...}`` for a user's model
    (specifier, options, SHA-256 of its files), nothing for a zoo model."""
    return {"source": entry.record()} if hasattr(entry, "record") else {}


def default_out(entry) -> Path:
    """``build/<model name>`` (a file-safe name)."""
    return Path("build") / "".join(c if c.isalnum() or c in "-_." else "_" for c in entry.name)


def prepare_graph(entry, *, bits: int = 8, w_bits: int | None = None, acc_bits: int = 32):
    """:func:`mapping.passes.prepare_entry` with one-line errors."""
    from mapping.graph import GraphError
    from mapping.passes import prepare_entry
    from mapping.quant import QuantError

    try:
        return prepare_entry(entry, bits=bits, w_bits=w_bits, acc_bits=acc_bits)
    except (GraphError, QuantError, FileNotFoundError) as exc:
        raise CliError(f"{entry.name}: {exc}") from None

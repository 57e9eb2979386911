"""Resource estimators for level-0 evaluation.

:class:`ResourceEstimator` is the interface: ``estimate(arch, rom_words)`` gives
``{"lut", "ff", "dsp", "bram"}`` (all *estimated*) or ``None`` when no
calibrated model exists for the family. :func:`estimator_for` returns the
boards helper's calibrated model (:mod:`boards.resource_model`) when it has
one for the family, else :class:`NoResourceModel`, which estimates nothing:
resource columns are then reported missing, never invented.
"""

from __future__ import annotations

from typing import Protocol

from mapping.arch import ArchSpec


class ResourceEstimator(Protocol):
    """Estimated LUT/FF/DSP/BRAM of an accelerator (``None``: no model)."""

    source: str
    available: bool

    def estimate(self, arch: ArchSpec, rom_words: int) -> dict[str, float] | None: ...


class NoResourceModel:
    """No calibrated model for this family: every estimate is ``None`` (reported missing)."""

    available = False

    def __init__(self, why: str):
        self.source = f"missing ({why})"

    def estimate(self, arch: ArchSpec, rom_words: int) -> None:
        return None


class BoardsResourceModel:
    """:class:`boards.resource_model.ResourceModel` of one family (calibrated on Yosys)."""

    available = True

    def __init__(self, family: str):
        from boards import resource_model as rm

        self._rm = rm
        self.family = family
        self.model = rm.ResourceModel.load(family)
        self.source = rm.SOURCE

    def estimate(self, arch: ArchSpec, rom_words: int) -> dict[str, float]:
        f = self._rm.features_from_arch(arch.to_dict(), family=self.family, rom_words=rom_words)
        r = self.model.predict(f)
        return {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram}


def estimator_for(family: str) -> ResourceEstimator:
    """The calibrated model of ``family`` if there is one, else :class:`NoResourceModel`."""
    try:
        return BoardsResourceModel(family)
    except ImportError:
        return NoResourceModel("boards.resource_model is not installed")
    except ValueError as exc:  # ResourceModelError: no calibration for this family
        return NoResourceModel(str(exc))

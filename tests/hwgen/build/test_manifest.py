"""hwgen.build.manifest: the typed manifest of a build directory and the one-line errors of
Manifest.load (another format, missing file, tampered file, malformed manifest)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import hwgen
from hwgen.build.graph_store import npz_bytes
from hwgen.build.manifest import (
    FORMAT_VERSION,
    BuildError,
    LayerInfo,
    Manifest,
    Placement,
    StreamInfo,
)
from mapping.arch import ArchSpec, preset


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def _rewrite(build: Path, **changes) -> None:
    man = json.loads((build / "manifest.json").read_text())
    man.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del man[key]
    (build / "manifest.json").write_text(json.dumps(man))


def test_manifest_is_typed(mlp_build_dir):
    man = Manifest.load(mlp_build_dir)
    assert man.format_version == FORMAT_VERSION and man.hwgen_version == hwgen.__version__
    assert (man.kind, man.model, man.objective, man.settings) == (
        "chain", "mlp-digits", "latency", {"bits": 8})
    assert man.arch == preset("tiny-4x4") and isinstance(man.arch, ArchSpec)
    assert man.input == StreamInfo((1, 64), "row-major", 8, man.input.scale)
    assert isinstance(man.output, StreamInfo) and man.output.shape == (1, 10)
    assert all(isinstance(x, LayerInfo) for x in man.layers)
    assert [x.name for x in man.layers] == ["fc1", "fc2", "fc3"]
    assert man.predicted_cycles_total == sum(x.predicted_cycles for x in man.layers)
    assert all(isinstance(p, Placement) for p in man.placements)
    assert man.program["input_count"] == 64 and man.program["output_count"] == 10
    assert (man.top_module, man.verilog, man.synth_source) == (
        "hwgen_accel", "hwgen_accel.v", "hwgen_accel.il")


def test_files_are_every_file_with_its_hash(mlp_build_dir):
    man = Manifest.load(mlp_build_dir)
    on_disk = sorted(p.relative_to(mlp_build_dir).as_posix()
                     for p in mlp_build_dir.rglob("*") if p.is_file())
    assert sorted([*man.files, "manifest.json"]) == on_disk
    for name, digest in man.files.items():
        assert hashlib.sha256((mlp_build_dir / name).read_bytes()).hexdigest() == digest
    assert {"graph.json", "graph.npz", "schedule.json", "report.md", "hwgen_accel.v",
            "hwgen_accel.il", "weights.hex", "program.hex", "params.hex"} == set(man.files)


def test_json_and_mapping_views(mlp_build_dir):
    man = Manifest.load(mlp_build_dir)
    on_disk = json.loads((mlp_build_dir / "manifest.json").read_text())
    assert man.to_dict() == on_disk and man == on_disk  # a Mapping equal to its JSON
    assert man["output"]["layout"] == "row-major" and man["layers"][0]["name"] == "fc1"
    assert man.get("measured_cycles_total") is None and "kind" in man
    view = man["files"]
    view.clear()  # a copy: the manifest is unchanged
    assert man["files"] and man.files
    again = Manifest.from_dict(man.to_dict())
    assert again == man and again.input == man.input and again.arch == man.arch


def test_save_load_round_trip(mlp_build_dir, tmp_path):
    man = Manifest.load(mlp_build_dir)
    man.save(tmp_path)
    assert (tmp_path / "manifest.json").read_text() == \
        (mlp_build_dir / "manifest.json").read_text()
    assert Manifest.load(tmp_path, verify=False) == man


# ------------------------------------------------------------------ errors
def test_tampered_file_is_refused(build_copy):
    with open(build_copy / "weights.hex", "a") as fh:
        fh.write("00\n")
    with pytest.raises(BuildError) as e:
        Manifest.load(build_copy)
    msg = one_line(e)
    assert str(build_copy / "weights.hex") in msg and "does not match the SHA-256" in msg
    assert "recompile" in msg and "hwgen compile" in msg


def test_tampered_graph_arrays_are_refused(build_copy):
    """Editing graph.npz (here: one weight changed, still a valid archive) is caught by its
    hash."""
    with np.load(build_copy / "graph.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["a0"] = arrays["a0"] + 1
    (build_copy / "graph.npz").write_bytes(npz_bytes(arrays))
    with pytest.raises(BuildError, match=r"graph\.npz does not match the SHA-256"):
        Manifest.load(build_copy)


def test_missing_file_is_refused(build_copy):
    (build_copy / "graph.npz").unlink()
    with pytest.raises(BuildError) as e:
        Manifest.load(build_copy)
    msg = one_line(e)
    assert str(build_copy) in msg and "graph.npz is missing" in msg and "recompile" in msg


def test_old_format_build_with_pickle_is_refused_unread(build_copy, tmp_path):
    """A format-1 build (graph.pkl) is refused before anything in it is read: its pickle,
    which would create a file when unpickled, is never loaded."""
    marker = tmp_path / "pickle-was-loaded"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (build_copy / "graph.pkl").write_bytes(pickle.dumps(Evil()))
    (build_copy / "graph.json").unlink()
    (build_copy / "graph.npz").unlink()
    _rewrite(build_copy, format_version=1)
    from sim.accelerator import load_build

    for load in (Manifest.load, load_build):
        with pytest.raises(BuildError) as e:
            load(build_copy)
        msg = one_line(e)
        assert str(build_copy / "manifest.json") in msg
        assert "built by an older hwgen" in msg and "build format 1" in msg
        assert "graph.pkl" in msg and "recompile it with `hwgen compile`" in msg
    assert not marker.exists()


def test_manifest_without_format_version_is_old(build_copy):
    _rewrite(build_copy, format_version=None)
    with pytest.raises(BuildError, match="built by an older hwgen .* build format None"):
        Manifest.load(build_copy)


def test_newer_format_and_other_version(build_copy):
    _rewrite(build_copy, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BuildError) as e:
        Manifest.load(build_copy)
    assert "built by a newer hwgen" in one_line(e) and "update hwgen" in one_line(e)
    _rewrite(build_copy, format_version=FORMAT_VERSION, hwgen_version="0.0.1")
    with pytest.raises(BuildError) as e:
        Manifest.load(build_copy)
    assert "built by hwgen 0.0.1" in one_line(e) and "recompile" in one_line(e)


@pytest.mark.parametrize("changes,match", [
    ({"layers": "fc1"}, "field 'layers' is malformed"),
    ({"layers": [{"name": "fc1", "kind": "gemm", "predicted_cycles": "9"}]},
     "LayerInfo.predicted_cycles = '9' has the wrong type"),
    ({"program": {"input_count": 64}}, "program lacks integer output_count"),
    ({"arch": {"rows": 0}}, "field 'arch' is malformed"),
    ({"kind": "bitstream"}, "kind 'bitstream' is not one of"),
    ({"input": None}, "needs field\\(s\\) input"),
    ({"surprise": 1}, "unknown field\\(s\\) surprise"),
    ({"files": {"hwgen_accel.v": "0" * 64}}, "files does not list hwgen_accel.il"),
])
def test_malformed_manifest(build_copy, changes, match):
    _rewrite(build_copy, **changes)
    with pytest.raises(BuildError, match=match) as e:
        Manifest.load(build_copy)
    assert str(build_copy / "manifest.json") in one_line(e)


def test_not_a_build(tmp_path):
    with pytest.raises(BuildError, match="does not exist"):
        Manifest.load(tmp_path / "nothing")
    with pytest.raises(BuildError, match="not a build directory"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2")
    with pytest.raises(BuildError, match="not valid JSON"):
        Manifest.load(tmp_path)

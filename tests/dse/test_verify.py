"""Verification bookkeeping: a failing stage (e.g. Yosys crashing on one design) is reported
for that point and the others still run; stages depend on the build; P&R is skipped with a
reason on boards without open place-and-route."""

from pathlib import Path

from dse import verify as V
from dse.execute import SerialExecutor
from dse.run import verify_points
from dse.space import Param, Space


def test_merge_joins_stage_errors_and_keeps_results():
    b = {"build_dir": "x", "build_seconds": 1.0}
    m = V.merge(b, {"error": "synthesis: RuntimeError: boom"}, {"cycles": 10.0})
    assert m["l2"] == {"cycles": 10.0} and "l1" not in m
    assert m["error"] == "synthesis: RuntimeError: boom"
    m = V.merge({"error": "build: ValueError: bad"}, V.synth_task({"error": "e"}, "ulx3s-85f"),
                V.sim_task({"error": "e"}, "cnn-digits", 2, "verilator"))
    assert m["error"] == "build: ValueError: bad"  # skipped stages add no noise


def test_pnr_support_per_family():
    assert V.pnr_supported("ulx3s-85f")[0]
    ok, why = V.pnr_supported("arty-a7-35")
    assert not ok and "synthesis only" in why


def test_failure_of_one_point_is_reported_and_the_rest_runs(tmp_path, monkeypatch):
    def build(model, space_dict, point, out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)

    def synth(build_dir, board):
        if build_dir.endswith("p1"):
            raise RuntimeError("yosys crashed on 12 read ports")
        return {"lut": 100, "dsp": 1, "bram": 2, "ff": 5}

    def sim(build_dir, model, samples, simulator):
        return {"cycles": 1000.0, "bit_exact": True, "samples": samples}

    monkeypatch.setattr(V, "build_point", build)
    monkeypatch.setattr(V, "level1", synth)
    monkeypatch.setattr(V, "level2", sim)
    space = Space((Param("rows", (2, 12)),), {})
    chosen = [{"index": i, "rows": r, "throughput": 10.0, "cycles": 990, "lut": 90}
              for i, r in ((0, 2), (1, 12))]
    out = verify_points(SerialExecutor(None), "cnn-digits", "ulx3s-85f", space, chosen,
                        tmp_path, 3, "verilator", None)
    assert out[0]["verify_error"] == "" and out[0]["lut_l1"] == 100
    assert "synthesis: RuntimeError: yosys crashed" in out[1]["verify_error"]
    assert out[1]["cycles_l2"] == 1000.0 and "lut_l1" not in out[1]
    assert out[0]["throughput_l2"] == 10.0 * 990 / 1000.0


def test_levels_read_builds_through_the_contract(tmp_path):
    """A tampered build is refused (by name) before any tool runs."""
    import json

    import models
    from hwgen.build.flow import compile_model
    from mapping.arch import preset
    from mapping.passes import prepare_entry

    out = tmp_path / "b"
    compile_model(prepare_entry(models.get("mlp-digits")), preset("tiny-4x4"), out,
                  model="mlp-digits")
    (out / "hwgen_accel.il").write_text("# edited\n")
    r = V.synth_task({"build_dir": str(out)}, "ulx3s-85f")
    assert "hwgen_accel.il does not match the SHA-256" in r["error"]
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**man, "format_version": 1}))
    r = V.sim_task({"build_dir": str(out)}, "mlp-digits", 1, "verilator")
    assert "built by an older hwgen" in r["error"]


def test_a_task_the_cluster_lost_is_an_error_on_its_point():
    from distributed import KilledWorker

    from dse.run import _outcome

    class Lost:
        def result(self):
            from types import SimpleNamespace

            raise KilledWorker("synth_task-abc", SimpleNamespace(address="tcp://127.0.0.1:9"), 3)

    out = _outcome(Lost(), "synthesis")
    assert out["error"].startswith("synthesis: KilledWorker:") and "synth_task-abc" in out["error"]
    assert _outcome({"lut": 5}, "synthesis") == {"lut": 5}

import pytest

from boards.report import CriticalPath, DoesNotFitError, PathStep, Port, SynthReport, fit


def report(family="ice40", **res):
    base = dict(lut=0, ff=0, carry=0, dsp=0, bram=0, spram=0, io=0)
    base.update(res)
    return SynthReport(top="t", family=family, cells={}, ports=(Port("clk", "input", 1),),
                       tool_version="x", script="s", seconds=0.0, netlist="n.json", **base)


def test_utilisation_percentages():
    fr = fit(report(lut=1320, ff=528, dsp=2, bram=15, spram=1), "icebreaker")
    u = fr.utilisation()
    assert u["lut"] == pytest.approx(25.0) and u["ff"] == pytest.approx(10.0)
    assert u["dsp"] == pytest.approx(25.0) and u["bram"] == pytest.approx(50.0)
    assert u["spram"] == pytest.approx(25.0)
    assert fr.fits


def test_does_not_fit_names_resource_and_excess():
    with pytest.raises(DoesNotFitError) as info:
        fit(report(lut=6280, dsp=3), "hx8k-breakout")  # HX8K: 7680 LUTs, no DSP
    err = info.value
    assert set(err.overflows) == {"dsp"}
    assert "dsp: needs 3, has 0 (3 too many" in str(err) and "iCE40HX8K" in str(err)
    with pytest.raises(DoesNotFitError, match=r"lut: needs 6280, has 5280 \(1000 too many, 119%\)"):
        fit(report(lut=6280), "icebreaker")


def test_non_strict_reports_overflow():
    fr = fit(report(bram=31), "iCE40UP5K", strict=False)
    assert not fr.fits and fr.overflows() == {"bram": (31, 30)}


def test_family_mismatch():
    with pytest.raises(ValueError, match="synthesise for ecp5"):
        fit(report(family="ice40"), "ulx3s-85f")


def test_json_round_trip():
    r = report(lut=3, bram=0.5)
    assert SynthReport.from_json(r.to_json()) == r


def test_critical_path_summary():
    steps = (PathStep("clk-to-q", 0.5, "ff_a", "ff_a"), PathStep("routing", 1.0, "ff_a", "m"),
             PathStep("logic", 2.0, "m", "m"), PathStep("setup", 0.1, "ff_b", "ff_b"))
    cp = CriticalPath("posedge clk", "posedge clk", 3.6, 2.6, 1.0, steps)
    s = cp.summary()
    assert "3.60 ns" in s and "1 logic steps" in s and "ff_a -> ff_b" in s

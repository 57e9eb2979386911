"""``hwgen dse`` exit status: tool failures on a point are results, wrong hardware is not."""

from hwgen.cli.dse_cmd import verification_exit


def test_a_tool_failure_on_a_point_exits_0_and_warns(capsys):
    verified = [
        {"index": 3, "cycles": 100, "cycles_l2": 100, "bit_exact_l2": True, "verify_error": ""},
        {"index": 7, "cycles": 90, "verify_error": "synthesis: ToolError: yosys failed with "
         "exit code 1: ERROR: Assert failed (logs: /x/yosys.log)"},
    ]
    assert verification_exit(verified) == 0
    err = capsys.readouterr().err
    assert "point #7 not verified" in err and "ERROR: Assert failed" in err
    assert "#3" not in err


def test_wrong_hardware_exits_1():
    ok = {"index": 1, "cycles": 100, "cycles_l2": 100, "bit_exact_l2": True}
    assert verification_exit([ok]) == 0
    assert verification_exit([ok, {**ok, "index": 2, "bit_exact_l2": False}]) == 1
    assert verification_exit([ok, {**ok, "index": 2, "cycles_l2": 101}]) == 1

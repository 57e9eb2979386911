import pytest

import boards
from boards.catalogue import BOARDS, DEVICES, UnknownBoardError, device_of, family_of, get

# Independent transcription of the data-sheet selection-guide figures.
DATASHEET = {
    # name: (LUTs, DSP blocks, BRAM blocks, BRAM bits, SPRAM blocks)
    "LFE5U-25F": (24_288, 28, 56, 18 * 1024, 0),      # FPGA-DS-02012 Table 1.1
    "LFE5U-45F": (43_848, 72, 108, 18 * 1024, 0),
    "LFE5U-85F": (83_640, 156, 208, 18 * 1024, 0),
    "iCE40UP5K": (5_280, 8, 30, 4 * 1024, 4),          # FPGA-DS-02008 Table 1.1
    "iCE40HX8K": (7_680, 0, 32, 4 * 1024, 0),          # DS1040 Table 1.1
    "XC7A35T": (20_800, 90, 50, 36 * 1024, 0),         # DS180 Table 4
    "XC7A100T": (63_400, 240, 135, 36 * 1024, 0),
}


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_device_budgets_match_datasheets(name):
    d = DEVICES[name]
    luts, dsps, bram, bits, spram = DATASHEET[name]
    assert (d.luts, d.dsps, d.bram_blocks, d.bram_bits, d.spram_blocks) == (
        luts, dsps, bram, bits, spram)
    assert d.datasheet


def test_ram_totals_in_kbit():
    assert DEVICES["LFE5U-85F"].bram_total_bits == 3744 * 1024  # 3744 Kbit EBR
    assert DEVICES["iCE40UP5K"].bram_total_bits == 120 * 1024
    assert DEVICES["iCE40UP5K"].spram_blocks * DEVICES["iCE40UP5K"].spram_bits == 1024 * 1024
    assert DEVICES["XC7A100T"].bram_total_bits == 4860 * 1024


def test_xilinx_has_6_input_luts_and_2_ffs_per_lut():
    for name in ("XC7A35T", "XC7A100T"):
        d = DEVICES[name]
        assert d.lut_inputs == 6 and d.ffs == 2 * d.luts and not d.supports_pnr


@pytest.mark.parametrize("board,device,family", [
    ("ulx3s-85f", "LFE5U-85F", "ecp5"), ("orangecrab-25f", "LFE5U-25F", "ecp5"),
    ("icebreaker", "iCE40UP5K", "ice40"), ("hx8k-breakout", "iCE40HX8K", "ice40"),
    ("arty-a7-35", "XC7A35T", "xc7"), ("arty-a7-100", "XC7A100T", "xc7"),
])
def test_boards(board, device, family):
    b = get(board)
    assert b.device.name == device and b.family == family
    assert device_of(board).name == device and family_of(board) == family
    assert get(board.upper()) is b


def test_get_devices_and_passthrough():
    d = get("lfe5u-45f")
    assert d is DEVICES["LFE5U-45F"]
    assert get(d) is d
    assert boards.get("icebreaker") is BOARDS["icebreaker"]
    assert family_of("ECP5") == "ecp5"


def test_orangecrab_package_differs_but_budget_same():
    oc = BOARDS["orangecrab-25f"].device
    assert oc.package == "CSFBGA285" and oc.speed == "8"
    assert oc.luts == DEVICES["LFE5U-25F"].luts


def test_unknown_names_are_listed():
    with pytest.raises(UnknownBoardError) as info:
        get("de10-nano")
    msg = str(info.value)
    assert "de10-nano" in msg and "ulx3s-85f" in msg and "iCE40UP5K" in msg
    with pytest.raises(UnknownBoardError, match="families: ecp5, ice40, xc7"):
        family_of("virtex")
    with pytest.raises(TypeError):
        get(3)

import pytest

from boards.cells import summarise


def test_ecp5_weights():
    cells = {"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 2, "TRELLIS_FF": 7, "MULT18X18D": 2,
             "ALU54B": 1, "DP16KD": 4, "PFUMX": 5, "TRELLIS_IO": 3}
    r = summarise("ecp5", cells)
    assert r == {"lut": 10 + 2 * 3 + 4 * 2, "ff": 7, "carry": 3, "dsp": 2, "bram": 4,
                 "spram": 0, "io": 3}


def test_ice40_all_ff_and_ram_variants():
    cells = {"SB_LUT4": 20, "SB_CARRY": 8, "SB_DFF": 3, "SB_DFFSR": 4, "SB_DFFESR": 5,
             "SB_MAC16": 2, "SB_RAM40_4K": 1, "SB_RAM40_4KNR": 2, "SB_SPRAM256KA": 3,
             "SB_IO": 6, "SB_GB": 1}
    r = summarise("ice40", cells)
    assert r == {"lut": 20, "ff": 12, "carry": 8, "dsp": 2, "bram": 3, "spram": 3, "io": 6}


def test_xc7_lutram_and_half_brams():
    cells = {"LUT1": 1, "LUT6": 4, "RAM32M": 2, "SRLC32E": 3, "FDRE": 9, "FDCE": 1,
             "CARRY4": 5, "DSP48E1": 6, "RAMB36E1": 2, "RAMB18E1": 3, "IBUF": 4, "OBUF": 2,
             "MUXF7": 8, "BUFG": 1}
    r = summarise("xc7", cells)
    assert r == {"lut": 1 + 4 + 8 + 3, "ff": 10, "carry": 5, "dsp": 6, "bram": 3.5,
                 "spram": 0, "io": 6}


def test_unknown_family():
    with pytest.raises(ValueError, match="ecp5, ice40, xc7"):
        summarise("stratix", {})

"""Random small layers, architectures and mappings for the mapping property tests (seeded)."""

from __future__ import annotations

import random

from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import ORDERS, LayerMapping

SEED = 20240611


def random_arch(rng: random.Random, max_dim: int = 6) -> ArchSpec:
    rows, cols = rng.randint(1, max_dim), rng.randint(1, max_dim)
    db = rng.random() < 0.5
    w_bits = rng.choice([4, 8])
    in_bits = rng.choice([4, 8])
    return ArchSpec(
        rows=rows, cols=cols, dataflow=rng.choice(["ws", "os"]), double_buffer=db,
        in_bits=in_bits, w_bits=w_bits, acc_bits=rng.choice([24, 32]),
        w_words=rng.randint(rows * cols * (2 if db else 1), 600),
        acc_words=rng.randint(cols, 400), act_words=10**6,
        weight_store=rng.choice(["rom", "external"]),
        ext_bandwidth=rng.choice([1.0, 0.5, 0.3, 0.77]), ext_latency=rng.randint(0, 20),
        ext_word_bits=rng.choice([8, 16, 32, 64]),
    )


def random_nest(rng: random.Random, max_gemm: int = 20, conv_prob: float = 0.5) -> LoopNest:
    if rng.random() < conv_prob:
        while True:
            r = rng.randint(1, 3)
            s = rng.randint(1, 3)
            stride, pad, dil = rng.randint(1, 2), rng.randint(0, 2), rng.randint(1, 2)
            h, w = rng.randint(1, 6), rng.randint(1, 6)
            if rng.random() < 0.5:  # per-axis geometry: the height axis drawn on its own
                stride, pad, dil = ((rng.randint(1, 2), stride), (rng.randint(0, 2), pad),
                                    (rng.randint(1, 2), dil))
            sh, sw = (stride, stride) if isinstance(stride, int) else stride
            ph, pw = (pad, pad) if isinstance(pad, int) else pad
            dh, dw = (dil, dil) if isinstance(dil, int) else dil
            if (h + 2 * ph - dh * (r - 1) - 1) < 0 or (w + 2 * pw - dw * (s - 1) - 1) < 0:
                continue
            return LoopNest.conv(rng.randint(1, 2), rng.randint(1, 5), rng.randint(1, 3), h, w,
                                 r, s, stride=stride, padding=pad, dilation=dil)
    return LoopNest.gemm(rng.randint(1, max_gemm), rng.randint(1, max_gemm),
                         rng.randint(1, max_gemm))


def random_mapping(rng: random.Random, nest: LoopNest, arch: ArchSpec) -> LayerMapping:
    """A random mapping (may break a buffer limit; callers filter with mapping.timing.check)."""
    def pick(dim: int) -> int:
        # favour edge tiles (non-divisors) and full tiles alike
        return rng.choice([rng.randint(1, dim), dim, max(1, dim - 1)])

    return LayerMapping("rand", nest, arch.dataflow, pick(nest.gemm_m), pick(nest.gemm_n),
                        pick(nest.gemm_k), rng.choice(ORDERS))

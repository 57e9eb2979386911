"""``hwgen graph MODEL``: trace a model (zoo name, file.py:NAME, .pt2, .onnx) and print its
dataflow graph as a table."""

from __future__ import annotations

import argparse

from hwgen.cli import CliError
from hwgen.cli.model_arg import add_model_arguments, model_from_args, prepare_graph


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph",
        help="trace a model and print its dataflow graph (optionally quantised)",
        description="Trace MODEL with torch.fx and print one row per node: op, inputs, output "
        "shape, parameters, MACs and quantisation. With --lower, BN is folded, activations "
        "fused and every compute node's loop nest listed; --quantize also calibrates "
        "(max-abs over the training split, --calib, or random inputs for models without data) "
        "and quantises.",
    )
    add_model_arguments(p)
    p.add_argument("--lower", action="store_true",
                   help="fold BN, fuse activations and lower to loop nests")
    p.add_argument("--quantize", action="store_true",
                   help="fold, fuse, quantise and lower (implies --lower)")
    p.add_argument("--bits", type=int, default=8, help="activation bits, 2..16 (default 8)")
    p.add_argument("--w-bits", type=int, default=None,
                   help="weight bits, 2..16 (default: --bits)")
    p.add_argument("--acc-bits", type=int, default=32,
                   help="accumulator bits, 8..48 (default 32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mapping.graph import GraphError, trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower
    from mapping.quant import QuantError

    entry = model_from_args(args, warn=args.quantize)
    if args.quantize:
        g = prepare_graph(entry, bits=args.bits, w_bits=args.w_bits, acc_bits=args.acc_bits)
    else:
        try:
            g = trace(entry.load(), entry.example_input())
            if args.lower:
                g = lower(fuse_activations(fold_batchnorm(g)))
        except (GraphError, QuantError, FileNotFoundError) as exc:
            raise CliError(f"{entry.name}: {exc}") from None
    title = f"{entry.name}: {entry.description}"
    stage = ("traced" if not (args.lower or args.quantize) else
             "folded + fused + lowered" if not args.quantize else
             f"quantised a{args.bits}/w{args.w_bits or args.bits}/acc{args.acc_bits}, lowered")
    print(f"{title}\n({stage})\n")
    print(g.summary())
    if g.compute_nodes():
        print("\nloop nests:")
        width = max(len(n.name) for n in g.compute_nodes())
        for n in g.compute_nodes():
            batch = n.attrs.get("batch", 1)
            times = f"  x{batch} (independent GEMMs)" if batch > 1 else ""
            print(f"  {n.name.ljust(width)}  {n.nest.describe()}{times}")
    host = [n.name for n in g.nodes() if n.attrs.get("host")]
    if host:
        print(f"\nhost-executed ops: {', '.join(host)}")
    return 0

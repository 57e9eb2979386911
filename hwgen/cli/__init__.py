"""The ``hwgen`` command line: one module per sub-command under ``hwgen/cli/``.

Each sub-command module defines ``add_parser(subparsers)`` which registers the
sub-command and sets ``func`` (a callable taking the parsed ``args`` and
returning an exit code). Modules are imported lazily so ``hwgen --help`` stays
fast and a broken optional dependency only breaks its own sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name -> module under hwgen.cli (registration order = help order)
COMMANDS: dict[str, str] = {
    "models": "hwgen.cli.models_cmd",
    "graph": "hwgen.cli.graph_cmd",
    "map": "hwgen.cli.map_cmd",
    "compile": "hwgen.cli.compile_cmd",
    "sim": "hwgen.cli.sim_cmd",
    "boards": "hwgen.cli.boards_cmd",
    "synth": "hwgen.cli.synth_cmd",
    "dse": "hwgen.cli.dse_cmd",
    "demo": "hwgen.cli.demo_cmd",
}


class CliError(Exception):
    """An error meant for the user: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwgen",
        description="PyTorch model -> accelerator: trace, map, generate Verilog, simulate, "
        "synthesise, explore.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # sub-command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"hwgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

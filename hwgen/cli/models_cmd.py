"""``hwgen models``: list the model zoo with shapes, sizes and float accuracy."""

from __future__ import annotations

import argparse
import json

from hwgen.cli import CliError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the model zoo (shapes, parameters, MACs, float test accuracy)",
        description="List the zoo models: input/output shape, parameter count, "
        "multiply-accumulates per inference and, for trained models, the float test "
        "accuracy measured now on the held-out split (and the one recorded at training).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="models to show (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    p.add_argument(
        "--no-eval", action="store_true", help="skip evaluating trained models on test data"
    )
    p.set_defaults(func=run)


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _fmt_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _rows(names: list[str], evaluate_acc: bool) -> list[dict]:
    import models
    from models.stats import model_stats

    rows = []
    for name in names:
        entry = models.get(name)
        model = entry.load()
        stats = model_stats(model, entry.example_input())
        row = {
            "name": name,
            "description": entry.description,
            "input_shape": list(stats.input_shape),
            "output_shape": list(stats.output_shape),
            "parameters": stats.parameters,
            "macs": stats.macs,
            "trained": entry.trained,
            "dataset": entry.dataset_name,
            "test_accuracy_measured": None,
            "test_accuracy_recorded": None,
        }
        meta = entry.metadata()
        if meta is not None:
            row["test_accuracy_recorded"] = meta["test_accuracy"]
        if entry.trained and evaluate_acc:
            row["test_accuracy_measured"] = models.evaluate(model, entry.dataset())
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    import models

    names = args.names or models.names()
    unknown = [n for n in names if n not in models.names()]
    if unknown:
        raise CliError(
            f"unknown model(s) {', '.join(unknown)}; known models: {', '.join(models.names())}"
        )
    rows = _rows(names, evaluate_acc=not args.no_eval)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("model", "input", "output", "params", "MACs", "data", "float test acc")
    table = [header]
    for r in rows:
        if r["test_accuracy_measured"] is not None:
            acc = f"{100 * r['test_accuracy_measured']:.2f}% (measured)"
        elif r["test_accuracy_recorded"] is not None:
            acc = f"{100 * r['test_accuracy_recorded']:.2f}% (recorded)"
        else:
            acc = "- (untrained)"
        table.append(
            (
                r["name"],
                _fmt_shape(tuple(r["input_shape"])),
                _fmt_shape(tuple(r["output_shape"])),
                _fmt_count(r["parameters"]),
                _fmt_count(r["macs"]),
                r["dataset"] or "-",
                acc,
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print("MACs and parameter counts are exact (counted); accuracies are float (unquantised).")
    return 0

"""Command line: `python -m because_train <stage> --config FILE [--seed N] [--set key=value ...]`."""

import argparse
import json
import sys
from typing import Any

from because_train.config import Config, load_config


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _config(args: argparse.Namespace) -> Config:
    overrides = {}
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected key=value, e.g. train.epochs=3")
        key, value = item.split("=", 1)
        overrides[key] = _value(value)
    if args.seed is not None:
        overrides["seed"] = args.seed
    try:
        return load_config(args.config, overrides)
    except (ValueError, OSError) as e:
        raise SystemExit(f"config: {e}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="because_train", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True)
    for stage, helptext in [
        ("data", "load and check the labelled data"),
        ("rgen", "stage 1: write a reasoning for every row"),
        ("augment", "stage 2: join rows and reasonings"),
        ("train", "train the Q->RA classifier and the Q->A baseline"),
        ("export", "export ONNX model packages into models/"),
        ("report", "Q->A and Q->RA side by side"),
        ("card", "rewrite the packages' model cards from their manifests and card_notes"),
        ("pipeline", "every stage in order (each resumes where it stopped)"),
    ]:
        p = sub.add_parser(stage, help=helptext)
        p.add_argument("--config", default="training/configs/emotion-natural.toml")
        p.add_argument("--seed", type=int)
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
        if stage in ("train", "export", "card"):
            p.add_argument("--kind", choices=["qra", "qa", "both"], default="both")
    ev = sub.add_parser("evaluate", help="evaluate a model package on a split file")
    ev.add_argument("--model", required=True, help="a model package folder, e.g. models/emotion-qra-natural")
    ev.add_argument("--data", required=True, help="a JSONL/CSV/parquet file of {text, label}")
    ev.add_argument("--limit", type=int, default=0, help="first N rows only")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--predictions-out", help="write one JSON line per row")
    ev.add_argument(
        "--ungrounded",
        action="store_true",
        help="let quotes stray from the input (measures what grounded quoting changes)",
    )
    ev.add_argument("--confusion-png", help="write the confusion matrix as PNG")
    args = parser.parse_args(argv)

    if args.stage == "evaluate":
        from because_train.evaluate import evaluate_cli

        return evaluate_cli(args)
    config = _config(args)
    from because_train import stages

    kinds = ["qra", "qa"] if getattr(args, "kind", "both") == "both" else [args.kind]
    if args.stage in ("data", "pipeline"):
        stages.data(config)
    if args.stage in ("rgen", "pipeline"):
        stages.rgen(config)
    if args.stage in ("augment", "pipeline"):
        stages.augment(config)
    if args.stage in ("train", "pipeline"):
        from because_train.train import train

        for kind in kinds:
            train(config, kind, config.run / "augmented")
    if args.stage in ("export", "pipeline"):
        from because_train.export import export

        for kind in kinds:
            export(config, kind)
    if args.stage == "card":
        from because_train.export import rewrite_card

        for kind in kinds:
            rewrite_card(config, kind)
    if args.stage in ("report", "pipeline"):
        from because_train.report import report

        report(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

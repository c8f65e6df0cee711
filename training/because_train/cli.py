"""Command line: `python -m because_train <stage> --config FILE [--seed N] [--set key=value ...]`.

`because_train <stage> --help` lists the configuration keys that stage reads, with their defaults.
"""

import argparse
import json
import logging
import sys
from typing import Any

from because_train.config import Config, as_dict, config_keys, load_config
from because_train.console import setup_logging
from because_train.long_text import TRUNCATE_MODES

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "training/configs/emotion-natural.toml"

# What each stage does, and the configuration keys it reads (a table's name, e.g. `train`, stands for
# every key in it). `<stage> --help` lists the keys from here; the tests check each exists in Config.
PIPELINE: dict[str, tuple[str, tuple[str, ...]]] = {  # the stages `pipeline` runs, in order
    "data": ("load and check the labelled data", ("run_dir", "seed", "labels.names", "data")),
    "rgen": (
        "stage 1: write a reasoning for every row",
        ("run_dir", "seed", "labels", "model.normalize", "rgen"),
    ),
    "augment": ("stage 2: join rows and reasonings", ("run_dir", "rgen.backend")),
    "train": (
        "train the Q->RA classifier and the Q->A baseline",
        (
            "run_dir",
            "seed",
            "labels",
            "model.base",
            "model.normalize",
            "model.vocab_size",
            "model.max_input_tokens",
            "model.max_reasoning_tokens",
            "model.lora_r",
            "train",
        ),
    ),
    "export": (
        "export ONNX model packages into models_dir",
        (
            "name",
            "run_dir",
            "models_dir",
            "card_notes",
            "seed",
            "labels",
            "data",
            "model.base",
            "model.normalize",
            "model.label_scores_at",
            "model.max_input_tokens",
            "model.max_reasoning_tokens",
            "export",
            "prior",
        ),
    ),
    "report": (
        "Q->A and Q->RA side by side",
        ("name", "run_dir", "models_dir", "report_dir", "seed", "labels.names", "model.normalize"),
    ),
}
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    **PIPELINE,
    "card": (
        "rewrite the packages' model cards from their manifests and card_notes",
        ("name", "run_dir", "models_dir", "card_notes"),
    ),
    "prior": (
        "fit a lexical prior (TF-IDF + logistic regression) into exported packages in place and measure them again",
        ("name", "run_dir", "models_dir", "card_notes", "seed", "data", "prior"),
    ),
    "graphs": (
        "add the fused fp32 and int8 graphs to packages in place and choose their default_graph",
        ("name", "run_dir", "models_dir", "card_notes", "data"),
    ),
    "pipeline": (
        "every stage in order (each resumes where it stopped)",
        tuple(dict.fromkeys(k for _, keys in PIPELINE.values() for k in keys)),
    ),
}
KINDS = ("qra", "qa", "both")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every flag shows its default; a flag without one (None) says in its own help what happens when
    it is left out. The key table in the epilog keeps its columns."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def keys_epilog(keys: tuple[str, ...]) -> str:
    """The configuration keys a stage reads, one a line with its built-in default."""
    if not keys:
        return "configuration keys read: none (the package's manifest.json describes the model)"
    rows = {k: json.dumps(v) for key in keys for k, v in config_keys(key)}  # a key once, first place kept
    width = max(map(len, rows)) + 2
    head = "configuration keys read (set in --config or by --set; the built-in defaults shown):"
    return "\n".join([head] + [f"  {k:<{width}}{v}" for k, v in rows.items()])


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug messages too")

    parser = argparse.ArgumentParser(prog="because_train", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    for stage, (helptext, keys) in STAGES.items():
        p = sub.add_parser(
            stage,
            help=helptext,
            description=helptext,
            epilog=keys_epilog(keys),
            parents=[common],
            formatter_class=HelpFormatter,
        )
        p.add_argument(
            "--config",
            default=DEFAULT_CONFIG,
            metavar="FILE",
            help="TOML configuration (relative paths inside it are from the repository root)",
        )
        p.add_argument(
            "--seed",
            type=int,
            help=f"override the config's `seed` (default: the config's; built in: {Config().seed})",
        )
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set train.epochs=3; VALUE is read as JSON where it parses, "
            "else as a string; repeatable (default: no overrides)",
        )
        if stage in ("train", "export", "card", "graphs", "prior"):
            p.add_argument(
                "--kind",
                choices=KINDS,
                default="both",
                help="qra: the text -> reasoning, label classifier; qa: the label-only baseline",
            )
    g = sub.choices["graphs"]
    g.description = (
        "Write model.fused.onnx and model.fused-int8.onnx into packages (in place), check the fused fp32 graph "
        "against model.onnx, evaluate fp32, fused-fp32 and fused-int8 on validation files, and set "
        "default_graph (fused-int8 when its accuracy is within 0.5 points of fp32 on every file, else "
        "fused-fp32). Without --package: the config's packages, checked on the run's "
        "data/validation-<source>.jsonl, the card rewritten with card_notes. With --package: that folder "
        "only, checked on --data (none: no default decided), only the card's Graphs section rewritten."
    )
    g.add_argument(
        "--package",
        action="append",
        metavar="DIR",
        help="a package folder to add the graphs to, e.g. models/emotion-qra-natural; repeatable "
        "(default: the config's packages of --kind)",
    )
    g.add_argument(
        "--data",
        action="append",
        metavar="[NAME=]FILE",
        help="a validation file of {text, label} to decide default_graph on, NAME its source (default: the "
        "file's name less validation-); repeatable (default: the run's data/validation-<source>.jsonl "
        "without --package, none with it)",
    )
    g.add_argument("--limit", type=int, default=0, help="first N rows of each --data file only; 0 reads all")
    g.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads; 0 lets it choose")
    ev = sub.add_parser(
        "evaluate",
        help="evaluate a model package on a split file",
        description="Evaluate a model package on a split file, decoding it exactly as the service does.",
        epilog=keys_epilog(()),
        parents=[common],
        formatter_class=HelpFormatter,
    )
    ev.add_argument(
        "--model", required=True, help="a model package folder, e.g. models/emotion-qra-natural (required)"
    )
    ev.add_argument("--data", required=True, help="a JSONL/CSV/parquet file of {text, label} (required)")
    ev.add_argument(
        "--graph",
        help="the package graph to decode with, a name in its manifest's `graphs` (default: the package's "
        "`default_graph`, else fp32)",
    )
    ev.add_argument("--limit", type=int, default=0, help="first N rows only; 0 reads all")
    ev.add_argument("--batch-size", type=int, default=64, help="rows decoded together")
    ev.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads; 0 lets it choose")
    ev.add_argument("--predictions-out", help="write one JSON line per row here (default: not written)")
    ev.add_argument(
        "--ungrounded",
        action="store_true",
        help="let quotes stray from the input (measures what grounded quoting changes)",
    )
    ev.add_argument(
        "--no-prior",
        action="store_true",
        help="leave out the package's lexical prior (measures what it changes)",
    )
    ev.add_argument(
        "--truncate",
        choices=TRUNCATE_MODES,
        default="start",
        help="how a text over the package's max_input_tokens is read, as the service's `truncate` "
        "(docs/long-texts.md): its first tokens, its last, or all of it in windows cut at sentence "
        "boundaries, their scores averaged",
    )
    ev.add_argument("--confusion-png", help="write the confusion matrix as PNG here (default: not written)")
    return parser


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


def _graphs(args: argparse.Namespace) -> int:
    """The graphs stage: --package folders with --data, or the config's packages with the run's data."""
    from pathlib import Path

    from because_train.graphs import add_graphs, parse_data
    from because_train.package import PackageError

    try:
        data = parse_data(args.data or [])
    except ValueError as e:
        raise SystemExit(str(e)) from None
    jobs: list[tuple[Path, dict[str, str], str | None]] = []
    if args.package:
        jobs = [(Path(p), data, None) for p in args.package]
    else:
        config = _config(args)
        notes = config.path(config.card_notes).read_text() if config.card_notes else ""
        if not data:
            data = {
                src.name: str(config.run / "data" / f"validation-{src.name}.jsonl")
                for src in config.data.all_sources()
            }
            missing = [f for f in data.values() if not Path(f).is_file()]
            if missing:
                log.warning(f"graphs: {', '.join(missing)} missing (run the data stage): no default decided")
                data = {}
        kinds = ["qra", "qa"] if args.kind == "both" else [args.kind]
        jobs = [(config.models / config.name.replace("{kind}", k), data, notes) for k in kinds]
    for package, files, notes_text in jobs:
        try:
            m = add_graphs(package, files, notes_text, args.limit, args.threads)
        except (PackageError, OSError) as e:
            log.error(f"graphs: {e}")
            return 1
        log.info(f"graphs: {package}: default_graph {m.get('default_graph', 'unset (fp32)')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)

    if args.stage == "evaluate":
        from because_train.evaluate import evaluate_cli

        log.debug(f"evaluate: model {args.model}, data {args.data}")
        return evaluate_cli(args)
    config = _config(args)
    log.debug(f"{args.stage}: config {args.config} -> {json.dumps(as_dict(config))}")
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
    if args.stage == "prior":
        from because_train.export import prior_stage

        for kind in kinds:
            prior_stage(config, kind)
    if args.stage == "graphs":
        return _graphs(args)
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

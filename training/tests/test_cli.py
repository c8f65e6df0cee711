"""The command line: help that cannot drift from Config, log levels, and progress off a terminal."""

import dataclasses
import io
import json
import logging
import re
import typing

import pytest
from test_pipeline import run_cli

from because_train.cli import STAGES
from because_train.config import EMOTIONS, Config
from because_train.console import Progress, setup_logging

ALL_STAGES = [*STAGES, "evaluate"]


def help_text(stage: str) -> str:
    result = run_cli(stage, "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed_keys(text: str) -> list[str]:
    """The keys of the table after `configuration keys read`: the first word of each indented line."""
    _, _, table = text.partition("configuration keys read")
    return [line.split()[0] for line in table.splitlines() if line.startswith("  ")]


def exists_in_config(key: str) -> bool:
    """Whether a dotted key (`data.sources[].weight`) names a field of the Config dataclasses, walked
    through their type hints."""
    cls: typing.Any = Config
    for part in key.split("."):
        name = part.removesuffix("[]")
        if not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = typing.get_type_hints(cls)[name]
        if part.endswith("[]"):
            if typing.get_origin(cls) is not list:
                return False
            (cls,) = typing.get_args(cls)
    return not dataclasses.is_dataclass(cls)  # a value, not a table


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_stage_help_lists_config_keys_that_exist(stage):
    keys = listed_keys(help_text(stage))
    assert all(exists_in_config(k) for k in keys), [k for k in keys if not exists_in_config(k)]
    assert len(keys) == len(set(keys))
    if stage == "evaluate":
        assert keys == []
    else:
        assert "models_dir" in keys if stage == "card" else "run_dir" in keys


def test_stage_key_lists_cover_what_the_stages_read():
    assert {"train.epochs", "train.lr", "model.base", "run_dir"} <= set(listed_keys(help_text("train")))
    assert {"data.sources[].train", "data.sources[].weight"} <= set(listed_keys(help_text("data")))
    assert {"rgen.backend", "rgen.llm.base", "model.normalize"} <= set(listed_keys(help_text("rgen")))
    pipeline = set(listed_keys(help_text("pipeline")))
    for stage in ("data", "rgen", "augment", "train", "export", "report"):
        assert set(listed_keys(help_text(stage))) <= pipeline, stage


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_every_flag_has_help_and_shows_its_default(stage):
    text = help_text(stage)
    options = text.split("options:", 1)[1].split("configuration keys read", 1)[0]
    entries = re.split(r"\n(?=  -)", options.strip("\n"))
    flags = [" ".join(e.split()) for e in entries if not e.lstrip().startswith("-h, --help")]
    assert len(flags) >= 3
    for flag in flags:
        assert "(default: " in flag or "(required)" in flag, flag


def tiny_config(tmp_path) -> str:
    """A run of 60 made-up rows (ten a label) and 12 validation rows: the data and rgen stages take
    a second or two."""
    words = {
        "sadness": "lonely tears",
        "joy": "great fun",
        "love": "adore you",
        "anger": "furious rage",
        "fear": "scared dark",
        "surprise": "sudden wow",
    }
    rows = [{"text": f"{words[label]} day {i}", "label": label} for i in range(10) for label in EMOTIONS]
    for name, part in (("train", rows), ("validation", rows[:12])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
run_dir = "{tmp_path / "run"}"
[data]
train = "{tmp_path / "train.jsonl"}"
validation = "{tmp_path / "validation.jsonl"}"
[rgen.evidence]
folds = 2
""")
    return str(config)


def test_quiet_hides_info_and_verbose_shows_debug(tmp_path):
    config = tiny_config(tmp_path)
    default = run_cli("data", "--config", config)
    assert default.returncode == 0, default.stderr
    assert "data: train: 60 rows" in default.stderr
    assert "data: config" not in default.stderr  # the debug line

    quiet = run_cli("data", "--config", config, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""

    verbose = run_cli("data", "-v", "--config", config)
    assert verbose.returncode == 0, verbose.stderr
    assert "data: config " in verbose.stderr and "data: train: 60 rows" in verbose.stderr


def test_progress_off_a_terminal_is_plain_lines(tmp_path):
    config = tiny_config(tmp_path)
    assert run_cli("data", "--config", config).returncode == 0
    result = run_cli("rgen", "--config", config)  # stderr is a pipe here
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert "rgen: train 60/60 (" in result.stderr and "rgen: validation 12/12 (" in result.stderr


@pytest.fixture
def package_logger():
    """The package logger's setting before the test, restored after it (setup_logging changes it)."""
    logger = logging.getLogger("because_train")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch, package_logger, tty):
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    setup_logging(logging.INFO)
    log = logging.getLogger("because_train.test")
    with Progress(log, "work", 4, unit="row") as meter:
        for done in range(1, 5):
            meter.update(done, f"loss {done}")
            meter.line(f"work {done}/4")
    log.info("finished")
    out = err.getvalue()
    if tty:
        assert "\r" in out and "work 2/4" not in out and "finished\n" in out
    else:
        assert out == "work 1/4\nwork 2/4\nwork 3/4\nwork 4/4\nfinished\n"


def test_quiet_also_hides_the_bar(monkeypatch, package_logger):
    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    setup_logging(logging.WARNING)
    log = logging.getLogger("because_train.test")
    with Progress(log, "work", 2) as meter:
        meter.update(2)
        meter.line("work 2/2")
    log.warning("careful")
    assert err.getvalue() == "careful\n"

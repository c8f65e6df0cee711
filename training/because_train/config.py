"""One typed configuration for every stage, read from a TOML file; unknown keys are errors."""

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from because_train.provenance import REPO_ROOT

# The label set of the embedded models, and the default of `labels.names`.
EMOTIONS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")


@dataclass
class LabelsConfig:
    """The classes a model chooses among; validated at load (`check_labels`)."""

    names: list[str] = field(default_factory=lambda: list(EMOTIONS))  # order = the order of scores
    # How each label is written in the reasoning and after the marker (the package's label_texts,
    # with a leading space); empty: the names.
    texts: list[str] = field(default_factory=list)
    none: str = ""  # the label that means "none of the others" (e.g. "neutral"); "": there is none

    @property
    def written(self) -> list[str]:
        """How each label is written in the reasoning, in the order of `names`."""
        return list(self.texts or self.names)

    def index(self, name: str) -> int:
        """The position of a label `name` (case-insensitive, as data files spell it); ValueError if none."""
        lowered = [n.lower() for n in self.names]
        if name.lower() not in lowered:
            raise ValueError(f"{name!r} is not one of labels.names ({', '.join(self.names)})")
        return lowered.index(name.lower())


@dataclass
class SourceConfig:
    """One source of labelled rows (a register: tweets, Reddit comments, film dialogue...)."""

    name: str = "data"
    train: str = ""  # a file, or hub:<name>
    validation: str = ""  # a file; empty: `validation_share` of `train` is held out (seeded)
    validation_share: float = 0.15
    weight: float = 1.0  # times each training row is drawn per epoch (fractions sampled, seeded)
    # A row without `label` but with `emotions` (fine-grained names) takes the label all of its
    # emotions map to; rows with an emotion outside the mapping, or mapping to two labels, are left out.
    mapping: dict[str, str] = field(default_factory=dict)
    limit: int = 0  # first N training rows only (0: all); for smoke runs


@dataclass
class DataConfig:
    # Single-source shorthand, used when `sources` is empty.
    train: str = "../shared/data/emotion/train.jsonl"  # a file, or hub:<name>
    validation: str = "../shared/data/emotion/validation.jsonl"
    limit: int = 0  # first N training rows only (0: all); for smoke runs
    sources: list[SourceConfig] = field(default_factory=list)

    def all_sources(self) -> list[SourceConfig]:
        if self.sources:
            return self.sources
        return [SourceConfig(name="data", train=self.train, validation=self.validation, limit=self.limit)]


@dataclass
class EvidenceConfig:
    folds: int = 5  # cross-fitting: a row's rationale comes from a teacher that never saw it
    max_phrases: int = 3
    contrary_margin: float = 0.5  # how strong a cue for another label must be to be mentioned
    # gold: quote the evidence for the gold label, then name it; lead: name it, then quote; survey:
    # quote the strongest cues for any label, each tagged, then conclude (rgen/evidence.py)
    style: str = "gold"
    # For a row of `labels.none`: why it carries none of the other labels, in place of quoted cues; each
    # style frames it with the label ("neutral, because <this>." in lead style).
    none_reasoning: str = "no phrase in it points to one of the others"


@dataclass
class LlmConfig:
    base: str = "meta-llama/Llama-3.2-1B-Instruct"  # or scratch:<size> for a tiny random model
    data: str = "hub:syvai/reasoning-gen"  # or a JSONL of {question, answer, reasoning}
    limit: int = 0
    epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-4
    lora_r: int = 16
    max_new_tokens: int = 64
    device: str = "auto"


@dataclass
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 60.0
    max_tokens: int = 96


@dataclass
class RgenConfig:
    backend: str = "evidence"  # evidence | llm | openai
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)


@dataclass
class ModelConfig:
    base: str = "scratch:tiny"  # scratch:<size> or a hub model name (trained with LoRA)
    normalize: str = "lower-alnum-v1"  # the input rule (normalize.py); natural-v1 for natural text
    # Where a qra package's label scores are read (decode.py): "marker", or "first_label_token", the
    # reasoning's first label word, whose distribution still holds the model's doubt.
    label_scores_at: str = "marker"
    vocab_size: int = 4096
    max_input_tokens: int = 128
    max_reasoning_tokens: int = 64
    lora_r: int = 16


SELECTION_METRICS = ("accuracy", "macro_f1")


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 200
    weight_decay: float = 0.05
    text_loss_weight: float = 0.1  # next-token loss on the input text: a small language-model aux
    label_loss_weight: float = 1.0
    reasoning_loss_weight: float = 1.0  # each reasoning token, the marker and eos
    patience: int = 2  # epochs without validation gain before stopping
    # the per-source metric whose mean selects the epoch: "accuracy", or "macro_f1" where one class
    # dominates a source (neutral is 72% of GoEmotions' seven-label rows) and accuracy rewards saying it
    selection: str = "accuracy"
    # 0: off; else evaluate, select and ship an exponential moving average of the weights
    ema_decay: float = 0.0
    eval_limit: int = 0  # validation rows used for early stopping (0: all)
    device: str = "auto"
    threads: int = 0  # torch threads (0: torch's default)


@dataclass
class ExportConfig:
    opset: int = 17
    # The sources the calibration temperature is fitted on (empty: every source); ECE is reported for all.
    calibrate_on: list[str] = field(default_factory=list)


@dataclass
class PriorConfig:
    """The lexical prior (prior.py): TF-IDF + logistic regression fused into the label logits."""

    enabled: bool = False  # export fits one into each package (the `prior` stage adds one in place)
    c: float = 10.0  # logistic regression's inverse regularisation
    min_df: int = 2  # n-grams in fewer training texts are left out
    max_terms: int = 14000  # the most n-grams kept (the weightiest; 0: all): prior.json's size
    # One prior per register (source) and a gate between them, and a temperature per register
    # (prior.py fit_register_prior, calibrate.py); max_terms then applies to the gate and each expert.
    registers: bool = False
    # What a registers prior makes of a label a source has no rows of (prior.py MISSING): "zero", the
    # source says it never happens there; "abstain", the source has no say on it (its rows were never
    # rated for it: tweets and dialogue for neutral), the other sources' mixture decides.
    missing: str = "zero"


@dataclass
class Config:
    name: str = "emotion-tiny"
    run_dir: str = "training/runs/emotion-tiny"
    # Where packages and the report go; "{run_dir}" stands for run_dir, so that a run never overwrites
    # the project's own models/ and docs/ unless its config names them.
    models_dir: str = "{run_dir}/models"
    report_dir: str = "{run_dir}/report"
    card_notes: str = ""  # a markdown file appended to each model card as "What was tried"
    seed: int = 1234
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rgen: RgenConfig = field(default_factory=RgenConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)

    def path(self, p: str) -> Path:
        """Paths in a config are relative to the repository root, whatever the working directory."""
        if p.startswith("hub:"):
            return Path(p)
        q = Path(p)
        return q if q.is_absolute() else (REPO_ROOT / q).resolve()

    @property
    def run(self) -> Path:
        return self.path(self.run_dir)

    @property
    def models(self) -> Path:
        """The folder the packages are written into (`models_dir`)."""
        return self.path(self.models_dir.replace("{run_dir}", self.run_dir))

    @property
    def reports(self) -> Path:
        """The folder report.md and report.png are written into (`report_dir`)."""
        return self.path(self.report_dir.replace("{run_dir}", self.run_dir))


LIST_ITEMS: dict[str, type] = {"sources": SourceConfig}

# Keys that were removed, and why: a config that still sets one stops with the reason.
REMOVED: dict[str, str] = {
    "config.export.quantize": "int8 is a graph every package ships (model.fused-int8.onnx, written by export); serve it with --graph fused-int8",
}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if f"{where}.{key}" in REMOVED:
            raise ValueError(f"{where}.{key}: {REMOVED[f'{where}.{key}']}; remove the key")
        if key not in known:
            raise ValueError(f"{where}: unknown key '{key}'; known: {', '.join(known)}")
        default = getattr(cls(), key)
        if key in LIST_ITEMS:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ValueError(f"{where}.{key}: expected an array of tables ([[{where}.{key}]])")
            kwargs[key] = [_build(LIST_ITEMS[key], v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
        elif dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key}: expected a table")
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        else:
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(default):
                raise ValueError(
                    f"{where}.{key}: expected {type(default).__name__}, got {type(value).__name__} ({value!r})"
                )
            kwargs[key] = value
    return cls(**kwargs)


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    values: dict[str, Any] = {}
    if path:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    config: Config = _build(Config, values, "config")
    check_labels(config.labels)
    if config.labels.none:
        check_none_reasoning(config.rgen.evidence.none_reasoning)
    sources = [src.name for src in config.data.all_sources()]
    unknown = [n for n in config.export.calibrate_on if n not in sources]
    if unknown:
        raise ValueError(
            f"config.export.calibrate_on: {', '.join(unknown)} is not a data source; known: {', '.join(sources)}"
        )
    if config.prior.registers and len(sources) < 2:
        raise ValueError(
            f"config.prior.registers: needs at least 2 data sources (a gate between them and one prior each); "
            f"this config has {len(sources)} ({', '.join(sources)})"
        )
    if config.prior.missing not in ("zero", "abstain"):
        raise ValueError(f"config.prior.missing: {config.prior.missing!r}; expected one of zero, abstain")
    if config.train.selection not in SELECTION_METRICS:
        raise ValueError(
            f"config.train.selection: {config.train.selection!r}; expected one of {', '.join(SELECTION_METRICS)}"
        )
    return config


def check_labels(labels: LabelsConfig) -> None:
    """ValueError naming the key, what is wrong and what is allowed, for a label set no stage can use."""
    names, texts = labels.names, labels.texts
    if len(names) < 2:
        raise ValueError(f"config.labels.names: {len(names)} label(s) given; a classifier needs at least 2")
    _check_strings("config.labels.names", names)
    for n in names:
        if n.lstrip("-").isdigit():
            # Data files may give a label as its index: a number could never be read as a name.
            raise ValueError(f"config.labels.names: {n!r} is a number; a name must contain a letter")
    _check_unique("config.labels.names", [n.lower() for n in names], names, "case-insensitively")
    if texts:
        if len(texts) != len(names):
            raise ValueError(
                f"config.labels.texts: {len(texts)} given for {len(names)} names; give one text per name "
                "(in the order of names), or none ([]) to write the names"
            )
        _check_strings("config.labels.texts", texts)
        _check_unique("config.labels.texts", texts, texts, "")
    for key, values in (("names", names), ("texts", texts)):
        for v in values:
            if '"' in v:
                # In the reasoning a double quote opens a quotation of the input (grounded quoting).
                raise ValueError(f'config.labels.{key}: {v!r} contains ", which in a reasoning opens a quote')
    if labels.none and labels.none not in names:
        raise ValueError(
            f"config.labels.none: {labels.none!r} is not one of labels.names ({', '.join(names)}); "
            'name one of them, or "" for no such label'
        )


def _check_strings(key: str, values: list[str]) -> None:
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"{key}: expected strings, got {type(v).__name__} ({v!r})")
        if not v.strip():
            raise ValueError(f"{key}: an empty label ({v!r}); every label needs a non-empty name")
        if v != v.strip():
            raise ValueError(f"{key}: {v!r} begins or ends with white space; write it without")


def _check_unique(key: str, folded: list[str], given: list[str], how: str) -> None:
    seen: dict[str, str] = {}
    for f, g in zip(folded, given, strict=True):
        if f in seen:
            raise ValueError(
                f"{key}: {seen[f]!r} and {g!r} are the same label{' ' + how if how else ''}; each must differ"
            )
        seen[f] = g


def check_none_reasoning(sentence: str) -> None:
    if not sentence.strip():
        raise ValueError(
            "config.rgen.evidence.none_reasoning: empty; labels.none needs a sentence saying why"
        )
    if '"' in sentence:
        raise ValueError(
            f'config.rgen.evidence.none_reasoning: {sentence!r} contains ", which in a reasoning opens a quote '
            "of the input; write it without"
        )


def as_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_keys(key: str) -> list[tuple[str, Any]]:
    """The keys a dotted `key` stands for, each with its default: a value gives itself, a table all
    of its keys (`train` -> `train.epochs`, ...), and an array of tables its item's keys
    (`data.sources` -> `data.sources[].name`, ...). KeyError when Config has no such key."""
    node: Any = Config()
    path = ""
    for part in key.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            raise KeyError(key)
        path = f"{path}.{part}" if path else part
        if part in LIST_ITEMS:
            node, path = LIST_ITEMS[part](), path + "[]"
        else:
            node = getattr(node, part)
    return _leaves(path, node)


def _leaves(path: str, node: Any) -> list[tuple[str, Any]]:
    if not dataclasses.is_dataclass(node):
        return [(path, node)]
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(node):
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in LIST_ITEMS:
            out += _leaves(sub + "[]", LIST_ITEMS[f.name]())
        else:
            out += _leaves(sub, getattr(node, f.name))
    return out

"""Reading a model package (docs/model-package.md): manifest, hash check, tokenizer, the ONNX session
of one of its graphs (`graphs`, `default_graph`)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from because_train.normalize import EmojiTable
from because_train.prior import LexicalPrior
from because_train.provenance import sha256_file
from because_train.runtime import gqa_forward, onnx_forward, onnx_session
from because_train.sequences import PromptSpec


class PackageError(ValueError):
    pass


LAYOUTS = ("optimum", "gqa")


def package_graphs(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The graphs a package offers: its `graphs`, or (a package exported before them) one graph,
    `fp32` = `onnx.file`, optimum layout."""
    return manifest.get("graphs") or {
        "fp32": {"file": manifest["onnx"]["file"], "layout": "optimum", "dtype": "float32"}
    }


def default_graph(manifest: dict[str, Any]) -> str:
    """The graph run when none is asked for: `default_graph`, else `fp32` (as the service picks)."""
    return str(manifest.get("default_graph") or "fp32")


def select_graph(path: Path, manifest: dict[str, Any], graph: str | None) -> tuple[str, dict[str, str]]:
    """(name, entry) of the graph `graph` (None: the default); a clear error naming the graphs the
    package has when it lacks it."""
    graphs = package_graphs(manifest)
    name = graph or default_graph(manifest)
    if name not in graphs:
        raise PackageError(f"{path}: no graph {name!r}; the package has {', '.join(graphs)}")
    entry = graphs[name]
    if entry.get("layout") not in LAYOUTS:
        raise PackageError(
            f"{path}: graph {name!r} has layout {entry.get('layout')!r}; expected one of {LAYOUTS}"
        )
    return name, entry


@dataclass
class Package:
    path: Path
    manifest: dict[str, Any]
    spec: PromptSpec
    session: Any
    graph: str = "fp32"  # the name in `graphs` the session runs
    layout: str = "optimum"  # its I/O layout (docs/model-package.md)
    prior: LexicalPrior | None = None  # the lexical prior fused into the label logits (prior.py)

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def scores_at_first_label(self) -> bool:
        """Whether a `qra` package scores its labels where the reasoning first names one."""
        return self.manifest.get("label_scores_at", "marker") == "first_label_token"

    @property
    def temperature(self) -> float:
        """The calibration temperature the label scores are divided by (1: uncalibrated). A register
        temperature has one per text instead (`fusion`)."""
        cal = self.manifest.get("calibration") or {}
        if cal.get("method") == "register-temperature":
            raise ValueError("calibration: a register temperature is one per text (Package.fusion), not one")
        return float(cal.get("temperature", 1.0))

    def drop_prior(self) -> None:
        """Decode without the lexical prior (`evaluate --no-prior`). A temperature per register needs
        the prior's gate, so the one temperature calibrate fitted beside them takes its place."""
        self.prior = None
        cal = self.manifest.get("calibration") or {}
        if cal.get("method") == "register-temperature":
            self.manifest = {
                **self.manifest,
                "calibration": {
                    "method": "temperature",
                    "temperature": float(cal.get("one_temperature", 1.0)),
                },
            }

    def fusion(
        self, sources: list[bytes]
    ) -> tuple[list[np.ndarray] | None, list[list[float] | None], list[float]]:
        """Per source (a sequence's input bytes): what the prior adds to its label logits (None: no
        prior), its register probabilities (None without a registers prior) and the temperature its
        label scores are divided by (calibrate.temperature_of); the gate computed once for all three."""
        from because_train.calibrate import temperature_of

        prior = self.prior
        if prior is None or prior.registers is None:
            gates: list[list[float] | None] = [None] * len(sources)
        else:
            gates = [prior.gate_probs(src.decode("utf-8", errors="replace")) for src in sources]
        priors = [prior.for_source(src, g) for src, g in zip(sources, gates, strict=True)] if prior else None
        cal = self.manifest.get("calibration")
        registers = prior.registers if prior else None
        return priors, gates, [temperature_of(cal, registers, g) for g in gates]

    def forward(self, capacity: int | None = None):  # type: ignore[no-untyped-def]
        """A `decode.Forward` over the package's graph. `capacity` (gqa layout only): KV slots per
        row, at least the longest prompt plus the reasoning budget plus 2; None: enough for any
        prompt the limits allow."""
        o = self.manifest["onnx"]
        if self.layout == "gqa":
            if capacity is None:
                limits = self.manifest["limits"]
                capacity = min(
                    o["max_position_embeddings"],
                    limits["max_input_tokens"] + limits["max_reasoning_tokens"] + 8,
                )
            return gqa_forward(self.session, self.path / "config.json", capacity)
        return onnx_forward(self.session, o["num_layers"], o["num_kv_heads"], o["head_dim"])

    def decode(self, forward: Any, text_ids: list[list[int]]) -> list[Any]:
        """`decode.decode_batch` of the texts `text_ids` as the service decodes them: grounded
        quoting against each text, calibrated label scores, through `forward`."""
        from because_train.decode import decode_batch

        spec = self.spec
        sources = [spec.source_bytes(ids) for ids in text_ids]
        priors, _, temperatures = self.fusion(sources)
        return decode_batch(
            forward,
            [spec.prompt_ids(ids) for ids in text_ids],
            kind=self.kind,
            marker=spec.specials["marker"],
            banned=spec.banned_in_reasoning,
            label_ids=[ids[0] for ids in spec.label_ids],
            max_reasoning=self.manifest["limits"]["max_reasoning_tokens"],
            pad=spec.specials["pad"],
            sources=sources,
            token_bytes=spec.token_bytes,
            temperature=temperatures,
            scores_at_first_label=self.scores_at_first_label,
            priors=priors,
        )


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    for name, digest in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise PackageError(f"{path}: missing file {name} listed in manifest.json")
        if sha256_file(f) != digest:
            raise PackageError(
                f"{path}: {name} does not match its sha256 in manifest.json (changed or truncated)"
            )


def load_package(path: str | Path, threads: int = 0, graph: str | None = None) -> Package:
    """The package at `path` (every file checked against its sha256), running graph `graph`
    (None: its `default_graph`, else fp32)."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise PackageError(f"{path}: no manifest.json; is this a model package folder?") from None
    verify_files(path, manifest)
    p = manifest["prompt"]
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    emoji = EmojiTable.load(path / "emoji.json") if (path / "emoji.json").exists() else None
    if p["normalize"] == "natural-v1" and emoji is None:
        raise PackageError(f"{path}: normalize natural-v1 needs emoji.json in the package")
    spec = PromptSpec(
        tokenizer=tok,
        normalize=p["normalize"],
        template=p["template"],
        marker=p["marker"],
        eos=p["eos"],
        labels=manifest["labels"],
        label_texts=manifest["label_texts"],
        bos=tok.id_to_token(manifest["special_tokens"]["bos"]),
        pad=tok.id_to_token(manifest["special_tokens"]["pad"]),
        emoji=emoji,
    )
    name, entry = select_graph(path, manifest, graph)
    if entry["file"] not in manifest["files"]:
        raise PackageError(f"{path}: graph {name!r}: its file {entry['file']} is not listed in files")
    prior_entry = manifest.get("prior")
    if prior_entry and prior_entry.get("file") not in manifest["files"]:
        raise PackageError(f"{path}: prior: its file {prior_entry.get('file')} is not listed in files")
    try:
        prior = LexicalPrior.load(path, manifest)
    except (ValueError, KeyError) as e:
        raise PackageError(f"{path}: {e}") from None
    session = onnx_session(path / entry["file"], threads)
    return Package(path, manifest, spec, session, name, entry["layout"], prior)

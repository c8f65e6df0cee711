"""Reading a model package (docs/model-package.md): manifest, hash check, tokenizer, ONNX session."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from because_train.normalize import EmojiTable
from because_train.provenance import sha256_file
from because_train.runtime import onnx_forward, onnx_session
from because_train.sequences import PromptSpec


class PackageError(ValueError):
    pass


@dataclass
class Package:
    path: Path
    manifest: dict[str, Any]
    spec: PromptSpec
    session: Any

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
        """The calibration temperature the label scores are divided by (1: uncalibrated)."""
        cal = self.manifest.get("calibration") or {}
        return float(cal.get("temperature", 1.0))

    def forward(self):  # type: ignore[no-untyped-def]
        o = self.manifest["onnx"]
        return onnx_forward(self.session, o["num_layers"], o["num_kv_heads"], o["head_dim"])


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    for name, digest in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise PackageError(f"{path}: missing file {name} listed in manifest.json")
        if sha256_file(f) != digest:
            raise PackageError(
                f"{path}: {name} does not match its sha256 in manifest.json (changed or truncated)"
            )


def load_package(path: str | Path, threads: int = 0) -> Package:
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
    session = onnx_session(path / manifest["onnx"]["file"], threads)
    return Package(path, manifest, spec, session)

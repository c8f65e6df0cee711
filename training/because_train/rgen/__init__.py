"""Stage 1: reasoning generators. Each backend writes a reasoning R for a (text Q, label A) pair."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RgenItem:
    key: str  # stable id of the row (split and index), for resumable output
    text: str  # the normalised text the classifier will see
    label: str  # the gold label, as the reasoning writes it (`labels.texts`; by default its name)


class ReasoningGenerator(Protocol):
    name: str

    def generate(self, items: Sequence[RgenItem]) -> list[str]:
        """One reasoning per item, in order. Deterministic for a seed where the backend allows."""
        ...

"""Prompt building: the id sequences the model is trained on and served with (docs/model-package.md).

Sequences are concatenations of id lists, never re-tokenised as one string, so training, evaluation
and the service see exactly the same ids for the same text.
"""

from dataclasses import dataclass, field

from tokenizers import Tokenizer

from because_train.normalize import EmojiTable, normalize
from because_train.tokenizer import encode_plain, token_bytes

# Token roles, for per-token loss weights.
PROMPT, TEXT, REASONING, LABEL = 0, 1, 2, 3


@dataclass
class PromptSpec:
    tokenizer: Tokenizer
    normalize: str
    template: str  # "<prefix>{text}<suffix>"
    marker: str
    eos: str
    labels: list[str]
    label_texts: list[str]
    bos: str = "<|bos|>"
    pad: str = "<|pad|>"
    emoji: EmojiTable | None = None  # natural-v1's table (the package's emoji.json); None: the bundled one
    specials: dict[str, int] = field(init=False)
    prefix: list[int] = field(init=False)
    suffix: list[int] = field(init=False)
    label_ids: list[list[int]] = field(init=False)

    def __post_init__(self) -> None:
        before, after = self.template.split("{text}")
        self.prefix = self.tokenizer.encode(before, add_special_tokens=False).ids
        self.suffix = self.tokenizer.encode(after, add_special_tokens=False).ids
        added = {t.content: i for i, t in self.tokenizer.get_added_tokens_decoder().items() if t.special}
        self.specials = {
            "bos": added.get(self.bos, -1),
            "eos": self.tokenizer.token_to_id(self.eos),
            "pad": added.get(self.pad, -1),
            "sep": added.get("<|sep|>", -1),
            "marker": self.tokenizer.token_to_id(self.marker),
        }
        self.label_ids = [self.tokenizer.encode(t, add_special_tokens=False).ids for t in self.label_texts]
        multi = [t for t, ids in zip(self.label_texts, self.label_ids, strict=True) if len(ids) != 1]
        if multi:
            raise ValueError(f"labels must be one token each (v1 of the package contract); not: {multi}")

    @property
    def token_bytes(self) -> list[bytes]:
        if not hasattr(self, "_token_bytes"):
            self._token_bytes = token_bytes(self.tokenizer)
        return self._token_bytes

    def source_bytes(self, text_ids: list[int]) -> bytes:
        """The input as the model reads it (normalised, truncated): what a quote must come from."""
        tb = self.token_bytes
        return b"".join(tb[i] for i in text_ids)

    @property
    def special_strings(self) -> list[str]:
        return [t.content for t in self.tokenizer.get_added_tokens_decoder().values()]

    @property
    def banned_in_reasoning(self) -> list[int]:
        return sorted(i for k, i in self.specials.items() if k != "marker" and i >= 0)

    def text_ids(self, text: str) -> list[int]:
        return encode_plain(self.tokenizer, normalize(text, self.normalize, self.emoji), self.special_strings)

    def prompt_ids(self, text_ids: list[int]) -> list[int]:
        return self.prefix + text_ids + self.suffix

    def reasoning_ids(self, reasoning: str) -> list[int]:
        return encode_plain(self.tokenizer, " " + reasoning, self.special_strings)

    def training_sequence(
        self, text_ids: list[int], reasoning_ids: list[int] | None, label: int
    ) -> tuple[list[int], list[int]]:
        """(ids, role of each id) for `[prompt] reasoning? [marker] label [eos]`."""
        reasoning = reasoning_ids or []
        ids = self.prefix + text_ids + self.suffix + reasoning + [self.specials["marker"]]
        roles = [PROMPT] * len(self.prefix) + [TEXT] * len(text_ids) + [PROMPT] * len(self.suffix)
        # Where the reasoning last names the gold emotion it takes its decision: that token weighs
        # as much as the label itself. The marker is the reasoning's last token.
        label_token = self.label_ids[label][0]
        named = len(reasoning) - 1 - reasoning[::-1].index(label_token) if label_token in reasoning else -1
        roles += [LABEL if k == named else REASONING for k in range(len(reasoning))] + [REASONING]
        ids += self.label_ids[label] + [self.specials["eos"]]
        roles += [LABEL] * len(self.label_ids[label]) + [REASONING]
        return ids, roles

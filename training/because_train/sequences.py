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
        if len(self.label_texts) != len(self.labels):
            raise ValueError(f"{len(self.labels)} labels but {len(self.label_texts)} label texts")
        self.label_ids = [encode_plain(self.tokenizer, t, self.special_strings) for t in self.label_texts]
        check_label_ids(self.label_texts, self.label_ids)

    @property
    def label_first_ids(self) -> list[int]:
        """The id each label's text begins with: where its score is read (docs/model-package.md)."""
        return [ids[0] for ids in self.label_ids]

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

    def label_index(self, name: str) -> int:
        """The position of label `name` in the package's label set; ValueError naming the set if none."""
        if name not in self.labels:
            raise ValueError(f"label {name!r} is not one of the labels ({', '.join(self.labels)})")
        return self.labels.index(name)

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


def check_label_ids(texts: list[str], ids: list[list[int]]) -> None:
    """Labels are scored at their first token, so every label text must begin with a token of its own;
    ValueError naming the texts that do not."""
    for text, t in zip(texts, ids, strict=True):
        if not t:
            raise ValueError(f"label text {text!r} encodes to no token")
    first: dict[int, str] = {}
    for text, t in zip(texts, ids, strict=True):
        if t[0] in first:
            raise ValueError(
                f"label texts {first[t[0]]!r} and {text!r} begin with the same token ({t[0]}); labels are "
                "scored at their first token, so each must begin with a different one: choose other "
                "labels.texts (e.g. different first words)"
            )
        first[t[0]] = text

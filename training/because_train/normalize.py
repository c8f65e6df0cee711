"""Text normalisation shared by training, evaluation and the service (docs/model-package.md).

Two rules. `lower-alnum-v1` (the first packages): lower-case words and digits only. `natural-v1`:
the same words, plus what carries emotion in text people write: `!` and `?`, emoji and emoticons
(as their names, read from the package's `emoji.json`, so that a smile is a word the model knows),
`[NAME]`-style masks and URLs as placeholder words, and elongated words shortened ("soooo" -> "soo").
Double quotation marks never survive: the reasoning quotes with them, so a quote always delimits a
span of this normalised text. `src/model/normalize.ts` is the same code in TypeScript, held to it by
`tests/fixtures/normalize.json`.
"""

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

EMOJI_TABLE = Path(__file__).parent / "assets" / "emoji.json"

_APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")
_NOT_ALNUM = re.compile("[^a-z0-9]+")
_URL = re.compile(r"(?:https?://|www\.)[^ \t\n\r\f\v]+", re.IGNORECASE)
_MASK = re.compile(r"\[(?:NAME|PERSON|RELIGION)\]")
_ELONGATED = re.compile(r"([a-z!?])\1{2,}")
_NOT_KEPT = re.compile("[^a-z0-9!?]+")
_PUNCT_RUN = re.compile("[!?]+")
_SPACES = re.compile(" +")
# Format characters that only shape an emoji: variation selectors, the zero-width joiner, skin tones
# and flag letters. Dropped, so "👍🏽" reads as "👍".
_EMOJI_SHAPING = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff\U0001f1e6-\U0001f1ff]")


def lower_alnum_v1(text: str) -> str:
    # Apostrophes go first: NFKD would turn U+00B4 into a space plus a combining mark.
    text = _APOSTROPHES.sub("", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    return _NOT_ALNUM.sub(" ", text.lower()).strip()


class EmojiTable:
    """Emoji (one code point each) and ASCII emoticons, each with the words it becomes."""

    def __init__(self, doc: Mapping[str, Mapping[str, str]]) -> None:
        self.emoji = dict(doc["emoji"])
        self.emoticons = dict(doc["emoticons"])
        # Longest first, so that ":'(" wins over "(" patterns sharing a prefix; an emoticon counts only
        # between whitespace (or the ends), so "Note:Dan" keeps its letters.
        alts = "|".join(re.escape(e) for e in sorted(self.emoticons, key=lambda e: (-len(e), e)))
        self.emoticon_re = re.compile(f"(?<![^ \\t\\n\\r\\f\\v])(?:{alts})(?![^ \\t\\n\\r\\f\\v])")

    @classmethod
    def load(cls, path: Path | str) -> "EmojiTable":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))


@cache
def default_table() -> EmojiTable:
    return EmojiTable.load(EMOJI_TABLE)


def natural_v1(text: str, table: EmojiTable | None = None) -> str:
    t = table or default_table()
    text = _URL.sub(" url ", text)
    text = _MASK.sub(" name ", text)
    text = t.emoticon_re.sub(lambda m: f" {t.emoticons[m.group(0)]} ", text)
    text = _EMOJI_SHAPING.sub("", text)
    text = "".join(f" {t.emoji[c]} " if c in t.emoji else c for c in text)
    text = _APOSTROPHES.sub("", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    text = _ELONGATED.sub(r"\1\1", text.lower())
    text = _NOT_KEPT.sub(" ", text)
    text = _PUNCT_RUN.sub(lambda m: f" {m.group(0)} ", text)
    return _SPACES.sub(" ", text).strip()


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "lower-alnum-v1": lower_alnum_v1,
    "natural-v1": natural_v1,
    "none": lambda text: text,
}


def normalize(text: str, rule: str, table: EmojiTable | None = None) -> str:
    if rule == "natural-v1":
        return natural_v1(text, table)
    try:
        return NORMALIZERS[rule](text)
    except KeyError:
        raise ValueError(f"unknown normalisation {rule!r}; known: {sorted(NORMALIZERS)}") from None

"""Text normalisation shared by training, evaluation and the service (docs/model-package.md)."""

import re
import unicodedata

_APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")
_NOT_ALNUM = re.compile("[^a-z0-9]+")


def lower_alnum_v1(text: str) -> str:
    # Apostrophes go first: NFKD would turn U+00B4 into a space plus a combining mark.
    text = _APOSTROPHES.sub("", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    return _NOT_ALNUM.sub(" ", text.lower()).strip()


NORMALIZERS = {"lower-alnum-v1": lower_alnum_v1, "none": lambda text: text}


def normalize(text: str, rule: str) -> str:
    try:
        return NORMALIZERS[rule](text)
    except KeyError:
        raise ValueError(f"unknown normalisation {rule!r}; known: {sorted(NORMALIZERS)}") from None

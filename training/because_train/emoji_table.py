"""Writes `assets/emoji.json`, the table `natural-v1` reads emoji and emoticons from.

Emoji names are Unicode's character names (Python's `unicodedata`, lower-cased): "smiling face with
smiling eyes" is made of words the model can learn from text. Emoticons map onto the name of the
emoji they draw. Run `python -m because_train.emoji_table` to regenerate; the file is committed and
copied into every model package so that training and the service read one table.
"""

import json
import logging
import sys
import unicodedata

from because_train.console import setup_logging
from because_train.normalize import EMOJI_TABLE

log = logging.getLogger("because_train.emoji_table")  # not __name__: run as __main__

RANGES = ((0x2300, 0x23FF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x1F000, 0x1FAFF))
SKIP = (range(0x1F1E6, 0x1F200), range(0x1F3FB, 0x1F400))  # flag letters, skin tones

EMOTICONS = {
    "slightly smiling face": (":)", ":-)", ":]", "=)", "(:", "^_^", "^^"),
    "slightly frowning face": (":(", ":-(", ":[", "=(", "):"),
    "crying face": (":'(", ":,(", "T_T", ";_;"),
    "grinning face": (":D", ":-D", "=D", "xD", "XD"),
    "winking face": (";)", ";-)", ";D"),
    "face with stuck-out tongue": (":P", ":p", ":-P", ":-p", "xP"),
    "confused face": (":/", ":-/", ":\\", ":S", ":s"),
    "face with open mouth": (":O", ":o", ":-O", ":-o"),
    "neutral face": (":|", ":-|"),
    "expressionless face": ("-_-",),
    "heavy black heart": ("<3",),
    "broken heart": ("</3",),
    "pouting face": (">:(", ">:-("),
}


def build() -> dict[str, object]:
    emoji: dict[str, str] = {}
    for start, end in RANGES:
        for cp in range(start, end + 1):
            ch = chr(cp)
            if unicodedata.category(ch) != "So" or any(cp in r for r in SKIP):
                continue
            name = unicodedata.name(ch, "")
            if name:
                emoji[ch] = name.lower()
    emoticons = {e: name for name, faces in EMOTICONS.items() for e in faces}
    return {
        "version": 1,
        "source": f"Unicode {unicodedata.unidata_version} character names (emoji); because's emoticon list",
        "emoticons": emoticons,
        "emoji": emoji,
    }


def main() -> int:
    setup_logging()
    EMOJI_TABLE.parent.mkdir(parents=True, exist_ok=True)
    EMOJI_TABLE.write_text(
        json.dumps(build(), ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8"
    )
    log.info(f"wrote {EMOJI_TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

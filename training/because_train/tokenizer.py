"""The classifier's tokenizer (a byte-level BPE trained for a scratch model, or a hub model's own
with the markers added), and how text becomes ids without special tokens."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD, SEP, MARKER = "<|bos|>", "<|eos|>", "<|pad|>", "<|sep|>", "<|label|>"
SPECIALS = [BOS, EOS, PAD, SEP, MARKER]  # ids 0-4 in a scratch tokenizer


def train_bpe(corpus: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


def save_hf_files(tok: Tokenizer, out: Path, model_max_length: int) -> None:
    """tokenizer.json and tokenizer_config.json, as transformers and transformers.js read them."""
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": [SEP, MARKER],
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_specials(out, BOS, EOS, PAD, [])


def save_specials(out: Path, bos: str, eos: str, pad: str, added: list[int]) -> None:
    """specials.json: the strings the prompt uses for bos, eos and pad, and the ids this project added."""
    doc = {"bos": bos, "eos": eos, "pad": pad, "added_ids": added}
    (out / "specials.json").write_text(json.dumps(doc, indent=2) + "\n")


def load_specials(tokenizer_dir: Path) -> dict[str, Any]:
    path = tokenizer_dir / "specials.json"
    if not path.exists():  # runs made before hub bases existed: a scratch tokenizer
        return {"bos": BOS, "eos": EOS, "pad": PAD, "added_ids": []}
    return dict(json.loads(path.read_text()))


def prepare_hub_tokenizer(base: str, out: Path, model_max_length: int) -> None:
    """The hub model's own tokenizer, with `<|sep|>` and `<|label|>` added as special tokens (and
    `<|bos|>`, `<|eos|>`, `<|pad|>` where the model has none), saved in Hugging Face format."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    spec = json.loads(tok.backend_tokenizer.to_str()) if tok.is_fast else {}
    model_type = (spec.get("model") or {}).get("type")
    decoder = (spec.get("decoder") or {}).get("type")
    if model_type != "BPE" or decoder != "ByteLevel":
        raise SystemExit(
            f"model.base = {base!r}: its tokenizer is {model_type or 'not a fast tokenizer'} with a "
            f"{decoder} decoder; the service streams byte-level BPE only (GPT-2, Llama 3, Qwen 2, SmolLM style)"
        )
    before = len(tok)
    missing = {
        name: text
        for name, text in (("bos_token", BOS), ("eos_token", EOS), ("pad_token", PAD))
        if getattr(tok, name) is None
    }
    if missing:
        tok.add_special_tokens(missing)
    tok.add_tokens([AddedToken(SEP, special=True), AddedToken(MARKER, special=True)], special_tokens=True)
    tok.model_max_length = model_max_length
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    added = sorted(set(range(before, len(tok))) | {tok.convert_tokens_to_ids(t) for t in missing.values()})
    save_specials(out, tok.bos_token, tok.eos_token, tok.pad_token, added)


def encode_plain(tok: Tokenizer, text: str, specials: Iterable[str]) -> list[int]:
    """Ids of user text in which special-token strings stay ordinary text.

    The tokenizers library matches added tokens anywhere in its input; a special string found in
    the text is split after its first character, so that no piece of it is an added token.
    """
    pieces = [text]
    for special in specials:
        split: list[str] = []
        for piece in pieces:
            parts = piece.split(special)
            for k, part in enumerate(parts):
                if k:
                    split += [special[:1], special[1:]]
                split.append(part)
        pieces = split
    ids: list[int] = []
    for piece in pieces:
        if piece:
            ids += tok.encode(piece, add_special_tokens=False).ids
    return ids


def _byte_decoder() -> dict[str, int]:
    """GPT-2's map from the printable characters that spell byte-level tokens back to bytes."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + n)
            n += 1
    return {c: b for b, c in chars.items()}


def token_bytes(tok: Tokenizer) -> list[bytes]:
    """The bytes each id stands for (an added token: its content in UTF-8), as the service's
    detokenizer reads them; grounded quoting compares these with the input's bytes."""
    decoder = _byte_decoder()
    added = {i: t.content for i, t in tok.get_added_tokens_decoder().items()}
    out: list[bytes] = []
    for i in range(tok.get_vocab_size()):
        if i in added:
            out.append(added[i].encode())
            continue
        piece = tok.id_to_token(i) or ""
        if all(c in decoder for c in piece):
            out.append(bytes(decoder[c] for c in piece))
        else:
            out.append(piece.encode())
    return out

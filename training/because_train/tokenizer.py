"""The byte-level BPE tokenizer of a scratch model, and how text becomes ids without special tokens."""

import json
from collections.abc import Iterable
from pathlib import Path

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

"""Building and training models: a Llama trained from scratch, or a hub model adapted with LoRA.

Shared by the classifier (train.py) and the llm R-Gen backend (rgen/llm.py).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class ScratchSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


# Every `scratch:<name>` base, the classifier's (model.base) and the llm R-Gen's (rgen.llm.base).
SCRATCH_SIZES = {
    "micro": ScratchSize(hidden=64, layers=2, heads=2, kv_heads=1, intermediate=192),  # tests, CPU smoke runs
    "tiny": ScratchSize(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768),  # ~4M parameters
    "small": ScratchSize(hidden=384, layers=6, heads=6, kv_heads=2, intermediate=1152),
}


def scratch_size(base: str, setting: str = "model.base") -> ScratchSize | None:
    """The size a `scratch:<name>` base names; None for a hub model. `setting` is its config key."""
    if not base.startswith("scratch:"):
        return None
    name = base.split(":", 1)[1]
    if name not in SCRATCH_SIZES:
        raise ValueError(f"{setting}: unknown scratch size {name!r}; known: {', '.join(SCRATCH_SIZES)}")
    return SCRATCH_SIZES[name]


def build_scratch(
    size: ScratchSize, vocab_size: int, specials: dict[str, int], max_positions: int
) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=specials["bos"],
        eos_token_id=specials["eos"],
        pad_token_id=specials["pad"],
    )
    return LlamaForCausalLM(config)


def build_lora(
    base: str, r: int, dtype: torch.dtype, vocab_size: int = 0, new_token_ids: Sequence[int] | None = None
) -> Any:
    """A hub causal LM with LoRA adapters on every linear layer but the output head.

    The embedding grows to `vocab_size` rows where it has fewer. The rows of `new_token_ids` (the
    tokens the classifier adds: separator, marker) are trained in the input embedding and, where the
    model does not tie them, in the output head: no other row changes.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size)
    tokens: dict[str, list[int]] | None = None
    if new_token_ids is not None:
        names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
        tokens = {names[id(model.get_input_embeddings())]: list(new_token_ids)}
        head = model.get_output_embeddings()
        if head is not None and head.weight is not model.get_input_embeddings().weight:
            tokens[names[id(head)]] = list(new_token_ids)
    lora = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.05,
        target_modules="all-linear",
        trainable_token_indices=tokens,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def cosine_lr(step: int, total: int, lr: float, min_lr: float, warmup: int) -> float:
    """The learning rate at `step` of `total`: 1) linear warmup to `lr` over `warmup` steps,
    2) cosine decay to `min_lr` at `total`, 3) `min_lr` after it."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changes: all of a scratch model, the adapters of a LoRA one."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing = set(trainable_state(model)) - set(state)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or missing:
        raise ValueError(
            f"checkpoint does not fit the model: unexpected {result.unexpected_keys[:3]}, missing {sorted(missing)[:3]}"
        )


def weights_dtype(device: torch.device) -> torch.dtype:
    """bf16 for a hub model on a GPU that has it; float32 everywhere else."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def pick_device(name: str, setting: str = "train.device") -> torch.device:
    """The torch device a `device` setting names; `setting` is its config key, for the messages."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"{setting} must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

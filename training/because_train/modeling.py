"""Building the classifier: a Llama trained from scratch, or a hub model adapted with LoRA."""

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel


@dataclass(frozen=True)
class ScratchSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


SIZES = {
    "micro": ScratchSize(hidden=64, layers=2, heads=2, kv_heads=1, intermediate=192),  # tests
    "tiny": ScratchSize(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768),  # ~4M parameters
    "small": ScratchSize(hidden=384, layers=6, heads=6, kv_heads=2, intermediate=1152),
}


def scratch_size(base: str) -> ScratchSize | None:
    if not base.startswith("scratch:"):
        return None
    name = base.split(":", 1)[1]
    if name not in SIZES:
        raise ValueError(f"unknown scratch size {name!r}; known: {', '.join(SIZES)}")
    return SIZES[name]


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


def build_lora(base: str, vocab_size: int, r: int, dtype: torch.dtype) -> PreTrainedModel:
    """A hub causal LM with LoRA adapters on the attention and MLP projections."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size)  # the added separator and marker tokens
    lora = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        modules_to_save=["embed_tokens", "lm_head"],  # new tokens need trainable rows
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


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

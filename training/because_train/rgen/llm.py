"""The `llm` R-Gen backend: a causal LM fine-tuned on (question, answer) -> reasoning triples.

Stage 1 of arXiv 2507.00214: the paper fine-tunes Llama-3.2-1B-Instruct on syvai/reasoning-gen and
then asks it, for every (text, gold emotion) pair, why that answer fits that question. Here the
base is either a hub model name (trained with LoRA via peft, on CUDA in bf16 where a GPU exists) or
`scratch:<size>` (`micro` or `tiny`, the sizes of modeling.py): a small randomly initialised Llama
with its own byte-level BPE tokenizer trained on the triples, so that the same code runs end to end
on a CPU (`scratch:micro` in seconds).

One prompt format serves training and generation:

    <bos>Question: {question}\nAnswer: {answer}\nReasoning: {reasoning}<eos>

The loss covers the reasoning tokens (and the end of sequence) only. Generation stops at the end of
sequence or at a newline. Work is resumable: a finished model in `work_dir/model` is reused when it
was trained with the same settings and data, and an interrupted run continues from its last checkpoint.
"""

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from because_train.config import LlmConfig
from because_train.console import Progress
from because_train.modeling import (
    ScratchSize,
    build_lora,
    cosine_lr,
    pick_device,
    scratch_size,
    weights_dtype,
)
from because_train.provenance import sha256_file, write_provenance
from because_train.rgen import RgenItem
from because_train.rgen.triples import Triple, load_triples, resolve_source

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the prompt format or the training recipe changes
MAX_PROMPT_TOKENS = 192
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


Example = tuple[
    Sequence[int] | torch.Tensor, int
]  # token ids of prompt + reasoning, where the reasoning starts

# The BPE vocabulary R-Gen trains for each scratch size it takes (modeling.SCRATCH_SIZES).
SCRATCH_VOCAB = {"micro": 1024, "tiny": 4096}


def task_prompt(question: str, answer: str) -> tuple[str, str]:
    """The prompt in two parts, so that a long question can be cut without losing the answer."""
    return f"Question: {question}", f"\nAnswer: {answer}\nReasoning:"


def emotion_question(text: str) -> str:
    return f'What emotion does this text express? "{text}"'


def fallback_reasoning(label: str) -> str:
    return f"The words of the text suggest {label}."


def one_line(text: str) -> str:
    return " ".join(text.split())


class RateMeter:
    """R-Gen's training or generation progress: a bar on a terminal, otherwise a line every few
    seconds (`rgen-llm train: step 40/100 loss 2.345 12.0 rows/s`)."""

    def __init__(self, what: str, unit: str, total: int, enabled: bool, every_s: float = 5.0) -> None:
        self.what, self.unit, self.total, self.every_s = what, unit, total, every_s
        self.progress = Progress(log, what, total, unit=unit, enabled=enabled)
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int, rows: int, extra: str = "", force: bool = False) -> None:
        self.progress.update(done, extra.strip())
        now = time.perf_counter()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        rate = rows / max(now - self.t0, 1e-9)
        self.progress.line(f"{self.what}: {self.unit} {done}/{self.total}{extra} {rate:.1f} rows/s")

    def close(self) -> None:
        self.progress.close()


class LlmReasoningGenerator:
    """R-Gen as a fine-tuned causal LM. `prepare()` trains (or reuses) it; `generate()` writes reasonings."""

    def __init__(
        self,
        cfg: LlmConfig,
        seed: int,
        work_dir: Path,
        *,
        temperature: float = 0.0,  # 0: greedy; above: seeded sampling
        gen_batch_size: int = 64,
        checkpoint_every: int = 500,  # training steps between resumable checkpoints
    ) -> None:
        self.cfg, self.seed, self.work_dir = cfg, seed, Path(work_dir)
        self.temperature = temperature
        self.gen_batch_size = gen_batch_size
        self.checkpoint_every = checkpoint_every
        self.name = f"llm:{cfg.base}"
        self.source = resolve_source(cfg.data)
        self.device = pick_device(cfg.device, "rgen.llm.device")
        self.bf16 = weights_dtype(self.device) == torch.bfloat16
        self.stats: dict[str, Any] = {"generated": 0, "fallback": 0, "truncated": 0}
        self.progress = True
        self.model: Any = None
        self.tokenizer: Any = None
        self._stop_ids: list[int] = []

    # ---- settings that decide whether a finished model can be reused ----

    @property
    def scratch(self) -> ScratchSize | None:
        size = scratch_size(self.cfg.base, "rgen.llm.base")
        if size is not None and self.cfg.base.removeprefix("scratch:") not in SCRATCH_VOCAB:
            raise ValueError(f"rgen.llm.base: R-Gen trains scratch:{' or scratch:'.join(SCRATCH_VOCAB)} only")
        return size

    def fingerprint(self) -> dict[str, Any]:
        c = self.cfg
        data_sha = None if self.source.startswith("hub:") else sha256_file(self.source)
        fp = {
            "format": FORMAT_VERSION,
            "base": c.base,
            "data": self.source,
            "data_sha256": data_sha,
            "limit": c.limit,
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "lora_r": c.lora_r if self.scratch is None else None,
            "max_new_tokens": c.max_new_tokens,
            "seed": self.seed,
        }
        # The architecture itself, not only its name: R-Gen's scratch:tiny was once today's scratch:micro.
        if self.scratch is not None:
            fp["scratch"] = dataclasses.asdict(self.scratch)
        return fp

    def _fingerprint_id(self, fp: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def model_dir(self) -> Path:
        return self.work_dir / "model"

    # ---- stage 1: fine-tune (or reuse) ----

    def prepare(self, progress: bool = True) -> None:
        """Train R-Gen on the triples, or load the finished model from `work_dir` if it matches."""
        self.progress = progress
        if self.model is not None:
            return
        fp = self.fingerprint()
        fp_id = self._fingerprint_id(fp)
        marker = self.model_dir / "rgen.json"
        if marker.is_file():
            info = json.loads(marker.read_text())
            if info.get("fingerprint_id") == fp_id:
                if progress:
                    log.info(f"rgen-llm: reusing the finished model in {self.model_dir}")
                self._load_finished()
                self.stats.update(info.get("train", {}))
                return
            if progress:
                log.info(f"rgen-llm: {self.model_dir} was trained with other settings; training anew")

        self.work_dir.mkdir(parents=True, exist_ok=True)
        triples = load_triples(self.source, limit=self.cfg.limit)
        if progress:
            log.info(f"rgen-llm: {len(triples)} triples from {self.source}, base {self.cfg.base}")
        torch.manual_seed(self.seed)
        if self.scratch is not None:
            self.tokenizer = self._train_tokenizer(
                triples, SCRATCH_VOCAB[self.cfg.base.removeprefix("scratch:")]
            )
            self.model = self._init_scratch(self.scratch)
        else:
            self.tokenizer, self.model = self._load_hub_lora()
        train_stats = self._train(triples, fp_id, progress)

        tmp = self.work_dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        info = {"fingerprint_id": fp_id, "fingerprint": fp, "train": train_stats}
        (tmp / "rgen.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(self.model_dir, ignore_errors=True)
        tmp.replace(self.model_dir)
        (self.work_dir / "checkpoint.pt").unlink(missing_ok=True)
        inputs = {} if self.source.startswith("hub:") else {"triples": self.source}
        settings = {
            "rgen": "llm",
            "llm": dataclasses.asdict(self.cfg),
            "seed": self.seed,
            "train": train_stats,
        }
        write_provenance(self.work_dir / "provenance.json", "rgen-llm", inputs, settings)
        self.stats.update(train_stats)
        if self.scratch is None:  # generation is faster without the adapter indirection
            self.model = self.model.merge_and_unload()
        self._ready_for_generation()

    def _train_tokenizer(self, triples: list[Triple], vocab_size: int) -> Any:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[PAD, BOS, EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = ("".join(task_prompt(t.question, t.answer)) + " " + t.reasoning for t in triples)
        tok.train_from_iterator(texts, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)

    def _init_scratch(self, size: ScratchSize) -> Any:
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = self.tokenizer
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=size.hidden,
            intermediate_size=size.intermediate,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.kv_heads,
            max_position_embeddings=MAX_PROMPT_TOKENS + self.cfg.max_new_tokens + 64,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        return LlamaForCausalLM(config).to(self.device)

    def _load_hub_lora(self) -> tuple[Any, Any]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.cfg.base)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        model = build_lora(self.cfg.base, self.cfg.lora_r, weights_dtype(self.device))
        return tok, model.to(self.device)

    def _load_finished(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if self.scratch is not None:
            self.model = AutoModelForCausalLM.from_pretrained(self.model_dir).to(self.device)
        else:
            from peft import PeftModel

            dtype = weights_dtype(self.device)
            base = AutoModelForCausalLM.from_pretrained(self.cfg.base, dtype=dtype).to(self.device)
            self.model = PeftModel.from_pretrained(base, self.model_dir).merge_and_unload()
        self._ready_for_generation()

    # ---- encoding ----

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, question: str, answer: str) -> list[int]:
        head_text, tail_text = task_prompt(question, answer)
        tail = self._ids(tail_text)
        head = self._ids(head_text)[: max(8, MAX_PROMPT_TOKENS - len(tail) - 1)]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + head + tail

    def encode_example(self, t: Triple) -> tuple[list[int], int]:
        """Token ids of prompt + reasoning (+ eos unless cut), and where the reasoning starts."""
        prompt = self.encode_prompt(t.question, t.answer)
        target = self._ids(" " + one_line(t.reasoning))
        if len(target) >= self.cfg.max_new_tokens:
            target = target[: self.cfg.max_new_tokens]
        else:
            target = target + [self.tokenizer.eos_token_id]
        return prompt + target, len(prompt)

    def _collate(self, batch: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask, and labels that are -100 outside the reasoning."""
        width = max(len(ids) for ids, _ in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, (ids, start) in enumerate(batch):
            row = torch.as_tensor(ids, dtype=torch.long)
            input_ids[i, : len(ids)] = row
            attention[i, : len(ids)] = 1
            labels[i, start : len(ids)] = row[start:]
        return input_ids.to(self.device), attention.to(self.device), labels.to(self.device)

    # ---- training loop ----

    def _train_step(self, batch: Sequence[Example], opt: torch.optim.Optimizer) -> float:
        input_ids, attention, labels = self._collate(batch)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.item())

    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def _save_checkpoint(self, path: Path, fp_id: str, step: int, opt: torch.optim.Optimizer) -> None:
        state = {
            "fingerprint_id": fp_id,
            "step": step,
            "trainable": {n: p.detach().cpu() for n, p in self._trainable().items()},
            "optimizer": opt.state_dict(),
            "rng": torch.get_rng_state(),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def _load_checkpoint(self, path: Path, fp_id: str, opt: torch.optim.Optimizer, progress: bool) -> int:
        if not path.is_file():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("fingerprint_id") != fp_id:
            if progress:
                log.info(f"rgen-llm: ignoring {path}: written with other settings")
            return 0
        trainable = self._trainable()
        with torch.no_grad():
            for name, tensor in state["trainable"].items():
                trainable[name].copy_(tensor.to(trainable[name].device))
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if progress:
            log.info(f"rgen-llm: resuming from {path} at step {state['step']}")
        return int(state["step"])

    def _train(self, triples: list[Triple], fp_id: str, progress: bool) -> dict[str, Any]:
        # int32 tensors: a few hundred thousand rows as Python lists of ints would take gigabytes
        examples = [
            (torch.tensor(ids, dtype=torch.int32), start) for ids, start in map(self.encode_example, triples)
        ]
        bs, lr = self.cfg.batch_size, self.cfg.lr
        steps_per_epoch = math.ceil(len(examples) / bs)
        total = steps_per_epoch * self.cfg.epochs
        params = list(self._trainable().values())
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
        ckpt = self.work_dir / "checkpoint.pt"
        start = step = self._load_checkpoint(ckpt, fp_id, opt, progress)
        n_params = sum(p.numel() for p in params)
        if progress:
            log.info(f"rgen-llm: training {n_params:,} parameters, {total} steps on {self.device}")

        meter = RateMeter("rgen-llm train", "step", total, progress)
        self.model.train()
        order: list[int] = []
        order_epoch = -1
        loss_avg = float("nan")
        while step < total:
            epoch, i = divmod(step, steps_per_epoch)
            if epoch != order_epoch:  # the same order for an epoch whether or not the run was resumed
                gen = torch.Generator().manual_seed(self.seed + epoch)
                order, order_epoch = torch.randperm(len(examples), generator=gen).tolist(), epoch
            batch = [examples[j] for j in order[i * bs : (i + 1) * bs]]
            for group in opt.param_groups:  # warmup over 5% of the steps (1-100), then cosine to lr / 10
                group["lr"] = cosine_lr(step, total, lr, 0.1 * lr, max(1, min(100, total // 20)))
            loss = self._train_step(batch, opt)
            loss_avg = loss if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * loss
            step += 1
            meter.update(step, (step - start) * bs, f" loss {loss_avg:.3f}", force=step == total)
            if step % self.checkpoint_every == 0 and step < total:
                self._save_checkpoint(ckpt, fp_id, step, opt)
        meter.close()
        self.model.eval()
        return {"train_rows": len(examples), "train_steps": total, "final_loss": round(loss_avg, 4)}

    # ---- stage 2: generation ----

    def _ready_for_generation(self) -> None:
        self.model.eval()
        tok = self.tokenizer
        tok.padding_side = "left"
        stops = {tok.eos_token_id}
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        stops.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        pieces = tok.batch_decode([[i] for i in range(len(tok))])
        stops.update(i for i, piece in enumerate(pieces) if "\n" in piece)
        self._stop_ids = sorted(s for s in stops if s is not None)

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]]) -> list[tuple[str, bool]]:
        """(text up to the first newline, whether a stop token ended it) for each prompt."""
        from transformers import GenerationConfig

        tok = self.tokenizer
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, width - len(p) :] = 1
        # Every sampling knob set here: generate() fills unset ones from the model's own generation config
        # (an instruct model's says sample at 0.6 with top-p 0.9).
        sample = self.temperature > 0
        gen_cfg = GenerationConfig(
            max_new_tokens=self.cfg.max_new_tokens,
            do_sample=sample,
            temperature=self.temperature if sample else 1.0,
            top_p=1.0,
            top_k=0 if sample else 50,
            eos_token_id=self._stop_ids,
            pad_token_id=tok.pad_token_id,
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                generation_config=gen_cfg,
            )
        stop_set = set(self._stop_ids)
        results = []
        for row in out[:, width:].tolist():
            stopped = any(t in stop_set for t in row)
            text = tok.decode(row, skip_special_tokens=True).split("\n", 1)[0]
            results.append((one_line(text), stopped))
        return results

    def generate(self, items: Sequence[RgenItem]) -> list[str]:
        """One reasoning per item: why `label` answers the question of what emotion `text` expresses."""
        if self.model is None:
            self.prepare()
        if self.temperature > 0:
            torch.manual_seed(self.seed)
        prompts = [self.encode_prompt(emotion_question(it.text), it.label) for it in items]
        order = sorted(range(len(items)), key=lambda i: len(prompts[i]))  # similar lengths batch well
        out: list[str] = [""] * len(items)
        meter = RateMeter("rgen-llm generate", "rows", len(items), self.progress, every_s=10.0)
        for b in range(0, len(order), self.gen_batch_size):
            idx = order[b : b + self.gen_batch_size]
            for i, (text, stopped) in zip(idx, self._generate_batch([prompts[i] for i in idx]), strict=True):
                self.stats["truncated"] += not stopped
                if not text:
                    self.stats["fallback"] += 1
                    text = fallback_reasoning(items[i].label)
                out[i] = text
            meter.update(b + len(idx), b + len(idx), force=b + len(idx) == len(order))
        meter.close()
        self.stats["generated"] += len(items)
        return out

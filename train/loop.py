"""The training loop: Stage I (autoencoder, ``full`` only) then Stage II (fusion).

Stage II optionally adds, each on its own switch:
  * the CLIP prompt stage (when CLIP weights are given), alternated with the fusion
    updates by the bi-level schedule of :mod:`pf_stream.train.bilevel`;
  * distillation towards a frozen teacher (``full`` weights) for ``lite``.

Everything a run writes lives in its run folder: ``checkpoint.safetensors`` (resumable
state, see :mod:`pf_stream.train.checkpoint`), ``<model>.safetensors`` (+ ``.json``: the
weights alone, for pf-eval / pf-stream ``--weights``), ``log_stage<n>.csv`` (one row per
logged step) and ``config.yaml`` (the resolved config).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from pf_stream.errors import UserError
from pf_stream.train import distributed as dist_util
from pf_stream.train.bilevel import BdaSchedule
from pf_stream.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from pf_stream.train.config import StageConfig, TrainConfig, as_dict
from pf_stream.train.data import CropSampler, load_pairs
from pf_stream.train.losses import FusionLoss, decomposition_loss, reconstruction_loss

log = logging.getLogger("pf_stream.train")


@dataclass
class RunOptions:
    out: Path
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    teacher: str | None = None  # overrides config.distill.teacher
    init: str | None = None  # start from these weights (fine-tuning) instead of the seeded initial ones
    resume: bool = False
    device: str = "auto"
    command: str = ""
    progress: bool = True


def lr_at(stage: StageConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to lr * lr_min_ratio (a pure function of the step: resumes exactly)."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    span = max(1, stage.steps - stage.warmup)
    t = min(1.0, (step - stage.warmup) / span)
    return stage.lr * (stage.lr_min_ratio + (1 - stage.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def check_run_dir(out: Path) -> None:
    """Fail before any training when the run folder cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test.{os.getpid()}"  # one per process: DDP ranks probe at once
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to run folder {out}: {exc.strerror}; choose another --out") from None


def _check_weights_flag(flag: str, path: str, want: str) -> None:
    """A --teacher / --init file that is missing or holds another model, in words about that flag.

    The generic loader's advice ("pass --model lite", "leave --weights out") named options
    pf-train's user had not given: a `lite` file as --teacher said "pass --model lite".
    """
    from pf_stream.model.weights import read_meta

    file = Path(path)
    if not file.is_file():
        raise UserError(f"{flag} {path} not found: give a weights file written by pf-train (<run>/{want}.safetensors)")
    if file.suffix != ".safetensors":
        return  # the loader's own one-line refusal of pickles and other formats applies
    held = read_meta(file).model
    if held and held != want:
        what = "the teacher must be trained `full` weights" if flag == "--teacher" else f"this run trains `{want}`"
        raise UserError(f"{flag} {path} holds `{held}` weights, but {what} (<run>/{want}.safetensors)")


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU ({os.cpu_count()} cores, {platform.machine()}), {torch.get_num_threads()} torch thread(s) per process"


class _AutoencoderForward(nn.Module):
    """Stage I through one module call, so DDP sees (and synchronises) the whole step."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ir: torch.Tensor, vis: torch.Tensor):
        f_ir, f_vis = self.net.encode(ir), self.net.encode(vis)
        return self.net.decode(f_ir), self.net.decode(f_vis), f_ir, f_vis


class _Interrupted(Exception):
    pass


class _StopRequest:
    """Signal handler for Ctrl-C and SIGTERM during training: the step in flight finishes,
    the loop saves a checkpoint and stops.  A second signal stops at once.

    Why a flag instead of Python's default KeyboardInterrupt: that exception is raised
    wherever the main thread happens to be, and library code that catches everything can
    swallow it -- once in the test suite a run went on training after Ctrl-C.  A flag read
    between steps cannot be lost.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class Trainer:
    def __init__(self, config: TrainConfig, options: RunOptions):
        self.c, self.o = config, options
        self.info = dist_util.DistInfo()
        self.prompt = None
        self.started = time.time()
        self._stop = _StopRequest()  # run() installs it as the Ctrl-C / SIGTERM handler

    # -- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything that can fail on bad input happens here, before the first step."""
        c, o = self.c, self.o
        if o.resume and not (o.out / "checkpoint.safetensors").is_file():
            raise UserError(f"nothing to resume in {o.out}: no checkpoint.safetensors there")
        check_run_dir(o.out)
        torch.set_num_threads(max(1, c.run.threads))
        self.pairs = load_pairs(c.data)

        from pf_stream.model.registry import build_model

        self.net = build_model(c.model, c.model_config, seed=c.seed)
        if o.init and not o.resume:
            self._load_init(o.init)
        self.has_stage1 = hasattr(self.net, "encode") and hasattr(self.net, "decode")
        if c.stage1.steps > 0 and not self.has_stage1:
            log.info("model %s has no autoencoder (its contourlet transform is fixed and exact): Stage I skipped", c.model)

        teacher_path = o.teacher or c.distill.teacher
        self.teacher = None
        if teacher_path:
            from pf_stream.model.registry import load_model

            _check_weights_flag("--teacher", teacher_path, want="full")
            self.teacher, _ = load_model("full", teacher_path)
            for p in self.teacher.parameters():
                p.requires_grad_(False)

        self.clip = None
        if o.clip_weights:
            from pf_stream.train.clip_prompts import load_clip

            self.clip = load_clip(o.clip_model, o.clip_weights)
        else:
            log.warning("no --clip-weights given: training WITHOUT the prompt stage (fusion loss only)")

        # Distributed last: a bad input above must fail before any rank waits on the others.
        self.info = dist_util.setup(o.device)
        dev = self.info.device
        self.net.to(dev)
        if self.teacher is not None:
            self.teacher.to(dev).eval()
        self.sampler = CropSampler(self.pairs, c.data.crop, seed=c.seed + 1000 * self.info.rank)
        self.fusion_loss = FusionLoss(c.loss)
        if self.fusion_loss.composite is not None:
            self.fusion_loss.composite.contourlet.to(dev)

        if self.clip is not None:
            from pf_stream.train.clip_prompts import PromptLearner, PromptLoss

            self.clip.to(dev)
            self.prompt = PromptLearner(self.clip, c.prompt.positive, c.prompt.negative, c.prompt.n_ctx, seed=c.seed).to(dev)
            self.prompt_loss = PromptLoss(self.prompt, c.prompt.temperature, c.prompt.image_size)
            b = c.prompt.bilevel
            self.schedule = BdaSchedule(b.alpha0, b.half_life, b.upper_every)

    def _load_init(self, path: str) -> None:
        from pf_stream.model.weights import apply_state, load_state

        _check_weights_flag("--init", path, want=self.c.model)
        state, meta = load_state(path)
        same = meta is None or (meta.model == self.c.model and _effective(self.net, meta.config) == _effective(self.net, self.c.model_config))
        if not same:
            raise UserError(f"--init {path} holds {meta.model} {meta.config}, not {self.c.model} {self.c.model_config}: "
                            "use weights of the same model and model_config")
        apply_state(self.net, state, path)
        log.info("starting from the weights in %s", path)

    # -- helpers ----------------------------------------------------------------------------
    def _amp(self):
        """Forward passes and losses in bf16 when run.precision is bf16 (backward follows autocast)."""
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self.c.run.precision == "bf16")

    def _batch(self, size: int):
        ir, vis = self.sampler.batch(size)
        return ir.to(self.info.device, non_blocking=True), vis.to(self.info.device, non_blocking=True)

    def _save(self, state: TrainState, optimizers: dict) -> None:
        if not self.info.is_main:
            return
        state.elapsed_s = self.elapsed
        net = dist_util.unwrap(self.net)
        prompt = dist_util.unwrap(self.prompt) if self.prompt is not None else None
        save_checkpoint(self.o.out, net, optimizers, state, as_dict(self.c), prompt)
        self._export(state)

    def _export(self, state: TrainState) -> None:
        from pf_stream.model.weights import WeightsMeta, save_weights

        c = self.c
        trained = {
            "data": [str(f) for f in c.data.folders],
            "pairs": len(self.pairs),
            "crop": c.data.crop,
            "steps": {
                "stage1": (c.stage1.steps if self.has_stage1 else 0) if state.stage == 2 else state.step,
                "stage2": state.step if state.stage == 2 else 0,
            },
            "batch": {"stage1": c.stage1.batch, "stage2": c.stage2.batch},
            "world_size": self.info.world_size,
            "hardware": hardware(),
            "time_s": round(self.elapsed),
            "command": self.o.command,
            "loss": as_dict(c)["loss"],
            "prompt": f"CLIP {self.o.clip_model} ({self.o.clip_weights})" if self.clip is not None else "none (no CLIP weights given)",
            "distill": self.o.teacher or c.distill.teacher,
            "init": self.o.init,
            "seed": c.seed,
            "precision": c.run.precision,
            "torch": torch.__version__,
        }
        save_weights(dist_util.unwrap(self.net), self.o.out / f"{c.model}.safetensors", WeightsMeta(c.model, c.model_config, trained))

    @property
    def elapsed(self) -> float:
        return self._elapsed0 + time.time() - self.started

    def _log_row(self, row: dict) -> None:
        if not self.info.is_main:
            return
        # One file per stage: the two stages log different terms (columns).
        path = self.o.out / f"log_stage{row['stage']}.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Path:
        self.setup()
        c, o = self.c, self.o
        self._elapsed0 = 0.0
        if self.info.is_main:
            (o.out / "config.yaml").write_text(yaml.safe_dump(as_dict(c), sort_keys=False))
        # Ctrl-C, and SIGTERM from torchrun / schedulers: stop after the step in flight.
        prev = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stage1 = _AutoencoderForward(self.net) if self.has_stage1 and c.stage1.steps > 0 else None
            opt1 = torch.optim.AdamW(self.net.parameters(), lr=c.stage1.lr, weight_decay=0.0) if stage1 else None
            opt2 = torch.optim.AdamW(self.net.parameters(), lr=c.stage2.lr, weight_decay=0.0)
            opt_p = torch.optim.Adam(self.prompt.parameters(), lr=c.prompt.bilevel.upper_lr) if self.prompt is not None else None
            state = TrainState(stage=1 if stage1 else 2)
            if o.resume:
                optimizers = {"stage1": opt1, "stage2": opt2, "prompt": opt_p}
                state = load_checkpoint(o.out, self.net, {k: v for k, v in optimizers.items() if v is not None}, self.prompt)
                if state.sampler:
                    self.sampler.set_state(state.sampler)
                self._elapsed0 = state.elapsed_s
                log.info("resumed %s at stage %d step %d", o.out, state.stage, state.step)
            if state.stage == 1 and stage1 is not None:
                self._stage1(stage1, opt1, state)
                state = TrainState(stage=2, sampler=self.sampler.state(), elapsed_s=self.elapsed)
            self._stage2(opt2, opt_p, state)
            # Every rank finished before any tears the process group down: a rank leaving
            # while its peer still had gloo work open aborted that peer once (SIGABRT,
            # "terminate called without an active exception", in a fresh-clone test run).
            dist_util.barrier(self.info)
        finally:
            for sig, handler in prev.items():
                signal.signal(sig, handler)
            dist_util.cleanup(self.info)
        return o.out / f"{c.model}.safetensors"

    def _steps(self, stage_cfg: StageConfig, state: TrainState, optimizers: dict, body, label: str):
        """Run ``body(step)`` for the remaining steps of a stage with LR schedule, logging,
        periodic checkpoints and a checkpoint on interruption."""
        c = self.c
        from tqdm import tqdm

        bar = tqdm(total=stage_cfg.steps, initial=state.step, desc=label, disable=not (self.info.is_main and self.o.progress),
                   dynamic_ncols=True, mininterval=2.0, unit="step")
        try:
            while state.step < stage_cfg.steps:
                lr = lr_at(stage_cfg, state.step)
                for opt in optimizers.values():
                    if opt is not None and opt is not optimizers.get("prompt"):
                        for group in opt.param_groups:
                            group["lr"] = lr
                terms = body(state.step)
                state.step += 1
                state.sampler = self.sampler.state()
                bar.update(1)
                if state.step % c.run.log_every == 0 or state.step == stage_cfg.steps:
                    bar.set_postfix(loss=f"{terms['loss']:.4f}")
                    self._log_row({"stage": state.stage, "step": state.step, "lr": f"{lr:.3g}",
                                   "time_s": round(self.elapsed, 1), **{k: f"{v:.5g}" for k, v in terms.items()}})
                if state.step % c.run.checkpoint_every == 0 or state.step == stage_cfg.steps:
                    self._save(state, {k: v for k, v in optimizers.items() if v is not None})
                if self._stop.requested:
                    raise _Interrupted
        except (KeyboardInterrupt, _Interrupted):
            # The step in flight either finished (counted) or never touched the weights'
            # optimiser step; either way the state below is consistent.
            self._save(state, {k: v for k, v in optimizers.items() if v is not None})
            bar.close()
            if self.info.is_main:
                log.warning("interrupted: checkpoint saved at stage %d step %d; continue with --resume", state.stage, state.step)
            raise KeyboardInterrupt from None
        bar.close()

    def _stage1(self, forward: nn.Module, opt: torch.optim.Optimizer, state: TrainState) -> None:
        c = self.c
        model = dist_util.wrap(forward, self.info, find_unused=True)

        def body(step: int) -> dict:
            ir, vis = self._batch(c.stage1.batch)
            with self._amp():
                rec_ir, rec_vis, f_ir, f_vis = model(ir, vis)
                l_rec = reconstruction_loss(rec_ir, ir, c.stage1.gradient) + reconstruction_loss(rec_vis, vis, c.stage1.gradient)
                l_dec = decomposition_loss(f_ir.base, f_vis.base, f_ir.detail, f_vis.detail)
                loss = l_rec + c.stage1.decomposition * l_dec
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": float(loss.detach()), "reconstruction": float(l_rec.detach()), "decomposition": float(l_dec.detach())}

        self._steps(c.stage1, state, {"stage1": opt}, body, "stage I (autoencoder)")

    def _stage2(self, opt: torch.optim.Optimizer, opt_p: torch.optim.Optimizer | None, state: TrainState) -> None:
        c = self.c
        net = dist_util.wrap(self.net, self.info)
        # The prompt context is not DDP-wrapped (its loss calls the learner directly); its
        # gradients are averaged across ranks by hand below, which keeps ranks identical.

        def body(step: int) -> dict:
            ir, vis = self._batch(c.stage2.batch)
            with self._amp():
                fused = net(ir, vis)
                f_loss, terms = self.fusion_loss(fused, ir, vis)
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_out = self.teacher(ir, vis)
                    d = c.distill.weight * F.l1_loss(fused, teacher_out)
                    terms["distill"] = float(d.detach())
                    f_loss = f_loss + d
                loss = f_loss
                if self.prompt is not None:
                    # Lower level: aggregated direction (1 - a_k) grad f + a_k * w * grad F.
                    w_f, w_F = self.schedule.lower_weights(step)
                    coupled = self.prompt_loss.fusion_loss(fused)
                    loss = w_f * f_loss + w_F * c.prompt.weight * coupled.loss
                    terms.update(prompt=float(coupled.loss.detach()), p_pos=coupled.p_positive, alpha=w_F)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if self.prompt is not None and self.schedule.upper_step_due(step):
                # Upper level: prompt context through the current fused images.
                with self._amp():
                    upper = self.prompt_loss.prompt_loss(fused.detach(), self.fusion_loss.intensity_target(ir, vis))
                opt_p.zero_grad(set_to_none=True)
                upper.loss.backward()
                dist_util.average_gradients(self.prompt, self.info)
                opt_p.step()
                terms["upper"] = float(upper.loss.detach())
            terms["loss"] = float(loss.detach())
            return terms

        self._steps(c.stage2, state, {"stage2": opt, "prompt": opt_p}, body, "stage II (fusion)")


def _effective(net: nn.Module, config: dict) -> dict:
    """Constructor arguments with defaults filled in (tuples as lists): comparable configs."""
    import inspect

    params = inspect.signature(type(net).__init__).parameters
    full = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}


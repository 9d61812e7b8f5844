"""pf-train: train `lite` or `full` from a YAML config (configs/train/*.yaml).

Examples (from the repository root):

    pf-train --config configs/train/lite.yaml --out runs/lite
    pf-train --config configs/train/lite.yaml --out runs/lite --resume          # continue after Ctrl-C
    pf-train --config configs/train/full.yaml --out runs/full \\
             --clip-weights ViT-B-32.safetensors --clip-model ViT-B-32            # with the prompt stage
    pf-train --config configs/train/lite.yaml --out runs/lite-kd --teacher runs/full/full.safetensors
    torchrun --nproc_per_node 4 -m pf_stream.train.cli --config configs/train/full.yaml --out runs/full
    pf-train --config configs/train/lite.yaml --set stage2.steps=500 --set loss.ssim=0.5 --out runs/try

Without --clip-weights the prompt stage is skipped (CLIP weights are never downloaded).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shlex
import sys
from pathlib import Path

from pf_stream.errors import ArgumentParser, UserError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pf-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", help="training YAML (configs/train/lite.yaml, full.yaml, tiny.yaml)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, weights, CSV logs")
    p.add_argument("--model", help="override the config's model (lite or full)")
    p.add_argument("--data", action="append", metavar="FOLDER", help="training folder(s) with ir/ and vi/ (replaces data.folders)")
    p.add_argument("--steps", type=int, help="override stage2.steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. loss.ssim=0.5")
    p.add_argument("--clip-weights", metavar="PATH", help="local open_clip state dict (.safetensors/.pt); enables the prompt stage")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture name, or an open_clip config .json")
    p.add_argument("--teacher", metavar="PATH", help="`full` weights to distil into the trained model")
    p.add_argument("--init", metavar="PATH", help="start from these weights (same model and model_config): fine-tuning")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun picks one GPU per rank)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log_stage<n>.csv)")
    return p


def _check_device(device: str) -> None:
    """--device in one line, before the data loads: 'tpu' used to train on the CPU without a
    word, and 'cuda' on a CPU-only torch ended in an AttributeError traceback."""
    import re

    if device in ("auto", "cpu"):
        return
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise UserError(f"unknown --device {device!r}: use auto, cpu, cuda or cuda:N")
    import torch

    from pf_stream.backends.base import require_cuda

    require_cuda()
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")


@cli_entry("pf-train")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("pf-train: %(message)s"))
    from pf_stream.train.distributed import log_on_rank0_only

    log_on_rank0_only(handler)  # under torchrun: one narration, not one per rank
    logger = logging.getLogger("pf_stream")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    from pf_stream.train.checkpoint import checkpoint_config
    from pf_stream.train.config import load_config
    from pf_stream.train.loop import RunOptions, Trainer

    _check_device(args.device)
    out = Path(args.out)
    overrides = list(args.set)
    if args.model:
        overrides.append(f"model={args.model}")
    if args.steps is not None:
        overrides.append(f"stage2.steps={args.steps}")
    if args.data:
        from pf_stream.train.data import unique_folders

        folders = unique_folders(args.data, "--data")  # warns here, naming the flag the user typed
        overrides.append("data.folders=" + repr(folders).replace("'", '"'))
    config = load_config(args.config, overrides)
    if not args.resume and (out / "checkpoint.safetensors").is_file():
        # The command repeated after a Ctrl-C without --resume used to start from scratch and,
        # at its first checkpoint, replace hours of training.
        raise UserError(f"{out} already holds a training run: continue it with --resume, or choose another "
                        "--out (delete that folder to start it over)")
    if args.resume:
        stored = checkpoint_config(out)
        if stored is None:
            raise UserError(f"nothing to resume in {out}: no checkpoint.safetensors there")
        if stored.get("model") != config.model or stored.get("model_config") != config.model_config:
            raise UserError(f"{out} holds a {stored.get('model')} run with another model config; resume with the run's own config")
    from pf_stream.model.registry import MODELS
    from pf_stream.errors import check_choice

    check_choice("model", config.model, [m for m in MODELS if m != "classic"])
    if importlib.util.find_spec("kornia") is None:  # the losses' SSIM: found out here, not at the first step
        raise UserError("pf-train needs kornia (the SSIM of its losses): pip install -e '.[train]' or pip install kornia")
    options = RunOptions(
        out=out, clip_model=args.clip_model, clip_weights=args.clip_weights, teacher=args.teacher, init=args.init,
        resume=args.resume, device=args.device, command="pf-train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        progress=not args.no_progress,
    )
    weights = Trainer(config, options).run()
    logging.getLogger("pf_stream.train").info("done: weights in %s (pf-eval --model %s --weights %s)", weights, config.model, weights)
    return 0


if __name__ == "__main__":
    main()

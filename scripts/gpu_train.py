"""Train `full` on a GPU, then distil `lite` from it, each schedule fitted to a time budget.

For a short GPU slot (run it through scripts/gpu_train.sh, which makes the checkout importable):
the configs' schedules (configs/train/full.yaml: 4000 + 8000 steps; lite.yaml: 7000; read from
the files) are scaled down to what fits, full's stage I : stage II ratio and every other
setting kept.  A
probe of a few dozen steps per stage measures this GPU's seconds per step first.

    scripts/gpu_train.sh --data DIR [--data DIR ...] --out OUT [--full-s 150] [--lite-s 60] [--set KEY=VALUE ...]

Writes OUT/full/ and OUT/lite/ (pf-train run folders: weights, logs, config) and
OUT/gpu_train.json (steps, seconds per step, wall times).  ``--set`` goes to both runs
(e.g. ``data.exclude_files=[configs/train/roadscene_val24.txt]`` to hold pairs out).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE_STEPS, PROBE_FROM = 60, 20  # seconds per step = (time at 60 - time at 20) / 40


DEVICE = "cuda"


def pf_train(out: Path, config: str, data: list[str], sets: list[str], extra: list[str] = ()) -> float:
    """One pf-train run on DEVICE; returns its wall seconds.  Raises on failure, with pf-train's last line."""
    cmd = [sys.executable, "-m", "pf_stream.train.cli", "--config", config, "--out", str(out), "--device", DEVICE,
           "--no-progress", *[a for d in data for a in ("--data", d)], *[a for s in sets for a in ("--set", s)], *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pf-train failed ({proc.returncode}): {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return time.monotonic() - t0


def seconds_per_step(log: Path) -> float:
    rows = {int(r["step"]): float(r["time_s"]) for r in csv.DictReader(log.open())}
    return (rows[PROBE_STEPS] - rows[PROBE_FROM]) / (PROBE_STEPS - PROBE_FROM)


def probe(tmp: Path, config: str, data: list[str], sets: list[str], stages: tuple[str, ...], extra: list[str] = ()) -> dict:
    """Seconds per step of each stage, from a short run's CSV log."""
    shutil.rmtree(tmp, ignore_errors=True)
    steps = [f"{s}.steps={PROBE_STEPS}" for s in stages] + [f"run.log_every={PROBE_FROM}", "run.checkpoint_every=100000"]
    try:
        pf_train(tmp, config, data, sets + steps, extra)
        return {s: seconds_per_step(tmp / f"log_{s}.csv") for s in stages}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def schedule(config: str, sets: list[str]) -> tuple[int, int]:
    """(stage I steps, stage II steps) of a training config with the overrides applied."""
    from pf_stream.train.config import load_config

    c = load_config(REPO / config, sets)
    return c.stage1.steps, c.stage2.steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="training folder (as pf-train --data)")
    p.add_argument("--out", required=True)
    p.add_argument("--full-s", type=float, default=150, help="training seconds for full (both stages)")
    p.add_argument("--lite-s", type=float, default=60, help="training seconds for lite distilled from full")
    p.add_argument("--set", action="append", default=[], help="config override for both runs")
    p.add_argument("--device", default="cuda", help="cuda (cpu only to try this script out)")
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"budget_s": {"full": args.full_s, "lite": args.lite_s}, "sets": args.set}

    def save() -> None:
        (out / "gpu_train.json").write_text(json.dumps(report, indent=2) + "\n")

    # full: both stages at the config's 1 : 2 ratio, scaled to the budget (never above the config).
    t0 = time.monotonic()
    s = probe(out / "probe", "configs/train/full.yaml", args.data, args.set, ("stage1", "stage2"))
    full1, full2 = schedule("configs/train/full.yaml", args.set)
    scale = min(1.0, args.full_s / (full1 * s["stage1"] + full2 * s["stage2"]))
    n1, n2 = max(1, round(full1 * scale)), max(1, round(full2 * scale))
    report["full"] = {"s_per_step": {k: round(v, 5) for k, v in s.items()}, "steps": [n1, n2], "probe_wall_s": round(time.monotonic() - t0, 1)}
    print(f"full: {s['stage1'] * 1000:.1f} / {s['stage2'] * 1000:.1f} ms per step (stage I / II); "
          f"training {n1} + {n2} steps", flush=True)
    save()
    wall = pf_train(out / "full", "configs/train/full.yaml", args.data,
                    args.set + [f"stage1.steps={n1}", f"stage2.steps={n2}"])
    report["full"]["wall_s"] = round(wall, 1)
    print(f"full: done in {wall:.0f} s", flush=True)
    save()

    # lite, distilled from that full.
    teacher = ["--teacher", str(out / "full" / "full.safetensors")]
    t0 = time.monotonic()
    s = probe(out / "probe", "configs/train/lite.yaml", args.data, args.set, ("stage2",), teacher)
    n = max(1, min(schedule("configs/train/lite.yaml", args.set)[1], round(args.lite_s / s["stage2"])))
    report["lite"] = {"s_per_step": {k: round(v, 5) for k, v in s.items()}, "steps": n, "probe_wall_s": round(time.monotonic() - t0, 1)}
    print(f"lite: {s['stage2'] * 1000:.1f} ms per step with the teacher; training {n} steps", flush=True)
    save()
    wall = pf_train(out / "lite", "configs/train/lite.yaml", args.data, args.set + [f"stage2.steps={n}"], teacher)
    report["lite"]["wall_s"] = round(wall, 1)
    print(f"lite: done in {wall:.0f} s", flush=True)
    save()
    return 0


if __name__ == "__main__":
    from pf_stream.errors import UserError

    try:
        sys.exit(main())
    except (RuntimeError, OSError, KeyError, ValueError, UserError) as exc:  # a failed run, a bad config or log: one line
        print(f"gpu_train: {exc}", file=sys.stderr)
        sys.exit(1)

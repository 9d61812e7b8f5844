"""pf-bench: model-only, whole-pipeline and RTSP-latency speed measurements."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """CPU model and core count, for naming the machine beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def check_json_target(path: str | None, make_folder: bool = True) -> None:
    """Fail before a long measurement, not after it, when ``--json`` cannot be written.

    A folder, or a place where no file can be created (checked by creating one: permission
    bits say nothing for root or for /proc), is one UserError line.  ``make_folder=False``
    (model mode, as it always was) wants the folder to exist already.
    """
    from pf_stream.errors import UserError

    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"--json {path} is a folder: give a file name")
    if not make_folder and not target.parent.is_dir():
        raise UserError(f"cannot write --json {path}: folder {target.parent} does not exist")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        with open(target, "a"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        raise UserError(f"cannot write --json {path}: {exc.strerror or exc}; choose another file") from None


def write_json_result(path: str, text: str) -> None:
    """Write the result; a failure (disk full) is one line, and the result is on stdout anyway."""
    from pf_stream.errors import UserError

    try:
        Path(path).write_text(text + "\n")
    except OSError as exc:
        raise UserError(f"cannot write --json {path}: {exc.strerror or exc} (the result is printed above)") from None

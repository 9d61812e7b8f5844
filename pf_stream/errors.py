"""One-line user errors and the wrapper every console script runs under.

A user who mistypes a model name or points at a missing file should read one line that
says what to do, get exit code 2, and never see a traceback.  Code anywhere in the
package raises :class:`UserError` for such cases; :func:`cli_entry` turns it into that
line.  Programming errors still show their traceback: those are ours to fix.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a UserError with a hint."""
    choices = list(choices)
    if value not in choices:
        raise UserError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose one of: {', '.join(choices)}")
    return value


def cli_entry(prog: str) -> Callable[[Callable[..., int | None]], Callable[..., int]]:
    """Decorate a console-script ``main`` so bad input ends in one line and exit code 2.

    Ctrl-C ends with exit code 130 and no traceback; whatever the command had already
    written is the command's own business to have flushed (sinks close in ``finally``).
    """

    def wrap(fn: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(fn)
        def main(*args, **kwargs) -> int:
            try:
                code = fn(*args, **kwargs)
            except UserError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                code = EXIT_USAGE
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                code = EXIT_INTERRUPTED
            sys.exit(code or 0)

        return main

    return wrap


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'WxH' into (width, height); raise UserError on anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except (ValueError, AttributeError):
        raise UserError(f"malformed size {text!r}: write it as WIDTHxHEIGHT, e.g. 640x512") from None
    if w < 8 or h < 8 or w > 16384 or h > 16384:
        raise UserError(f"size {text!r} is out of range: width and height must be 8..16384")
    return w, h


def read_yaml(path, what: str, fix: str):
    """Parse a YAML file the user named; a missing file or bad syntax is one UserError line.

    ``what`` names the file for the user ("config file", "calibration file"), ``fix`` says
    what to do ("re-run pf-calibrate").  Returns whatever the file holds (None if empty).
    """
    from pathlib import Path

    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} not found: {fix}")
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path} is not valid YAML{where}: {fix}") from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse for every pf-* command: a bad command line is one UserError line (exit 2
    through :func:`cli_entry`) instead of argparse's usage block; an unknown option gets a
    did-you-mean hint."""

    def error(self, message: str):  # type: ignore[override]
        if "unrecognized arguments" in message:
            words = message.split(":", 1)[1].split()
            flag = next((w for w in words if w.startswith("-")), words[0] if words else "")
            options = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
            message = f"unknown option {flag}{did_you_mean(flag.split('=')[0], options)}"
        raise UserError(f"{message}; see {self.prog} --help")


def check_writable(path: str | Path, flag: str) -> None:
    """Fail before a long run, not after it, when the file that ``flag`` names cannot be written.

    Missing folders are created.  A folder, or a place where no file can be created, is one
    UserError line.  Checked by creating a probe file beside it: permission bits say nothing
    for root or for /proc, and an existing file is left untouched.
    """
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.parent / f".{target.name}.pf-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {flag} {path}: {exc.strerror or exc}; choose another {flag}") from None

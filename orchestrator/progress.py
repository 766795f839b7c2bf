"""Progress reporting shared by the Terraform and Ansible engines, the Kubernetes apply and the stages.

Two modes: *interactive* (a rich progress bar with ``done/total``, the current item and the
elapsed time) when the output is a terminal, and *plain* (one line per finished item, e.g.
``  [3/41] aws_vpc.this: created (2s)``) for CI logs and tests. rich is imported only when an
interactive bar is started, so importing this module stays cheap (``infra --help`` < 200 ms).
Every line printed, and every item shown on the bar, goes through ``secrets.redact`` first.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .secrets import redact


def format_seconds(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Reports stages, counted tasks, warnings and a final summary.

    ``interactive=None`` picks the mode from ``stream.isatty()``; ``quiet`` hides everything
    but warnings. Warnings go to ``err_stream`` (stderr by default) in plain mode.
    """

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        err_stream: TextIO | None = None,
        interactive: bool | None = None,
        quiet: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.err_stream = err_stream if err_stream is not None else sys.stderr
        self.quiet = quiet
        if interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive and not quiet
        self.total: int | None = None
        self.done_count = 0
        self.label = ""
        self.current_item: str | None = None
        self._started_at: float | None = None
        self._rich: Any = None
        self._task: Any = None

    # --- output primitives ----------------------------------------------------------------------

    def _print(self, text: str, *, err: bool = False, style: str | None = None) -> None:
        text = redact(text)
        if self._rich is not None:
            self._rich.console.print(text, style=style, markup=False, highlight=False)
            return
        stream = self.err_stream if err else self.stream
        stream.write(text + "\n")
        stream.flush()

    # --- API ------------------------------------------------------------------------------------

    def stage(self, name: str) -> None:
        if not self.quiet:
            self._print(f"==> {name}", style="bold")

    def start_task(self, total: int | None, label: str) -> None:
        self._stop_bar()
        self.total = total
        self.label = label
        self.done_count = 0
        self.current_item = None
        self._started_at = time.monotonic()
        if self.quiet:
            return
        if self.interactive:
            self._start_bar(total, label)
        else:
            self._print(f"{label}: {total} to do" if total is not None else f"{label}...")

    def current(self, item: str, *, elapsed: float | None = None) -> None:
        self.current_item = item
        if self._rich is not None and self._task is not None:
            text = item if elapsed is None else f"{item} ({format_seconds(elapsed)})"
            self._rich.update(self._task, current=redact(text))

    def advance(self, item: str, status: str, *, elapsed: float | None = None) -> None:
        self.done_count += 1
        if self.total is not None and self.done_count > self.total:
            self.total = self.done_count
        if self.quiet:
            return
        total = "?" if self.total is None else str(self.total)
        line = f"  [{self.done_count}/{total}] {item}: {status}"
        if elapsed is not None:
            line += f" ({format_seconds(elapsed)})"
        self._print(line, style="red" if status == "failed" else None)
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=self.done_count, total=self.total, current="")

    def warn(self, msg: str) -> None:
        self._print(f"warning: {msg}", err=True, style="yellow")

    def info(self, msg: str) -> None:
        if not self.quiet:
            self._print(msg)

    def done(self, summary: str) -> None:
        self._stop_bar()
        if not self.quiet and summary:
            elapsed = ""
            if self._started_at is not None:
                elapsed = f" ({format_seconds(time.monotonic() - self._started_at)})"
            self._print(f"{summary}{elapsed}")
        self._started_at = None

    def close(self) -> None:
        """Stops a live bar without printing a summary (on errors)."""
        self._stop_bar()

    # --- rich -----------------------------------------------------------------------------------

    def _start_bar(self, total: int | None, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream, stderr=False)
        self._rich = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[current]}"),
            console=console,
        )
        self._rich.start()
        self._task = self._rich.add_task(redact(label), total=total, current="")

    def _stop_bar(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
            self._task = None


class NullProgress(Progress):
    """Reports nothing but warnings (to stderr): the default when an engine is given no Progress."""

    def __init__(self) -> None:
        super().__init__(interactive=False, quiet=True)

"""The terraform child process: one command at a time, its ``-json`` stream tailed from a file,
Ctrl-C forwarded exactly once, failures turned into ``TerraformError`` (``ProcessRunner``, the
base of ``Terraform``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from orchestrator.engines.tfjson import (
    SUPPORTED_UI_MAJOR,
    Diagnostic,
    error_from_diagnostics,
    parse_line,
    stderr_warnings,
    summarize_stderr,
    ui_major,
)
from orchestrator.errors import Interrupted, TerraformError
from orchestrator.progress import Progress
from orchestrator.secrets import redact_file
from orchestrator.workspace import private_dir

INSTALL_HINT = "install Terraform >= 1.5 or OpenTofu, or set INFRA_TERRAFORM"
INTERRUPT_MESSAGE = (
    "interrupt received: waiting for terraform to stop and save state (Ctrl-C again to stop waiting)"
)


@dataclass
class _Run:
    returncode: int
    lines: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stderr: str = ""


class _SigintState:
    def __init__(self) -> None:
        self.count = 0
        self.forwarded = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def forward_once(self) -> None:
        proc = self.proc
        if self.forwarded == 0 and proc is not None and proc.returncode is None:
            self.forwarded = 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.forward_once()


def _open_private(path: str) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older log may be wider
    return os.fdopen(fd, "wb")


def _temp_path(temps: list[str], suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix="infra-tf-", suffix=suffix)
    os.close(fd)
    temps.append(path)
    return path


class ProcessRunner:
    """Runs the binary for ``Terraform``; expects its attributes (binary, workdir, data_dir, log_dir,
    progress, interrupt_wait) and ``child_env()``."""

    binary: str
    workdir: Path
    data_dir: Path | None
    log_dir: Path | None
    progress: Progress
    interrupt_wait: float
    last_pid: int | None
    _name: str  # "terraform" or "tofu", for messages

    def child_env(self) -> dict[str, str]:
        raise NotImplementedError

    # --- errors ---------------------------------------------------------------------------------

    def _unlock_cmd(self) -> str:
        prefix = f"TF_DATA_DIR={self.data_dir} " if self.data_dir is not None else ""
        return f"{prefix}{self._name} force-unlock"

    def _raise_on_failure(self, run: _Run, command: str) -> None:
        if run.returncode == 0:
            return
        err = error_from_diagnostics(run.diagnostics, workdir=self.workdir, unlock_cmd=self._unlock_cmd())
        if err is not None:
            raise err
        summary = summarize_stderr(run.stderr)
        if summary is not None:
            raise TerraformError(f"{self._name} {command} failed: {summary[0]}", summary[1])
        raise TerraformError(f"{self._name} {command} failed (exit {run.returncode})", None)

    # --- the child process ----------------------------------------------------------------------

    def _run(
        self,
        args: list[str],
        *,
        log_name: str | None,
        json_stream: bool = True,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> _Run:
        """Runs one command. stdout goes to a file (the JSON log when ``log_dir`` is set) that is
        tailed, not to a pipe: if we stop waiting after Ctrl-C and exit, terraform keeps a
        writable stdout and is not killed by SIGPIPE half-way through saving state."""
        argv = [self.binary, *args]
        env = self.child_env()
        temps: list[str] = []
        if self.log_dir is not None and log_name:
            private_dir(self.log_dir)
            out_path = str(self.log_dir / f"{log_name}.jsonl")
        else:
            out_path = _temp_path(temps, ".out")
        err_path = _temp_path(temps, ".err")
        sig = _SigintState()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, sig.handler) if in_main else None
        proc: subprocess.Popen[bytes] | None = None
        result = _Run(returncode=-1)
        try:
            with _open_private(out_path) as out, open(err_path, "wb") as err:
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=self.workdir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        umask=0o077,  # state, plans and the data dir: owner-only, even as a library
                    )
                except OSError as exc:
                    raise TerraformError(
                        f"cannot run {self.binary}: {exc.strerror or exc}", INSTALL_HINT
                    ) from exc
            self.last_pid = proc.pid
            sig.proc = proc
            if sig.count:
                sig.forward_once()
            with open(out_path, encoding="utf-8", errors="replace") as reader:
                self._stream(proc, sig, result, reader, json_stream, on_message)
            if proc.returncode is not None:
                result.stderr = Path(err_path).read_text(encoding="utf-8", errors="replace")
                succeeded = proc.returncode in (0, 2)  # 2: plan -detailed-exitcode with changes
                for warning in stderr_warnings(result.stderr, include_errors=succeeded):
                    self.progress.warn(warning)
                if out_path not in temps:  # the JSON log kept under .infra/ holds no secret value
                    redact_file(Path(out_path))
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
            for temp in temps:
                Path(temp).unlink(missing_ok=True)
        if sig.count:
            raise self._interrupted(proc, sig)
        return result

    def _stream(
        self,
        proc: subprocess.Popen[bytes],
        sig: _SigintState,
        result: _Run,
        reader: IO[str],
        json_stream: bool,
        on_message: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        buffered, deadline, bad_ui = "", None, None
        try:
            while True:
                if sig.count and deadline is None:
                    self.progress.warn(INTERRUPT_MESSAGE.replace("terraform", self._name))
                    deadline = time.monotonic() + self.interrupt_wait
                if sig.count >= 2 or (deadline is not None and time.monotonic() > deadline):
                    return  # stop waiting; terraform keeps running and saves state on its own
                exited = proc.poll() is not None  # before reading, so the last read gets everything
                data = reader.read()
                buffered += data
                *complete, buffered = buffered.split("\n")
                if exited and buffered:
                    complete.append(buffered)
                for line in complete:
                    bad_ui = self._handle_line(line, result, json_stream, on_message, bad_ui)
                if exited:
                    break
                if not data:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=0.05)
        except BaseException:
            if proc.returncode is None:  # our own failure: let terraform stop cleanly, never kill it
                sig.forward_once()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=self.interrupt_wait)
            raise
        result.returncode = proc.returncode if proc.returncode is not None else -1
        if bad_ui is not None:
            raise TerraformError(
                f"{self._name} speaks machine-readable UI {bad_ui}; infra understands {SUPPORTED_UI_MAJOR}.x",
                INSTALL_HINT,
            )

    def _handle_line(
        self,
        line: str,
        result: _Run,
        json_stream: bool,
        on_message: Callable[[dict[str, Any]], None] | None,
        bad_ui: str | None,
    ) -> str | None:
        if not json_stream:
            result.lines.append(line + "\n")
            return bad_ui
        msg = parse_line(line)
        if msg is None:
            return bad_ui
        kind = msg.get("type")
        if kind == "version" and ui_major(msg) != SUPPORTED_UI_MAJOR:
            bad_ui = str(msg.get("ui"))
        elif kind == "diagnostic":
            diag = Diagnostic.from_message(msg)
            result.diagnostics.append(diag)
            if diag.severity == "warning":
                self.progress.warn(diag.with_detail())
        if on_message is not None and bad_ui is None:
            on_message(msg)
        return bad_ui

    def _interrupted(self, proc: subprocess.Popen[bytes] | None, sig: _SigintState) -> Interrupted:
        if proc is not None and proc.returncode is None:
            err = Interrupted(
                f"interrupted: stopped waiting for {self._name} (pid {proc.pid}); it is still running "
                "and will save state when it stops",
                f"let it finish before the next run; if it dies holding the state lock, run "
                f"`{self._unlock_cmd()} <ID>` in {self.workdir} yourself",
            )
        else:
            code = proc.returncode if proc is not None else None
            err = Interrupted(
                f"interrupted: {self._name} stopped (exit {code}) and saved state",
                "run the same command again to continue (plan again before applying)",
            )
        err.pid = proc.pid if proc is not None else None  # type: ignore[attr-defined]
        err.still_running = proc is not None and proc.returncode is None  # type: ignore[attr-defined]
        return err

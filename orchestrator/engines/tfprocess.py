"""The terraform child process: one command at a time, its ``-json`` stream tailed from a file,
Ctrl-C forwarded exactly once, failures turned into ``TerraformError`` (``ProcessRunner``, the
base of ``Terraform``).

Terraform never outlives infra by accident. It runs under a small *keeper* (``_KEEPER``: this
interpreter with ``-I -S``, stdlib only), in its own session, which dies with infra: the keeper
asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), and on SIGTERM or
SIGINT it sends terraform exactly one SIGINT, as a Ctrl-C does, so terraform stops and saves its
state; it never sends a second one (terraform exits at once on a second interrupt, losing state).
So a ``kill -9`` of infra stops terraform cleanly, and stopping waiting after Ctrl-C (infra exits
on purpose) leaves it to finish saving state. While terraform runs, ``<log dir>/terraform-<pid>.running``
names it; the next run finds the file when infra died first (``live_terraform``, ``settle_orphans``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
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
from orchestrator.errors import Interrupted, LockedError, TerraformError
from orchestrator.progress import Progress
from orchestrator.secrets import redact_file
from orchestrator.workspace import private_dir, proc_start, read_json, write_private

INSTALL_HINT = "install Terraform >= 1.5 or OpenTofu, or set INFRA_TERRAFORM"
INTERRUPT_MESSAGE = (
    "interrupt received: waiting for terraform to stop and save state (Ctrl-C again to stop waiting)"
)


# The keeper: argv = [parent pid, binary, args...]; env carries INFRA_KEEPER_LC_CTYPE ("=" + the
# value, or "" when unset) because this interpreter coerces LC_CTYPE at start (PEP 538).
_KEEPER = r"""
import os, signal, sys
def pdeathsig(sig):
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
ctype = os.environ.pop("INFRA_KEEPER_LC_CTYPE", "")
if ctype:
    os.environ["LC_CTYPE"] = ctype[1:]
else:
    os.environ.pop("LC_CTYPE", None)
state = {"child": 0, "forwarded": False, "early": False}
def forward(signum, frame):
    if state["child"] and not state["forwarded"]:
        state["forwarded"] = True
        try:
            os.kill(state["child"], signal.SIGINT)
        except ProcessLookupError:
            pass
    elif not state["child"]:
        state["early"] = True
signal.signal(signal.SIGINT, forward)
signal.signal(signal.SIGTERM, forward)
pdeathsig(signal.SIGTERM)
mask = {signal.SIGINT, signal.SIGTERM}
signal.pthread_sigmask(signal.SIG_BLOCK, mask)  # from here a signal waits until the child is known
if os.getppid() != int(sys.argv[1]) or state["early"]:
    os._exit(130)  # infra is gone, or was interrupted already: never start terraform
argv = sys.argv[2:]
pid = os.fork()
if pid == 0:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    pdeathsig(signal.SIGTERM)  # a keeper killed outright still stops terraform
    signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        os.write(2, ("infra-keeper: cannot run %s: %s\n" % (argv[0], exc.strerror or exc)).encode())
    os._exit(127)
state["child"] = pid
signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)
while True:
    try:
        _, status = os.waitpid(pid, 0)
        break
    except ChildProcessError:
        os._exit(1)
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)
os._exit(os.waitstatus_to_exitcode(status))
"""
_CANNOT_RUN = "infra-keeper: cannot run "
RUNNING_GLOB = "terraform-*.running"
ORPHAN_WAIT_ENV = "INFRA_ORPHAN_WAIT"
ORPHAN_WAIT_S = 120.0


def keeper_argv(argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` under the keeper (see the module docstring)."""
    return [sys.executable, "-I", "-S", "-c", _KEEPER, str(os.getpid()), *argv]


def keeper_env(env: dict[str, str]) -> dict[str, str]:
    ctype = env.get("LC_CTYPE")
    return {**env, "INFRA_KEEPER_LC_CTYPE": "" if ctype is None else "=" + ctype}


# --- terraform left running by an earlier infra ------------------------------------------------


def _running(log_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    try:
        paths = sorted(Path(log_dir).glob(RUNNING_GLOB))
    except OSError:
        return []
    return [(path, read_json(path)) for path in paths]


def _alive(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    started = proc_start(pid)
    return started is not None and info.get("pid_start") in (None, started)


def _describe(info: dict[str, Any]) -> str:
    since = f", since {info['since']}" if info.get("since") else ""
    return (f"terraform {info.get('command') or '?'} (pid {info.get('pid')}), left running by an earlier "
            f"infra (pid {info.get('infra_pid', '?')}{since})")


def live_terraform(log_dir: Path | None) -> dict[str, Any] | None:
    """A terraform that an earlier infra process started in ``log_dir``'s environment and that still
    runs (its keeper: same pid and start time), or None."""
    if log_dir is None:
        return None
    for _path, info in _running(log_dir):
        if info.get("infra_pid") != os.getpid() and _alive(info):
            return info
    return None


def settle_orphans(log_dir: Path, warn: Callable[[str], None], *, lost: bool = False,
                   wait: float | None = None) -> None:
    """Before a run touches Terraform: a terraform that an earlier infra left running (killed with
    SIGKILL, or stopped waiting after Ctrl-C) has been told to stop and save state; wait for it
    (``wait`` seconds, default ``$INFRA_ORPHAN_WAIT`` or 120), then raise ``LockedError`` (exit 6)
    if it still runs: it holds the state, and no one may force-unlock it. Once it is gone, the
    logs it left unredacted are redacted (``lost``: every log of the environment, since a run
    killed before it could note its terraform may have left one too) and its note is removed."""
    entries = _running(log_dir)
    live = [info for _path, info in entries if _alive(info)]
    if live:
        if wait is None:
            try:
                wait = max(float(os.environ.get(ORPHAN_WAIT_ENV, ORPHAN_WAIT_S)), 0.0)
            except ValueError:
                wait = ORPHAN_WAIT_S
        warn(f"{_describe(live[0])} is still running: waiting up to {wait:g} s for it to save state and exit")
        deadline = time.monotonic() + wait
        while any(_alive(info) for info in live) and time.monotonic() < deadline:
            time.sleep(0.1)
        still = [info for info in live if _alive(info)]
        if still:
            raise LockedError(
                f"{_describe(still[0])} is still running and holds the environment's state",
                "it was told to stop and save its state: wait until that process has exited, then run again "
                "(its state lock must not be removed while it runs)",
            )
    logs = {Path(log_dir) / str(info["log"]) for _path, info in entries if info.get("log")}
    if lost:
        with contextlib.suppress(OSError):
            logs.update(Path(log_dir).glob("*.jsonl"))
    for log in sorted(logs):
        if log.parent == Path(log_dir) and log.is_file():
            redact_file(log)
    for path, _info in entries:
        path.unlink(missing_ok=True)


@dataclass
class _Run:
    returncode: int
    lines: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stderr: str = ""
    expected: frozenset[str] = frozenset()  # warning summaries the caller asked for: kept, not shown


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
        if isinstance(err, LockedError):
            orphan = live_terraform(self.log_dir)
            if orphan is not None:  # the holder is alive: force-unlock would corrupt the state
                err.hint = (f"{_describe(orphan)} is still running and holds it: wait until that process has "
                            "exited, then run again (the lock must not be removed while it runs)")
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
        expected_warnings: Sequence[str] = (),
    ) -> _Run:
        """Runs one command. stdout goes to a file (the JSON log when ``log_dir`` is set) that is
        tailed, not to a pipe: if we stop waiting after Ctrl-C and exit, terraform keeps a
        writable stdout and is not killed by SIGPIPE half-way through saving state.
        ``expected_warnings``: summaries of warnings the arguments cause (``-target``'s), kept in
        the diagnostics but not shown."""
        argv = [os.path.abspath(self.binary), *args]  # the keeper runs it from the working directory
        env = self.child_env()
        if not os.access(argv[0], os.X_OK):
            raise TerraformError(f"cannot run {self.binary}: not an executable file", INSTALL_HINT)
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
        running: Path | None = None
        result = _Run(returncode=-1, expected=frozenset(expected_warnings))
        try:
            with _open_private(out_path) as out, open(err_path, "wb") as err:
                try:
                    proc = subprocess.Popen(
                        keeper_argv(argv),  # dies with infra, stopping terraform with one SIGINT
                        cwd=self.workdir,
                        env=keeper_env(env),
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
            if self.log_dir is not None and out_path not in temps:  # a logged command (init, plan, apply):
                note = self.log_dir / f"terraform-{proc.pid}.running"  # removed once terraform has exited
                with contextlib.suppress(OSError):  # a note that cannot be written must not orphan terraform
                    running = write_private(note, json.dumps({
                        "pid": proc.pid, "pid_start": proc_start(proc.pid), "infra_pid": os.getpid(),
                        "command": args[0] if args else "", "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "log": Path(out_path).name,
                    }) + "\n")
            if sig.count:
                sig.forward_once()
            with open(out_path, encoding="utf-8", errors="replace") as reader:
                self._stream(proc, sig, result, reader, json_stream, on_message)
            if proc.returncode is not None:
                result.stderr = Path(err_path).read_text(encoding="utf-8", errors="replace")
                if proc.returncode == 127 and result.stderr.startswith(_CANNOT_RUN):
                    reason = result.stderr[len(_CANNOT_RUN):].splitlines()[0]
                    raise TerraformError(f"cannot run {reason}", INSTALL_HINT)
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
            if running is not None and proc is not None and proc.returncode is not None:
                running.unlink(missing_ok=True)
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
            if diag.severity == "warning" and diag.summary not in result.expected:
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

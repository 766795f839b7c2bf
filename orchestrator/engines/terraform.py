"""Runs terraform (or OpenTofu's ``tofu``) through its ``-json`` streams.

Every call gets ``-input=false`` and ``TF_IN_AUTOMATION=1``; plans are saved with
``-detailed-exitcode`` (0 = no changes, 2 = changes, 1 = error) and applied as files.
Ctrl-C forwards exactly one SIGINT to terraform and waits for it to save state; terraform is
never killed. Stream parsing lives in ``tfjson.py``.

Working files are owner-only: terraform runs with umask 077 (state, plan files, its data dir),
logs and the CLI config are written 0600 in folders created 0700. A saved plan lives no longer
than it is needed: removed when it holds no changes and once ``apply`` has used it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
    ApplyCollector,
    ApplyResult,
    Diagnostic,
    Outputs,
    PlanCollector,
    PlanResult,
    error_from_diagnostics,
    parse_line,
    stderr_warnings,
    summarize_stderr,
    ui_major,
)
from orchestrator.errors import Interrupted, TerraformError
from orchestrator.progress import NullProgress, Progress
from orchestrator.workspace import private_dir, write_private

__all__ = ["ApplyResult", "Diagnostic", "Outputs", "PlanResult", "Terraform", "find_binary"]

INSTALL_HINT = "install Terraform >= 1.5 or OpenTofu, or set INFRA_TERRAFORM"
INTERRUPT_MESSAGE = (
    "interrupt received: waiting for terraform to stop and save state (Ctrl-C again to stop waiting)"
)
CLI_CONFIG_NAME = "infra-cli.tfrc"


def find_binary(binary: str | None = None, env: dict[str, str] | None = None) -> str:
    """``binary``, else ``$INFRA_TERRAFORM``, else ``terraform`` on PATH, else ``tofu``."""
    env = dict(os.environ) if env is None else env
    wanted = binary or env.get("INFRA_TERRAFORM")
    if wanted:
        found = shutil.which(wanted, path=env.get("PATH"))
        if not found:
            source = "binary" if binary else "INFRA_TERRAFORM"
            raise TerraformError(f"{source}={wanted}: not found or not executable", INSTALL_HINT)
        return found
    for name in ("terraform", "tofu"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    raise TerraformError("neither terraform nor tofu was found on PATH", INSTALL_HINT)


def _hcl_string(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


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


class Terraform:
    """One root module in ``workdir``; see the module docstring for the rules every call follows."""

    def __init__(
        self,
        workdir: Path,
        *,
        data_dir: Path | None = None,
        binary: str | None = None,
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
        lock_timeout: str = "0s",
        lock: bool = True,
        log_dir: Path | None = None,
        config_dir: Path | None = None,
        interrupt_wait: float = 600.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.env = dict(env or {})
        self.progress = progress if progress is not None else NullProgress()
        self.lock_timeout = lock_timeout
        self.lock = lock
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.config_dir = Path(config_dir).resolve() if config_dir is not None else None
        self.interrupt_wait = interrupt_wait
        self._binary_arg = binary
        self._binary: str | None = None
        self._version: dict[str, Any] | None = None
        self.last_pid: int | None = None

    # --- environment ----------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_binary(self._binary_arg, {**os.environ, **self.env})
        return self._binary

    @property
    def _name(self) -> str:
        return "tofu" if "tofu" in Path(self.binary).name else "terraform"

    def cli_config_path(self) -> Path:
        base = self.config_dir or self.data_dir or self.workdir / ".terraform"
        return base / CLI_CONFIG_NAME

    def child_env(self) -> dict[str, str]:
        """The environment every terraform child gets (writes the mirror CLI config if needed)."""
        env = {**os.environ, **self.env}
        env["TF_IN_AUTOMATION"] = "1"
        env["CHECKPOINT_DISABLE"] = "1"
        if self.data_dir is not None:
            env["TF_DATA_DIR"] = str(self.data_dir)
        mirror = env.get("INFRA_TF_PLUGIN_MIRROR")
        if mirror:
            env["TF_CLI_CONFIG_FILE"] = str(self._write_cli_config(Path(mirror)))
        else:
            configured = env.get("TF_CLI_CONFIG_FILE")
            exists = bool(configured) and (self.workdir / Path(configured).expanduser()).is_file()
            if configured is not None and not exists:
                del env["TF_CLI_CONFIG_FILE"]  # a missing file only earns a warning on every call
        return env

    def _write_cli_config(self, mirror: Path) -> Path:
        mirror = mirror.expanduser().resolve()
        if not mirror.is_dir():
            raise TerraformError(
                f"INFRA_TF_PLUGIN_MIRROR={mirror} is not a directory",
                "point it at a provider mirror (registry.terraform.io/<namespace>/<type>/...) or unset it",
            )
        path = self.cli_config_path()
        text = (
            "# written by infra from INFRA_TF_PLUGIN_MIRROR\n"
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f"    path    = {_hcl_string(str(mirror))}\n"
            '    include = ["registry.terraform.io/*/*"]\n'
            "  }\n"
            "  direct {\n"
            '    exclude = ["registry.terraform.io/*/*"]\n'
            "  }\n"
            "}\n"
        )
        if not path.is_file() or path.read_text() != text or path.stat().st_mode & 0o077:
            write_private(path, text)
        return path

    # --- commands -------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """``terraform version -json``: ``terraform_version``, ``provider_selections`` (after init)."""
        run = self._run(["version", "-json"], log_name=None, json_stream=False)
        self._raise_on_failure(run, "version")
        try:
            self._version = json.loads("".join(run.lines))
        except ValueError as exc:
            raise TerraformError(f"{self.binary} version -json printed no JSON", INSTALL_HINT) from exc
        return self._version

    def _init_supports_json(self) -> bool:
        if self._name != "terraform":
            return False
        version = self._version if self._version is not None else self.version()
        parts = str(version.get("terraform_version", "0.0")).split(".")
        try:
            return (int(parts[0]), int(parts[1])) >= (1, 9)
        except (ValueError, IndexError):
            return False

    def init(self, backend_config: dict[str, str] | None = None, upgrade: bool = False) -> None:
        as_json = self._init_supports_json()
        args = ["init", "-input=false", "-json" if as_json else "-no-color"]
        args += [f"-backend-config={k}={v}" for k, v in (backend_config or {}).items()]
        if upgrade:
            args.append("-upgrade")

        def on_message(msg: dict[str, Any]) -> None:
            if msg.get("type") == "log" and msg.get("@message"):
                self.progress.info(str(msg["@message"]))

        run = self._run(args, log_name="init", json_stream=as_json, on_message=on_message)
        self._raise_on_failure(run, "init")
        lock_file = self.workdir / ".terraform.lock.hcl"  # terraform writes it 0644 whatever the umask:
        if lock_file.is_file():  # committable beside build/, owner-only in a private sandbox copy
            os.chmod(lock_file, 0o644 if self.workdir.stat().st_mode & 0o044 else 0o600)

    def plan(self, plan_file: Path, destroy: bool = False, var_file: Path | None = None) -> PlanResult:
        plan_file = Path(plan_file).resolve()
        private_dir(plan_file.parent)
        plan_file.unlink(missing_ok=True)  # terraform would keep an old file's mode; a failed plan leaves none
        args = ["plan", "-input=false", "-json", "-detailed-exitcode", f"-out={plan_file}"]
        args.append(f"-lock-timeout={self.lock_timeout}" if self.lock else "-lock=false")
        if destroy:
            args.append("-destroy")
        if var_file is not None:
            args.append(f"-var-file={Path(var_file).resolve()}")
        collector = PlanCollector()
        run = self._run(args, log_name="plan-destroy" if destroy else "plan", on_message=collector.feed)
        if run.returncode not in (0, 2):
            self._raise_on_failure(run, "plan")
        result = collector.result(run.returncode == 2, run.diagnostics)
        result.plan_file = plan_file if result.has_changes else None
        if not result.has_changes:
            plan_file.unlink(missing_ok=True)  # nothing to apply: keep nothing
        if collector.summary_message:
            self.progress.info(str(collector.summary_message))
        return result

    def apply(self, plan_file: Path, total: int | None = None) -> ApplyResult:
        """Applies a saved plan; ``total`` (e.g. ``PlanResult.steps``) sizes the progress bar."""
        plan_file = Path(plan_file).resolve()
        if not plan_file.is_file():
            raise TerraformError(f"plan file {plan_file} does not exist", "run plan first")
        lock_arg = f"-lock-timeout={self.lock_timeout}" if self.lock else "-lock=false"
        args = ["apply", "-input=false", "-json", lock_arg, str(plan_file)]
        collector = ApplyCollector(self.progress, total)
        started = time.monotonic()
        try:
            run = self._run(args, log_name="apply", on_message=collector.feed)
        except Interrupted as err:
            if not getattr(err, "still_running", False):
                plan_file.unlink(missing_ok=True)
            raise
        finally:
            collector.result.duration_s = time.monotonic() - started
            if collector.started:
                self.progress.close()
        plan_file.unlink(missing_ok=True)  # applied, or stale after a failed apply: good for one apply only
        result = collector.result
        result.diagnostics = run.diagnostics
        if run.returncode != 0:
            try:
                self._raise_on_failure(run, "apply")
            except TerraformError as err:
                err.result = result  # type: ignore[attr-defined]
                raise
        self.progress.done(
            f"Resources: {result.add} added, {result.change} changed, {result.destroy} destroyed."
        )
        return result

    def destroy(self, plan_file: Path, var_file: Path | None = None) -> ApplyResult:
        """Plans a destroy into ``plan_file`` and applies it (nothing to destroy: an empty result)."""
        plan = self.plan(plan_file, destroy=True, var_file=var_file)
        if not plan.has_changes:
            return ApplyResult()
        return self.apply(plan_file, total=plan.steps)

    def output(self) -> Outputs:
        run = self._run(["output", "-json", "-no-color"], log_name=None, json_stream=False)
        self._raise_on_failure(run, "output")
        text = "".join(run.lines).strip() or "{}"
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise TerraformError(f"{self._name} output -json printed invalid JSON") from exc
        values = {name: o.get("value") for name, o in raw.items()}
        return Outputs(values, {name for name, o in raw.items() if o.get("sensitive")})

    def show_plan_json(self, plan_file: Path) -> dict[str, Any]:
        plan_file = Path(plan_file).resolve()
        run = self._run(["show", "-json", "-no-color", str(plan_file)], log_name=None, json_stream=False)
        self._raise_on_failure(run, "show")
        try:
            return json.loads("".join(run.lines))
        except ValueError as exc:
            raise TerraformError(f"{self._name} show -json printed invalid JSON") from exc

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

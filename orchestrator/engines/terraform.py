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
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.engines.tfjson import (
    ApplyCollector,
    ApplyResult,
    Diagnostic,
    Outputs,
    PlanApplyCollector,
    PlanCollector,
    PlanResult,
    drift_attributes,
)
from orchestrator.engines.tfprocess import INSTALL_HINT, INTERRUPT_MESSAGE, ProcessRunner
from orchestrator.errors import Interrupted, TerraformError
from orchestrator.progress import NullProgress, Progress
from orchestrator.workspace import private_dir, write_private

__all__ = [
    "INSTALL_HINT", "INTERRUPT_MESSAGE", "ApplyResult", "Diagnostic", "Outputs", "PlanResult", "Terraform",
    "find_binary",
]

CLI_CONFIG_NAME = "infra-cli.tfrc"
# Beside the state (the environment's folder): the provider mirror the last init used.
REMEMBERED_MIRROR = "tf-mirror"
# In the data dir: the hash of init's inputs (init runs again only when it changes).
INIT_STAMP = "infra-init.sha256"
# In the data dir: `version -json`'s answer and what it depends on (Terraform.version).
VERSION_CACHE = "infra-version.json"
# What Terraform warns on every ``-target`` run: expected for the refresh after an apply, not shown.
TARGET_WARNINGS = ("Resource targeting is in effect", "Applied changes may be incomplete")


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


_INIT_REQUIRED = ("terraform init", "Backend initialization required", "Module not installed",
                  "Inconsistent dependency lock file", "Required plugins are not installed")


# "provider <host>/hashicorp/azurerm was not found in any of the search locations": group 1 is
# namespace/type (the host is left out of our messages).
_MISSING_PROVIDER = re.compile(r"provider (?:[\w.-]+/)?([\w-]+/[\w-]+) was not found in any of the search locations")


def _needs_init(run) -> bool:
    """Terraform says initialisation is required (the data dir was lost or is stale)."""
    text = " ".join([run.stderr, *(f"{getattr(d, 'summary', '')} {getattr(d, 'detail', '')}" for d in run.diagnostics)])
    return any(marker in text for marker in _INIT_REQUIRED)


def _hcl_string(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


class Terraform(ProcessRunner):
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
        self._init_args: dict[str, str] | None = None
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
        mirror = env.get("INFRA_TF_PLUGIN_MIRROR") or self.remembered_mirror()
        if mirror:
            env["TF_CLI_CONFIG_FILE"] = str(self._write_cli_config(Path(mirror)))
        else:
            configured = env.get("TF_CLI_CONFIG_FILE")
            exists = bool(configured) and (self.workdir / Path(configured).expanduser()).is_file()
            if configured is not None and not exists:
                del env["TF_CLI_CONFIG_FILE"]  # a missing file only earns a warning on every call
        return env

    def _remembered_path(self) -> Path | None:
        base = self.config_dir or self.data_dir
        return base / REMEMBERED_MIRROR if base is not None else None

    def remembered_mirror(self) -> str | None:
        """The provider mirror the last successful init used (beside the state), if it still exists."""
        path = self._remembered_path()
        if path is None or not path.is_file():
            return None
        value = path.read_text().strip()
        return value if value and Path(value).is_dir() else None

    def _init_inputs(self, backend_config: dict[str, str], mirror: str | None, cli_config: str | None = None) -> str:
        """A hash of what init depends on: every .tf file (providers, backend, module sources),
        the backend settings, the mirror, the CLI configuration and the lock file."""
        digest = hashlib.sha256()
        skip = {".terraform"} | ({self.data_dir.name} if self.data_dir is not None else set())
        for path in sorted(self.workdir.rglob("*")):
            rel = path.relative_to(self.workdir)
            if rel.parts[0] in skip or not path.is_file():
                continue
            if path.name.endswith((".tf", ".tf.json")) or path.name == ".terraform.lock.hcl":
                digest.update(f"{rel.as_posix()}\0".encode() + path.read_bytes() + b"\0")
        config = Path(self.workdir, cli_config).expanduser() if cli_config else None
        config_text = config.read_text(errors="replace") if config is not None and config.is_file() else None
        digest.update(json.dumps([sorted(backend_config.items()), mirror, self.binary, config_text]).encode())
        return digest.hexdigest()

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
        """``terraform version -json``: ``terraform_version``, ``provider_selections`` (after init).
        Kept in the data dir (VERSION_CACHE) for as long as what it depends on is unchanged: the
        binary (path, size, modification time), the dependency lock file and init's inputs; one
        process fewer per run."""
        key = self._version_key()
        cache = (self.data_dir or self.workdir / ".terraform") / VERSION_CACHE
        if key is not None:
            with contextlib.suppress(OSError, ValueError):
                cached = json.loads(cache.read_text(encoding="utf-8"))
                if isinstance(cached, dict) and cached.get("key") == key and isinstance(cached.get("version"), dict):
                    self._version = cached["version"]
                    return self._version
        run = self._run(["version", "-json"], log_name=None, json_stream=False)
        self._raise_on_failure(run, "version")
        try:
            self._version = json.loads("".join(run.lines))
        except ValueError as exc:
            raise TerraformError(f"{self.binary} version -json printed no JSON", INSTALL_HINT) from exc
        if key is not None and isinstance(self._version, dict):
            with contextlib.suppress(OSError):
                write_private(cache, json.dumps({"key": key, "version": self._version}) + "\n")
        return self._version

    def _version_key(self) -> str | None:
        """What ``version -json`` says depends on; None before init (nothing is kept then)."""
        data_dir = self.data_dir or self.workdir / ".terraform"
        try:
            binary = Path(self.binary).resolve()
            st = binary.stat()
            stamp = (data_dir / INIT_STAMP).read_bytes()
        except OSError:
            return None
        lock_file = self.workdir / ".terraform.lock.hcl"
        lock = lock_file.read_bytes() if lock_file.is_file() else b""
        digest = hashlib.sha256(f"{binary}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        for part in (stamp, lock):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()

    def _init_supports_json(self) -> bool:
        if self._name != "terraform":
            return False
        version = self._version if self._version is not None else self.version()
        parts = str(version.get("terraform_version", "0.0")).split(".")
        try:
            return (int(parts[0]), int(parts[1])) >= (1, 9)
        except (ValueError, IndexError):
            return False

    def init(self, backend_config: dict[str, str] | None = None, upgrade: bool = False, force: bool = False) -> bool:
        """``terraform init`` when its inputs changed (or ``force``/``upgrade``); False when skipped."""
        env = self.child_env()
        mirror = env.get("INFRA_TF_PLUGIN_MIRROR") or self.remembered_mirror()
        inputs = self._init_inputs(backend_config or {}, mirror, env.get("TF_CLI_CONFIG_FILE"))
        stamp = (self.data_dir or self.workdir / ".terraform") / INIT_STAMP
        self._init_args = dict(backend_config or {})
        if not (force or upgrade) and stamp.is_file() and stamp.read_text() == inputs:
            self.progress.info(f"{self._name} init skipped: its inputs are unchanged")
            return False
        self._init(backend_config, upgrade)
        write_private(stamp, inputs)
        remembered = self._remembered_path()
        if mirror and remembered is not None:
            write_private(remembered, str(Path(mirror).expanduser().resolve()) + "\n")
        return True

    def _init(self, backend_config: dict[str, str] | None, upgrade: bool) -> None:
        as_json = self._init_supports_json()
        args = ["init", "-input=false", "-json" if as_json else "-no-color"]
        args += [f"-backend-config={k}={v}" for k, v in (backend_config or {}).items()]
        if upgrade:
            args.append("-upgrade")

        def on_message(msg: dict[str, Any]) -> None:
            if msg.get("type") == "log" and msg.get("@message"):
                self.progress.info(str(msg["@message"]))

        run = self._run(args, log_name="init", json_stream=as_json, on_message=on_message)
        try:
            self._raise_on_failure(run, "init")
        except TerraformError as exc:
            text = " ".join([exc.message, run.stderr, *(f"{getattr(d, 'summary', '')} {getattr(d, 'detail', '')}"
                                                         for d in run.diagnostics)])
            mirror = self.child_env().get("INFRA_TF_PLUGIN_MIRROR") or self.remembered_mirror()
            missing = _MISSING_PROVIDER.search(text)
            if mirror and missing:
                raise TerraformError(
                    f"{self._name} init: provider {missing.group(1)} is not in the provider mirror {mirror}",
                    f"add it to the mirror (`{self._name} providers mirror DIR` on a machine that can download it) "
                    "or unset INFRA_TF_PLUGIN_MIRROR to download it",
                ) from exc
            if "Failed to query available provider packages" in text or "could not connect" in text:
                raise TerraformError(
                    f"{self._name} init could not reach the provider registry: {exc.message}",
                    "set INFRA_TF_PLUGIN_MIRROR to a local provider mirror (scripts/find-tf-mirror finds one) "
                    "or allow access to the registry",
                ) from exc
            raise
        lock_file = self.workdir / ".terraform.lock.hcl"  # terraform writes it 0644 whatever the umask:
        if lock_file.is_file():  # committable beside build/, owner-only in a private sandbox copy
            os.chmod(lock_file, 0o644 if self.workdir.stat().st_mode & 0o044 else 0o600)

    def plan(self, plan_file: Path, destroy: bool = False, var_file: Path | None = None,
             refresh_only: bool = False) -> PlanResult:
        """A saved plan. ``refresh_only``: what changed outside Terraform (``PlanResult.drift``, from
        the ``resource_drift`` messages); it has changes only when something drifted (Terraform's
        exit code 2 also counts state-only differences that it reports as "No changes"), and its
        plan file is never kept: drift is reported, never applied from here."""
        plan_file = Path(plan_file).resolve()
        private_dir(plan_file.parent)
        plan_file.unlink(missing_ok=True)  # terraform would keep an old file's mode; a failed plan leaves none
        args = ["plan", "-input=false", "-json", "-detailed-exitcode", f"-out={plan_file}"]
        args.append(f"-lock-timeout={self.lock_timeout}" if self.lock else "-lock=false")
        if destroy:
            args.append("-destroy")
        if refresh_only:
            args.append("-refresh-only")
        if var_file is not None:
            args.append(f"-var-file={Path(var_file).resolve()}")
        collector = PlanCollector()
        run = self._run(args, log_name="plan-destroy" if destroy else "plan", on_message=collector.feed)
        if run.returncode not in (0, 2) and self._init_args is not None and _needs_init(run):
            self.init(self._init_args, force=True)  # the init skipped as unchanged was not enough
            collector = PlanCollector()
            run = self._run(args, log_name="plan-destroy" if destroy else "plan", on_message=collector.feed)
        if run.returncode not in (0, 2):
            self._raise_on_failure(run, "plan")
        result = collector.result(bool(collector.drift) if refresh_only else run.returncode == 2, run.diagnostics)
        if refresh_only and result.has_changes:  # which attributes drifted: read from the plan before it goes
            result.drift_attributes = drift_attributes(self.show_plan_json(plan_file))
        result.plan_file = plan_file if result.has_changes and not refresh_only else None
        if result.plan_file is None:
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
        return self._applied(run, collector.result)

    def _applied(self, run: Any, result: ApplyResult, announce: bool = True) -> ApplyResult:
        """An apply's result with its diagnostics; a failed one raises, carrying it (``err.result``)."""
        result.diagnostics = run.diagnostics
        if run.returncode != 0:
            try:
                self._raise_on_failure(run, "apply")
            except TerraformError as err:
                err.result = result  # type: ignore[attr-defined]
                raise
        if announce:
            self.progress.done(
                f"Resources: {result.add} added, {result.change} changed, {result.destroy} destroyed."
            )
        return result

    def plan_and_apply(self, on_plan: Callable[[PlanResult], None], *, destroy: bool = False,
                       var_file: Path | None = None) -> tuple[PlanResult, ApplyResult]:
        """``apply -auto-approve`` (``-destroy``: everything) without a saved plan: Terraform plans and
        applies in one process, one provider start and one state read fewer than ``plan`` then
        ``apply PLANFILE`` (issue 24). Only for a caller that approves whatever the plan holds
        (``--auto-approve``): ``on_plan`` gets the plan as soon as Terraform has made it, to show and
        record it, while Terraform goes on to apply it. A failure before the plan was made is a
        ``plan`` failure (and a stale data dir gets one more ``init``, as for ``plan``); after it,
        an ``apply`` failure carrying what was applied (``err.result``)."""
        lock_arg = f"-lock-timeout={self.lock_timeout}" if self.lock else "-lock=false"
        args = ["apply", "-auto-approve", "-input=false", "-json", lock_arg]
        if destroy:
            args.append("-destroy")
        if var_file is not None:
            args.append(f"-var-file={Path(var_file).resolve()}")
        collector = PlanApplyCollector(self.progress, on_plan)
        started = time.monotonic()
        try:
            run = self._run(args, log_name="apply", on_message=collector.feed)
            if run.returncode != 0 and not collector.planned and self._init_args is not None and _needs_init(run):
                self.init(self._init_args, force=True)  # the init skipped as unchanged was not enough
                collector = PlanApplyCollector(self.progress, on_plan)
                run = self._run(args, log_name="apply", on_message=collector.feed)
            collector.finish()
        finally:
            if collector.apply_part is not None:
                collector.apply_part.result.duration_s = time.monotonic() - started
                if collector.apply_part.started:
                    self.progress.close()
        if collector.plan is None or collector.apply_part is None:
            self._raise_on_failure(run, "plan")
            raise TerraformError(f"{self._name} apply said nothing about its plan (exit {run.returncode})")
        return collector.plan, self._applied(run, collector.apply_part.result, announce=collector.plan.has_changes)

    def refresh_state(self, targets: Sequence[str] = ()) -> None:
        """``apply -refresh-only -auto-approve``: the state takes what the objects are now, changing
        none of them. Run right after an apply, so that attributes one resource sets on another (a
        route in a route table, a rule in a security group) are in the state and the next
        refresh-only plan (``infra drift``) reports only what changed outside Terraform. ``targets``
        (resource addresses): only those and what they depend on (``-target``)."""
        lock_arg = f"-lock-timeout={self.lock_timeout}" if self.lock else "-lock=false"
        run = self._run(["apply", "-refresh-only", "-auto-approve", "-input=false", "-json", lock_arg,
                         *(f"-target={t}" for t in targets)],
                        log_name="refresh", expected_warnings=TARGET_WARNINGS if targets else ())
        self._raise_on_failure(run, "apply -refresh-only")

    def destroy(self, plan_file: Path, var_file: Path | None = None) -> ApplyResult:
        """Plans a destroy into ``plan_file`` and applies it (nothing to destroy: an empty result)."""
        plan = self.plan(plan_file, destroy=True, var_file=var_file)
        if not plan.has_changes:
            return ApplyResult()
        return self.apply(plan_file, total=plan.steps)

    def _pull_state(self) -> dict[str, Any] | None:
        """The current state (``state pull``, any backend), None while there is none yet. Neither
        kept nor logged (it holds values)."""
        run = self._run(["state", "pull"], log_name=None, json_stream=False)
        self._raise_on_failure(run, "state pull")
        text = "".join(run.lines).strip()
        if not text:
            return None
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise TerraformError(f"{self._name} state pull printed invalid JSON") from exc
        if not isinstance(state, dict):
            raise TerraformError(f"{self._name} state pull printed no state")
        return state

    def state_meta(self) -> tuple[int | None, str | None]:
        """``(serial, lineage)`` of the current state; ``(None, None)`` while there is none yet."""
        state = self._pull_state()
        if state is None:
            return None, None
        serial, lineage = state.get("serial"), state.get("lineage")
        return (serial if isinstance(serial, int) else None), (lineage if isinstance(lineage, str) else None)

    def managed_resources(self) -> int:
        """How many managed resources the state holds (0: never applied, or destroyed)."""
        return sum(1 for r in self.state_resources() if r.get("mode") == "managed")

    def state_resources(self) -> list[dict[str, Any]]:
        """The state's resources (``state pull``): ``mode``, ``type``, ``name``, ``module`` (absent
        at the root) each; their instances' values are the caller's to leave alone."""
        state = self._pull_state() or {}
        return [r for r in state.get("resources") or [] if isinstance(r, dict)]

    def output(self) -> Outputs:
        """The root module's outputs: ``terraform output -json``, or for a local state (the backend
        config's ``path``) the same entries read from the state file itself (format version 4:
        ``outputs`` holds ``{name: {value, type, sensitive}}``, what ``output -json`` prints), one
        file read instead of a process that starts the provider to load its schema (about 1 s).
        Read under infra's lock, after Terraform has exited or while it only plans."""
        raw = self._local_state_outputs()
        if raw is None:
            run = self._run(["output", "-json", "-no-color"], log_name=None, json_stream=False)
            self._raise_on_failure(run, "output")
            text = "".join(run.lines).strip() or "{}"
            try:
                raw = json.loads(text)
            except ValueError as exc:
                raise TerraformError(f"{self._name} output -json printed invalid JSON") from exc
        values = {name: o.get("value") for name, o in raw.items()}
        return Outputs(values, {name for name, o in raw.items() if o.get("sensitive")})

    def _local_state_outputs(self) -> dict[str, Any] | None:
        """The outputs of a local state file this can read (None: another backend, no state yet, or a
        format other than version 4: ``terraform output`` reads those)."""
        path = (self._init_args or {}).get("path")
        if not path:
            return None
        try:
            state = json.loads((self.workdir / path).read_text(encoding="utf-8"))  # (an absolute path stays)
        except (OSError, ValueError):
            return None
        outputs = state.get("outputs") if isinstance(state, dict) and state.get("version") == 4 else None
        if not isinstance(outputs, dict) or not all(isinstance(o, dict) for o in outputs.values()):
            return None
        return outputs

    def show_plan_json(self, plan_file: Path) -> dict[str, Any]:
        plan_file = Path(plan_file).resolve()
        run = self._run(["show", "-json", "-no-color", str(plan_file)], log_name=None, json_stream=False)
        self._raise_on_failure(run, "show")
        try:
            return json.loads("".join(run.lines))
        except ValueError as exc:
            raise TerraformError(f"{self._name} show -json printed invalid JSON") from exc


"""Runs playbooks through ansible-runner, streaming events into the shared progress display.

Tuned for fan-out: forks sized to the host count (capped), SSH pipelining and ControlPersist,
a minimal fact subset cached as JSON under ``.infra/`` (``smart`` gathering: a second run does
not gather again). Host keys are accepted on first contact and pinned in a per-environment
``known_hosts``; a changed key fails the host.

SSH connections are shared within one run only: each run's ControlPath sockets live in a folder
of its own (``ssh_control_dir``) and the run closes its master connections when it ends, so a
host whose sshd died since the last run is seen as unreachable by the next one instead of being
reached through a master connection kept from before.

Artifacts (events, stdout) stay under the private data dir with rotation. They never hold
secrets: no env files are written (``suppress_env_files``), the SSH key reaches ssh-agent
through a FIFO that is removed at once, extra variables go through private ``!unsafe`` copies
deleted after the run, tasks that handle secrets use ``no_log``, and the environment that ansible-runner records in each
artifact's ``command`` file is cut down to the variables this engine set.

Progress: one line per task (``[12/?] common : Load kernel modules: ok=3 changed=1``), the
current host and task on the live bar, a per-host recap at the end.

ansible-playbook never outlives infra: ansible-runner starts it in a session of its own (a pty,
SIGHUP ignored), so a killed infra would leave it running. Each run therefore starts a watchdog
(``_WATCHDOG``: this interpreter, stdlib only) that reads a pipe from infra; when the pipe closes
without the run having finished (infra killed, or an exception), it sends SIGTERM to every
process that carries the run's token in its environment (ansible-playbook forwards it to its
workers), then SIGKILL to what is left after 5 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import paths
from orchestrator.engines.ansible_events import (  # noqa: F401 - the engine's results, re-exported
    AnsibleResult,
    AnsibleRunError,
    EventCollector,
    Failure,
    HostStats,
)
from orchestrator.errors import AnsibleError, Interrupted
from orchestrator.progress import NullProgress, Progress
from orchestrator.workspace import private_tree, write_private

__all__ = ["Ansible", "AnsibleResult", "AnsibleRunError", "Failure", "HostStats", "SshSettings", "forks_for"]
FORKS_CAP = 20
KEEP_ARTIFACTS = 10
FACT_CACHE_SECONDS = 3600
# What the roles read from facts; everything else (hardware, network, mounts) is slow to gather.
GATHER_SUBSET = "!all,!min,platform,distribution,pkg_mgr,service_mgr,python,chroot,virtual"
INSTALL_HINT = "install the ansible extra: pip install 'infra-orchestrator[ansible]'"
# Site variables renamed to their role's prefix (ansible-lint's production profile): the old
# names still work for one release (the roles' defaults fall back to them); infra warns.
RENAMED_SITE_VARS = {
    "kubernetes_repo_base": "kubernetes_node_repo_base",
    "kubernetes_install_packages": "kubernetes_node_install_packages",
    "kubernetes_patch_version": "kubernetes_node_patch_version",
    "nvidia_driver_branch": "nvidia_gpu_driver_branch",
    "nvidia_driver_source": "nvidia_gpu_driver_source",
    "nvidia_driver_open": "nvidia_gpu_driver_open",
    "nvidia_driver_skip_reboot": "nvidia_gpu_driver_skip_reboot",
    "nvidia_cuda_repo_base": "nvidia_gpu_cuda_repo_base",
    "nvidia_mig_manager_release_base": "nvidia_gpu_mig_manager_release_base",
    "nvidia_container_toolkit_repo": "container_runtime_nvidia_container_toolkit_repo",
}
# Site variables that now belong in the blueprint: they still override it for one release, with a warning.
BLUEPRINT_SITE_VARS = {
    "kubernetes_node_patch_version": 'kubernetes.version in the blueprint (e.g. "1.30.2")',
    "kubernetes_patch_version": 'kubernetes.version in the blueprint (e.g. "1.30.2")',
}


WATCH_ENV = "INFRA_ANSIBLE_RUN"  # the run's token, inherited by every process of the run
_WATCHDOG = r"""
import os, signal, sys, time
if sys.stdin.buffer.read() == b"done":
    os._exit(0)
entry = b"%s=%s" % (sys.argv[1].encode(), sys.argv[2].encode())
def ours():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open("/proc/%s/environ" % name, "rb") as fh:
                    if entry in fh.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found
for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    pids = ours()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline and ours():
        time.sleep(0.05)
"""


def _watchdog(token: str) -> subprocess.Popen[bytes] | None:
    """The watchdog of one run (see the module docstring); None where it cannot start."""
    try:
        return subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, WATCH_ENV, token],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return None


def _release(watchdog: subprocess.Popen[bytes] | None, finished: bool) -> None:
    """Tell the watchdog the run is over: ``finished`` (nothing left to stop), else stop what is left."""
    if watchdog is None or watchdog.stdin is None:
        return
    with contextlib.suppress(OSError):
        watchdog.stdin.write(b"done" if finished else b"")
        watchdog.stdin.close()
    if finished:
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=10)


def ssh_control_dir() -> Path:
    """A private folder (0700) for one run's SSH ControlPath sockets, under the system's temp
    folder: a socket path must stay short (108 bytes on Linux), and no run reuses another's."""
    return Path(tempfile.mkdtemp(prefix="infra-ssh-"))


def close_ssh_masters(control_dir: Path, timeout: float = 10.0) -> None:
    """Stop the master connections a run left behind (``ssh -O exit`` on each ControlPath socket),
    then remove the folder: the next run opens fresh connections and sees a host that went away."""
    procs = []
    for sock in sorted(control_dir.iterdir()) if control_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            procs.append(subprocess.Popen(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit",
                                           "infra-run-end"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(control_dir, ignore_errors=True)


def _scrub_command_file(path: Path, keep: set[str]) -> None:
    """ansible-runner records the whole controller environment in ``command``; keep only ours."""
    try:
        data = json.loads(path.read_text())
    except OSError:
        return
    except ValueError:
        path.unlink()
        return
    data["env"] = {k: v for k, v in (data.get("env") or {}).items() if k in keep or k in ("PATH", "HOME", "LANG")}
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def allowed_site_vars(project_dir: Path | None = None) -> frozenset[str]:
    """What a site variables file may set: the top-level names of every role's ``defaults/main.yml``
    under ``project_dir`` (the shipped ``ansible/`` folder by default), so that a new role variable
    needs no code change, and the old names of ``RENAMED_SITE_VARS``; never an ``ansible_*`` name."""
    import yaml

    roles = Path(project_dir or paths.ansible()) / "roles"
    names = set(RENAMED_SITE_VARS)
    for defaults in sorted(roles.glob("*/defaults/main.yml")):
        data = yaml.safe_load(defaults.read_text(encoding="utf-8"))  # our own files, shipped with infra
        names.update(k for k in (data or {}) if isinstance(k, str))
    return frozenset(n for n in names if not _ansible_own(n))


def _ansible_own(name: str) -> bool:
    """Ansible's own variables: connection, interpreter, become, shell and behaviour settings
    (``ansible_ssh_common_args``, ``ansible_python_interpreter``, ``ansible_become_exe``, ...),
    which run commands on the controller or change what runs on the host. Never data."""
    return name.lower().startswith("ansible_")


def site_var_problems(path: Path, text: str, data: dict[str, Any], allowed: frozenset[str] | None) -> list[Any]:
    """One located problem (``FILE:LINE:COL KEY: ...``) per key of ``data`` a site file may not set:
    an ``ansible_*`` variable always; with ``allowed``, any name outside it."""
    import difflib

    import yaml

    from orchestrator.blueprint.yamlpos import printable
    from orchestrator.errors import Problem

    bad = {k: ("an Ansible connection, interpreter, become or behaviour variable: never taken from a site "
               "file (it would change how and where Ansible runs commands)") for k in data if _ansible_own(k)}
    for key in data:
        if allowed is not None and key not in allowed and key not in bad:
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.8)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            bad[key] = (f"not a role variable{hint}: a site file may set only the variables in "
                        "ansible/roles/*/defaults/main.yml (docs/ansible.md, \"Site variables\")")
    if not bad:
        return []
    marks: dict[str, tuple[int, int]] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # parsed once already: only to locate the keys
    for key_node, value_node in getattr(root, "value", ()):
        where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys are located at the `<<`
            for node in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                for merged, _ in getattr(node, "value", ()):
                    marks.setdefault(str(merged.value), where)
        else:
            marks[str(key_node.value)] = where  # a key given again wins, as in the data
    found = [Problem(printable(str(path)), *marks.get(key, (1, 1)), printable(key, 80), why)
             for key, why in bad.items()]
    return sorted(found, key=lambda p: (p.line, p.column))


def load_site_vars(path: Path, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """A site variables file (YAML mapping), read within the blueprint loader's bounds; a bad file
    is bad input (exit 2) named with its line and column, before Ansible starts. A key it may not set
    (``site_var_problems``: ``ansible_*`` always, and names outside ``allowed`` when given) is a
    :class:`BlueprintError` located at the key."""
    import yaml

    from orchestrator.blueprint.files import FileProblem, read_text
    from orchestrator.errors import BlueprintError, UsageError

    try:
        text = read_text(path)
        data = yaml.safe_load(text)
    except FileProblem as exc:
        where = f"{path}:{exc.line}:{exc.column}" if exc.line else str(path)
        raise UsageError(f"{where}: cannot read extra variables file: {exc.reason}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise UsageError(f"{where}: extra variables file is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(f"{path}: extra variables file must be a mapping of variable names to values")
    problems = site_var_problems(path, text, data, allowed)
    if problems:
        raise BlueprintError(problems, hint="site variables are data: set role variables only "
                                            "(docs/security.md, \"Site-variables files are data too\")")
    return data


def forks_for(host_count: int, cap: int = FORKS_CAP) -> int:
    return max(1, min(host_count, cap))


@dataclass
class SshSettings:
    """How to reach hosts: a key file, or key data handed to ssh-agent (never written to disk)."""

    private_key_file: str | None = None
    key_data: str | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 10
    # Within one run: a master outlives a gap between a host's tasks (other hosts' slow tasks).
    # Runs never share masters (see the module docstring), so this never hides a dead host.
    control_persist: str = "60s"


class Ansible:
    """One private data dir (``.infra/env/<name>/ansible``): artifacts, fact cache, known_hosts."""

    def __init__(self, private_dir: Path, *, progress: Progress | None = None, ssh: SshSettings | None = None,
                 forks_cap: int = FORKS_CAP, keep_artifacts: int = KEEP_ARTIFACTS,
                 fact_cache_seconds: int = FACT_CACHE_SECONDS, project_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.private_dir = Path(private_dir).resolve()
        self.progress = progress if progress is not None else NullProgress()
        self.ssh = ssh or SshSettings()
        self.forks_cap = forks_cap
        self.keep_artifacts = keep_artifacts
        self.fact_cache_seconds = fact_cache_seconds
        self.project_dir = Path(project_dir or paths.ansible()).resolve()
        self.env = dict(env or {})

    @property
    def artifacts_dir(self) -> Path:
        return self.private_dir / "artifacts"

    @property
    def fact_cache_dir(self) -> Path:
        return self.private_dir / "facts"

    @property
    def known_hosts(self) -> Path:
        return self.ssh.known_hosts or self.private_dir / "known_hosts"

    @staticmethod
    def version() -> str | None:
        try:
            from ansible.release import __version__
        except ImportError:
            return None
        return str(__version__)

    def envvars(self, host_count: int, control_dir: Path | None = None) -> dict[str, str]:
        """The ANSIBLE_* settings every run gets (no secrets: recorded in the artifacts);
        ``control_dir``: the run's own folder for SSH ControlPath sockets."""
        ssh_args = [
            "-o ControlMaster=auto",
            f"-o ControlPersist={self.ssh.control_persist}",
            f"-o UserKnownHostsFile={self.known_hosts}",
            "-o StrictHostKeyChecking=accept-new",
            "-o ServerAliveInterval=15",
            "-o PreferredAuthentications=publickey",
        ]
        env = {
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": " ".join(ssh_args),
            "ANSIBLE_TIMEOUT": str(self.ssh.connect_timeout),
            "ANSIBLE_GATHERING": "smart",
            "ANSIBLE_GATHER_SUBSET": GATHER_SUBSET,
            "ANSIBLE_CACHE_PLUGIN": "jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(self.fact_cache_dir),
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": str(self.fact_cache_seconds),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_HOST_KEY_CHECKING": "True",  # ansible-runner turns it off unless it is set
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_SYSTEM_WARNINGS": "False",
        }
        if (self.project_dir / "ansible.cfg").is_file():
            env["ANSIBLE_CONFIG"] = str(self.project_dir / "ansible.cfg")
        if (self.project_dir / "roles").is_dir():
            env["ANSIBLE_ROLES_PATH"] = str(self.project_dir / "roles")
        bin_dir = str(Path(sys.executable).parent)  # ansible-playbook beside this interpreter (a venv)
        path = os.environ.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            env["PATH"] = bin_dir + os.pathsep + path if path else bin_dir
        if control_dir is not None:
            env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
        if self.ssh.private_key_file:
            env["ANSIBLE_PRIVATE_KEY_FILE"] = str(Path(self.ssh.private_key_file).expanduser())
        env.update(self.env)
        return env

    def _unsafe_copy(self, source: Path | dict[str, Any], name: str) -> Path:
        """``source`` (a site variables file, or infra's own values) as a private YAML file in which
        every string is ``!unsafe``: Ansible passes it on as data and never evaluates it."""
        from orchestrator.render.ansible import dump

        data = load_site_vars(source) if isinstance(source, Path) else source
        for old in sorted(set(data) & set(RENAMED_SITE_VARS)) if isinstance(source, Path) else ():
            if old not in BLUEPRINT_SITE_VARS:
                self.progress.warn(f"{source}: site variable {old} is deprecated, use {RENAMED_SITE_VARS[old]} "
                                   "(the old name works until the next release)")
        for old in sorted(set(data) & set(BLUEPRINT_SITE_VARS)) if isinstance(source, Path) else ():
            self.progress.warn(f"{source}: site variable {old} is deprecated, use {BLUEPRINT_SITE_VARS[old]}; "
                               "until the next release the site variable overrides the blueprint")
        return write_private(self.private_dir / "vars" / name, dump(data))

    def run(self, playbook: str, inventory: Path, *, host_count: int, limit: str | None = None, check: bool = False,
            extravars: dict[str, Any] | None = None, extravars_files: list[Path] | tuple[Path, ...] = (),
            label: str | None = None, expect_configured: list[str] | tuple[str, ...] = (),
            role_plan: Mapping[str, Sequence[str]] | None = None) -> AnsibleResult:
        """Runs ``playbook`` (relative to the ansible/ folder); raises AnsibleRunError when a host fails.

        ``expect_configured``: hosts the playbook must mark configured (set_stats ``infra_configured``,
        as ansible/site.yml's last task does); one that neither failed nor got there is reported
        ``not configured`` and fails the run like a failed host. ``role_plan``: per host, the roles
        the playbook runs on it in play order; a failed host's roles that never started are named.

        ``extravars`` (infra's own values) are written to a private file with every string ``!unsafe``
        and must not hold secrets; the site's ``extravars_files`` are passed by reference, as given.
        """
        try:
            import ansible_runner
        except ImportError as exc:
            raise AnsibleError(f"ansible-runner is not installed ({exc})", INSTALL_HINT) from exc
        for path in (self.artifacts_dir, self.fact_cache_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.private_dir, 0o700)
        self.known_hosts.touch(mode=0o600, exist_ok=True)
        forks = forks_for(host_count, self.forks_cap)
        # Every value reaches Ansible as a file of !unsafe strings: Ansible would template values
        # given as JSON, and site files may come through the same pull requests as blueprints
        # (docs/security.md). Site copies live in the private folder only for this run.
        files = [self._unsafe_copy(Path(p), f"site-vars-{i}.yml") for i, p in enumerate(extravars_files)]
        if extravars:
            files.append(self._unsafe_copy(dict(extravars), "extravars.yml"))
        cmdline = [f"-e {shlex.quote(f'@{p}')}" for p in files]
        if check:
            cmdline += ["--check", "--diff"]
        token = uuid.uuid4().hex
        control_dir = ssh_control_dir()
        envvars = {**self.envvars(host_count, control_dir), WATCH_ENV: token}
        ident = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
        collector = EventCollector(self.progress)
        what = label or f"ansible {playbook}"
        self.progress.start_task(None, f"{what} on {host_count} host{'s' if host_count != 1 else ''}"
                                 f"{' (check mode)' if check else ''}, forks={forks}")
        started = time.monotonic()
        command_file, scrubbed = self.artifacts_dir / ident / "command", []

        def on_event(event: dict[str, Any]) -> bool:
            if not scrubbed:  # runner wrote the command file before the first event: scrub it now
                scrubbed.append(_scrub_command_file(command_file, set(envvars)))
            return collector.feed(event)

        watchdog, finished = _watchdog(token), False
        try:
            runner = ansible_runner.run(
                private_data_dir=str(self.private_dir),
                project_dir=str(self.project_dir),
                playbook=playbook,
                inventory=str(Path(inventory).resolve()),
                ident=ident,
                limit=limit,
                forks=forks,
                cmdline=" ".join(cmdline) or None,
                envvars=envvars,
                ssh_key=self.ssh.key_data,
                suppress_env_files=True,
                rotate_artifacts=self.keep_artifacts,
                fact_cache_type="jsonfile",
                fact_cache=str(self.fact_cache_dir),  # absolute: shared by runs, not per artifact
                quiet=True,
                event_handler=on_event,
            )
            finished = True
        except KeyboardInterrupt as exc:
            self.progress.close()
            raise Interrupted("interrupted: ansible was stopped; hosts may be half-configured",
                              "run the same command again: every role is idempotent") from exc
        finally:
            _release(watchdog, finished)  # not finished: the watchdog stops what this run left running
            close_ssh_masters(control_dir)  # the next run connects afresh (a dead sshd shows)
            _scrub_command_file(command_file, set(envvars))
            for copy in files:  # site values may be secrets: no copy outlives the run
                copy.unlink(missing_ok=True)
            for tree in (self.artifacts_dir / ident, self.fact_cache_dir):  # 0600/0700 whatever the umask
                private_tree(tree)
        result = collector.result(
            rc=runner.rc, status=runner.status, duration_s=time.monotonic() - started,
            artifacts=self.artifacts_dir / ident, expected=tuple(expect_configured),
            plan={host: tuple(roles) for host, roles in (role_plan or {}).items()},
            stopped=f" (ansible-playbook exit {runner.rc}: {collector.tail()})" if runner.rc not in (0, 2) else "",
        )
        if runner.status in ("canceled", "timeout"):
            self.progress.close()
            raise Interrupted(f"ansible run {runner.status}", "run the same command again")
        if result.host_failures():
            self.progress.close()
            raise AnsibleRunError(result)
        if runner.rc != 0:
            self.progress.close()
            raise AnsibleError(
                f"ansible-playbook failed (exit {runner.rc}) before any host failed: {collector.tail()}",
                f"details under {result.artifacts}",
            )
        self.progress.done(result.summary())
        return result

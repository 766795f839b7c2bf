"""A Debian root filesystem for test hosts, built once with debootstrap and cached.

The cache lives outside the repository (``$INFRA_TEST_CACHE``, default
``/var/cache/infra-tests``) under a name that hashes the suite and the package list, so a
change to either builds a new one. The build goes into a temporary folder that is renamed into
place only when complete; a file lock keeps parallel test workers from building it twice.

No mirror is named anywhere: debootstrap uses its own default for the suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "INFRA_TEST_CACHE"
SUITE_ENV = "INFRA_TEST_SUITE"
DEFAULT_CACHE = "/var/cache/infra-tests"
DEFAULT_SUITE = "bookworm"

# What the roles expect to find already installed on a test host, so that the roles' package
# tasks are no-ops (the test hosts must converge without reaching a package mirror at test time):
# sshd and Python for Ansible; python3-apt for the apt module; python3-venv and python3-packaging
# (the pip module) for the inference server's virtualenv; the `common` role's packages. containerd,
# runc and python3-debian are NOT here: the roles install them from the local signed apt repository
# (tests/hosts/aptrepo.py), as on a fresh host.
PACKAGES = (
    "openssh-server",
    "python3",
    "python3-apt",
    "python3-venv",
    "python3-packaging",
    "ca-certificates",
    "chrony",
    "conntrack",
    "iproute2",
    "iptables",
    "kmod",
    "procps",
    "socat",
)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def suite() -> str:
    return os.environ.get(SUITE_ENV) or DEFAULT_SUITE


def tools_missing() -> list[str]:
    """Host tools the builder needs that are not installed (empty when all are there)."""
    missing = []
    if shutil.which("debootstrap") is None:
        missing.append("debootstrap")
    if not Path("/usr/sbin/sshd").exists() and shutil.which("sshd") is None:
        missing.append("openssh-server (sshd)")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        missing.append("openssh-client (ssh, ssh-keygen)")
    if os.geteuid() != 0:
        missing.append("root (chroot and mounts need it)")
    return missing


def key(packages: tuple[str, ...] = PACKAGES, suite_name: str | None = None) -> str:
    text = "\n".join([suite_name or suite(), "minbase", *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def path_for(packages: tuple[str, ...] = PACKAGES, suite_name: str | None = None) -> Path:
    name = suite_name or suite()
    return cache_root() / f"rootfs-{name}-{key(packages, name)}"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(packages: tuple[str, ...] = PACKAGES, log=print) -> tuple[Path, float]:
    """The cached rootfs for ``packages`` (built if absent) and the seconds spent building (0 if cached)."""
    target = path_for(packages)
    if (target / ".complete").is_file():
        return target, 0.0
    with _lock(target.with_suffix(".lock")):
        if (target / ".complete").is_file():  # another worker built it while we waited
            return target, 0.0
        started = time.monotonic()
        log(f"building test rootfs {target} (debootstrap {suite()}, once; cached afterwards)")
        _build(target, packages)
        return target, time.monotonic() - started


def _build(target: Path, packages: tuple[str, ...]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite(), str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            log_file = tmp / "debootstrap" / "debootstrap.log"
            if log_file.is_file():
                tail += "\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        _finish(tmp)
        (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        os.rename(tmp, target)
    except BaseException:
        _remove_tree(tmp)
        raise


def _finish(root: Path) -> None:
    """Make the rootfs a quiet, small base: no host keys (each node makes its own), no daemons
    started by package scripts, an sshd that runs without PAM or systemd."""
    os.chmod(root, 0o755)  # mkdtemp made it 0700
    for key_file in (root / "etc" / "ssh").glob("ssh_host_*"):
        key_file.unlink()
    sshd_conf = root / "etc" / "ssh" / "sshd_config.d" / "infra-test.conf"
    sshd_conf.parent.mkdir(parents=True, exist_ok=True)
    sshd_conf.write_text(
        "# test host: key-only root login, no PAM (no login session manager in a chroot)\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "MaxSessions 64\n"
        "MaxStartups 64:30:128\n"
    )
    for cache in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        cache.unlink()
    (root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "etc" / "hostname").write_text("infra-test\n")


def _remove_tree(path: Path) -> None:
    """Remove a (possibly half-built) rootfs, never following a mount into the host."""
    if not path.exists():
        return
    mounts = _mounts_under(path)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix[:-1]:
                found.append(point)
    return found

"""One test host: an overlay of the cached rootfs, chrooted, with its own sshd on a loopback address.

All nodes share the machine's network namespace, so each sshd listens on its own address
(127.0.0.11, .12, ...) and the same port. The cached rootfs is the read-only lower layer of an
overlay mount, so a node costs no copy and the cache is never modified; when overlayfs is not
available the rootfs is copied (``cp -a --reflink=auto``) instead.

Only processes whose root directory is this node's rootfs are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

# mounts inside the chroot, in order: (source, target, fstype, options)
_MOUNTS = (
    ("proc", "proc", "proc", "nosuid,nodev,noexec"),
    ("/dev", "dev", None, "bind"),
    ("/dev/pts", "dev/pts", None, "bind"),
    ("/sys", "sys", None, "bind,ro"),  # read-only: the GPU discovery reads /sys/bus/pci
    ("tmpfs", "run", "tmpfs", "mode=755,nosuid,nodev"),
)


def _run(*cmd: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def overlay_supported(probe_dir: Path) -> bool:
    probe = probe_dir / ".overlay-probe"
    dirs = [probe / d for d in ("lower", "upper", "work", "merged")]
    try:
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}"
        ok = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs[3])],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(dirs[3])], capture_output=True)
        return ok
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class TestHost:
    """A chroot with an sshd. ``start()`` / ``stop_sshd()`` / ``start_sshd()`` / ``destroy()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, address: str, port: int, base: Path, rootfs: Path, overlay: bool) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.dir = base / name
        self.root = self.dir / "root"
        self.rootfs = rootfs
        self.overlay = overlay
        self._mounted: list[Path] = []
        self._sshd: subprocess.Popen | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, authorized_key: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.overlay:
            upper, work = self.dir / "upper", self.dir / "work"
            for d in (upper, work, self.root):
                d.mkdir(exist_ok=True)
            opts = f"lowerdir={self.rootfs},upperdir={upper},workdir={work}"
            _run("mount", "-t", "overlay", "overlay", "-o", opts, str(self.root))
            self._mounted.append(self.root)
        else:
            _run("cp", "-a", "--reflink=auto", f"{self.rootfs}/.", str(self.root))
        for source, target, fstype, options in _MOUNTS:
            point = self.root / target
            point.mkdir(parents=True, exist_ok=True)
            cmd = ["mount", "-o", options]
            if fstype:
                cmd += ["-t", fstype]
            _run(*cmd, source, str(point))
            self._mounted.append(point)
        ssh = self.root / "root" / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(authorized_key.strip() + "\n")
        os.chmod(ssh / "authorized_keys", 0o600)
        key = self.root / "etc" / "ssh" / "ssh_host_ed25519_key"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key))
        (self.root / "etc" / "hostname").write_text(self.name + "\n")
        self.start_sshd()

    def start_sshd(self, timeout: float = 15.0) -> None:
        (self.root / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        cmd = [
            "chroot", str(self.root), "/usr/sbin/sshd", "-D", "-e",
            "-o", f"ListenAddress={self.address}:{self.port}",
            "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key",
            "-o", "PidFile=none",
        ]
        self._sshd = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sshd.poll() is not None:
                text = (self.dir / "sshd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sshd for {self.name} exited ({self._sshd.returncode}):\n{text}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd for {self.name} did not listen on {self.address}:{self.port}")

    def stop_sshd(self, sessions: bool = True) -> None:
        """Stop sshd and every SSH session into this host: from outside it is down. ``sessions=False``:
        the listener only, as `systemctl stop ssh` does (open sessions carry on)."""
        if sessions:
            self._signal(lambda comm: comm == "sshd" or comm.startswith("sshd-"), signal.SIGKILL)
        elif self._sshd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._sshd.pid, signal.SIGKILL)  # `chroot` exec'd sshd -D: this pid is the listener
        if self._sshd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._sshd.wait(timeout=5)
            self._sshd = None

    def destroy(self) -> None:
        """Kill everything running in the chroot, unmount, delete the node's files."""
        self._signal(lambda comm: True, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._signal(lambda comm: True, signal.SIGKILL)
        if self._sshd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._sshd.wait(timeout=5)
        for point in reversed(self._mounted):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)
        self._mounted.clear()
        if self._still_mounted():
            raise RuntimeError(f"{self.root} still has mounts; not deleting it")
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers --------------------------------------------------------------------------------

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command name) of every process whose root is this node's rootfs."""
        root = str(self.root.resolve())
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "root") != root:
                    continue
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            found.append((int(entry.name), comm))
        return found

    def _signal(self, match, sig: int) -> None:
        for pid, comm in self.processes():
            if match(comm):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def _still_mounted(self) -> bool:
        prefix = str(self.dir.resolve()) + "/"
        with open("/proc/self/mounts") as fh:
            return any(line.split()[1].startswith(prefix) for line in fh)

    def remove_packages(self, *names: str) -> None:
        """Purge ``names`` from this host (its own overlay layer: the shared rootfs is untouched),
        e.g. to make a minimal host out of the test rootfs."""
        self.chroot("dpkg", "--purge", *names)

    def chroot(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the host (for test assertions)."""
        proc = subprocess.run(["chroot", str(self.root), *cmd], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

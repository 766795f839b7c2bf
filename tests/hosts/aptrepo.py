"""A local signed apt repository for the test hosts, built once with Debian's own tools and cached.

Two flat repositories (``suites: /``, the layout of the Kubernetes community repository), each
with ``Packages`` (``dpkg-scanpackages``), a ``Release`` with SHA256 sums and an ``InRelease``
clearsigned with a throwaway GPG key made for the cache (``gpg --quick-gen-key``):

- ``debian/``: Debian's own ``containerd``, ``runc``, ``python3-debian`` and ``python3-chardet``
  (``apt-get download`` on the controller, once), so the roles install them with real apt;
- ``kubernetes/v<minor>/deb/``: small test-built ``kubeadm``, ``kubelet`` and ``kubectl`` packages
  at two versions of one minor (``VERSIONS``, under ``v1.30``) and one of the next minor
  (``NEXT_MINOR_VERSION``, under ``v1.31``: a minor upgrade); their binaries are labelled test
  doubles (kubeadm and kubectl are tests/fixtures/ansible/fake-kubeadm and fake-kubectl reporting
  the package's version).

Each folder carries the public key as ``Release.key``. ``RepoServer`` serves the tree over HTTP on
loopback; ``broken = True`` makes it answer 503 (a repository outage), ``False`` restores it.
The cache (``$INFRA_TEST_CACHE``) is keyed by the package lists and the test double's text.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from . import rootfs

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_KUBEADM = REPO_ROOT / "tests" / "fixtures" / "ansible" / "fake-kubeadm"
FAKE_KUBECTL = REPO_ROOT / "tests" / "fixtures" / "ansible" / "fake-kubectl"
# Served as /cni/calico.yaml: what the kubernetes_node role downloads, edits and applies as its CNI.
CNI_MANIFEST = REPO_ROOT / "tests" / "fixtures" / "ansible" / "calico-test.yaml"
CNI_PATH = "/cni/calico.yaml"
DEBIAN_PACKAGES = ("containerd", "runc", "python3-debian", "python3-chardet", "python3-pkg-resources")
MINOR = "1.30"
VERSIONS = ("1.30.1-1.1", "1.30.2-1.1")  # version A, version B
NEXT_MINOR_VERSION = "1.31.0-1.1"  # version C: one minor up (its own repository folder, v1.31)
ALL_VERSIONS = (*VERSIONS, NEXT_MINOR_VERSION)
KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
KEY_UID = "infra tests throwaway key <infra-tests@invalid>"


def tools_missing() -> list[str]:
    return [tool for tool in ("gpg", "dpkg-deb", "dpkg-scanpackages", "apt-get") if shutil.which(tool) is None]


def key() -> str:
    text = "\n".join([rootfs.suite(), *DEBIAN_PACKAGES, *ALL_VERSIONS, FAKE_KUBEADM.read_text(),
                      FAKE_KUBECTL.read_text()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def minor(version: str) -> str:
    """``1.31`` for ``1.31.0-1.1``: the repository folder (``v<minor>``) a package version lives in."""
    return ".".join(version.split(".")[:2])


def path() -> Path:
    return rootfs.cache_root() / f"aptrepo-{rootfs.suite()}-{key()}"


def ensure(log=print) -> Path:
    """The cached repository tree (built if absent)."""
    target = path()
    if (target / ".complete").is_file():
        return target
    with rootfs._lock(target.with_suffix(".lock")):
        if (target / ".complete").is_file():
            return target
        log(f"building the test apt repository {target} (once; cached afterwards)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _build(tmp)
            (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-800:]}")
    return proc


def _gpg(gnupg: Path) -> list[str]:
    return ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]


def _build(root: Path) -> None:
    gnupg = root / "gnupg"  # the throwaway key stays with the cache: publish() signs with it
    gnupg.mkdir(mode=0o700)
    try:
        gpg = _gpg(gnupg)
        _run([*gpg, "--quick-gen-key", KEY_UID, "ed25519", "sign", "never"])
        public = _run([*gpg, "--armor", "--export", KEY_UID]).stdout
        (root / "Release.key").write_text(public)
        debian = root / "debian"
        debian.mkdir(parents=True)
        _run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=debian)
        arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
        kubes = []
        for version in ALL_VERSIONS:
            kube = root / "kubernetes" / f"v{minor(version)}" / "deb"
            if kube not in kubes:
                kube.mkdir(parents=True)
                kubes.append(kube)
            for name in KUBE_PACKAGES:
                _package(kube, name, version, arch)
        for repo in (debian, *kubes):
            _index(repo, gpg, public)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], capture_output=True)


def publish(cache: Path, served: Path, versions: tuple[str, ...]) -> None:
    """(Re)make ``served``: the Debian repository as cached, the Kubernetes ones (one folder per
    minor) listing only the packages of ``versions`` (links to the cached files), freshly indexed
    and signed; a minor none of ``versions`` is in is not served. Other files under ``served``
    (the test CNI manifest) are kept."""
    served.mkdir(parents=True, exist_ok=True)
    for part in ("debian", "kubernetes"):
        if (served / part).is_symlink():
            (served / part).unlink()
        elif (served / part).exists():
            shutil.rmtree(served / part)
    (served / "debian").symlink_to(cache / "debian", target_is_directory=True)
    kubes = []
    for version in versions:
        kube = served / "kubernetes" / f"v{minor(version)}" / "deb"
        if kube not in kubes:
            kube.mkdir(parents=True)
            kubes.append(kube)
        for deb in (cache / "kubernetes" / f"v{minor(version)}" / "deb").glob(f"*_{version}_*.deb"):
            (kube / deb.name).symlink_to(deb)
    try:
        for kube in kubes:
            _index(kube, _gpg(cache / "gnupg"), (cache / "Release.key").read_text())
    finally:
        subprocess.run(["gpgconf", "--homedir", str(cache / "gnupg"), "--kill", "gpg-agent"], capture_output=True)


def configure_host(root: Path, url: str, cache: Path) -> None:
    """Point a test host's apt at the local Debian repository only (no mirror at test time)."""
    (root / "etc/apt/sources.list").write_text("")
    keyring = root / "etc/apt/keyrings/infra-tests.asc"
    keyring.parent.mkdir(parents=True, exist_ok=True)
    keyring.write_text((cache / "Release.key").read_text())
    (root / "etc/apt/sources.list.d/infra-tests-debian.sources").write_text(
        f"Types: deb\nURIs: {url}/debian/\nSuites: /\nSigned-By: /etc/apt/keyrings/infra-tests.asc\n"
    )
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        if lists.is_file():
            lists.unlink()


def _package(repo: Path, name: str, version: str, arch: str) -> None:
    upstream = version.split("-")[0]
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=repo.parent))
    try:
        (work / "DEBIAN").mkdir()
        (work / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nSection: admin\nPriority: optional\n"
            f"Maintainer: infra tests <infra-tests@invalid>\n"
            f"Description: TEST DOUBLE of {name} {upstream} (infra tests, not Kubernetes)\n"
            f" Answers only the calls the kubernetes_node role makes.\n"
        )
        binary = work / "usr" / "bin" / name
        binary.parent.mkdir(parents=True)
        if name in ("kubeadm", "kubectl"):
            fake = FAKE_KUBEADM if name == "kubeadm" else FAKE_KUBECTL
            binary.write_text(fake.read_text().replace("v1.30.0", f"v{upstream}"))
        else:
            binary.write_text(f"#!/bin/sh\n# TEST DOUBLE of {name} (infra tests)\necho 'Kubernetes v{upstream}'\n")
        os.chmod(binary, 0o755)
        _run(["dpkg-deb", "--root-owner-group", "--build", str(work), str(repo / f"{name}_{version}_{arch}.deb")])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _index(repo: Path, gpg: list[str], public: str) -> None:
    packages = _run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo).stdout
    (repo / "Packages").write_text(packages)
    lines = ["Origin: infra-tests", "Label: infra-tests", f"Date: {formatdate(usegmt=True)}", "SHA256:"]
    data = (repo / "Packages").read_bytes()
    lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} Packages")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    _run([*gpg, "--yes", "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release")])
    (repo / "Release.key").write_text(public)


@dataclass
class RepoServer:
    """The repository tree over HTTP on loopback; while ``broken`` is set (a path prefix, e.g.
    ``/kubernetes/``) requests under it are answered 503, except the signing key."""

    root: Path
    address: str = "127.0.0.1"
    broken: str = ""
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> RepoServer:
        owner, root = self, str(self.root)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kw):
                super().__init__(*args, directory=root, **kw)

            def send_head(self):
                if owner.broken and self.path.startswith(owner.broken) and not self.path.endswith("/Release.key"):
                    self.send_error(503, "repository broken on purpose (test)")
                    return None
                return super().send_head()

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer((self.address, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def serve_for(hosts, base: Path, versions: tuple[str, ...] = VERSIONS[:1], log=print) -> tuple[RepoServer, Path]:
    """Build (once) and serve the repository for ``hosts`` (a TestHosts): Kubernetes packages of
    ``versions`` published, every host's apt pointed at the Debian part. Returns the server and the cache."""
    cache = ensure(log=log)
    served = base / "apt-served"
    publish(cache, served, versions)
    (served / CNI_PATH.strip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CNI_MANIFEST, served / CNI_PATH.strip("/"))
    server = RepoServer(served).start()
    for host in hosts.hosts:
        configure_host(host.path("/"), server.url, cache)
    return server, cache

"""Working files under ``.infra/`` are owner-only (folders 0700, files 0600); ``build/`` keeps 0755/0644.

The engines are tested with a permissive umask (022, what a library caller may have), the CLI
as a child started with umask 022: infra itself must make its files private. Real terraform,
real ansible-runner, real ``infra`` on the sandbox; no mocks.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.engines.ansible import Ansible
from orchestrator.engines.terraform import Terraform
from orchestrator.render.writer import write_tree
from orchestrator.workspace import Workspace
from tests.conftest import EXAMPLES, REPO, require

TFENGINE = REPO / "tests" / "fixtures" / "tfengine"
ANSIBLE_PROJECT = REPO / "tests" / "fixtures" / "ansible" / "project"
INFRA = str(Path(sys.executable).with_name("infra"))
needs_terraform = pytest.mark.usefixtures("_terraform_on_path")


@pytest.fixture()
def _terraform_on_path() -> None:
    require(shutil.which("terraform") is not None, "the terraform CLI on PATH")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def offenders(root: Path) -> list[str]:
    """Every folder or file under ``root`` (itself included) that group or others can use at all."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for path in [Path(folder), *(Path(folder, name) for name in files)]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{stat.S_IMODE(mode):04o} {path.relative_to(root.parent)}")
    return found


def _widen(root: Path) -> None:
    """What an older infra left behind: 0755 folders, 0644 files."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder, name), 0o644)


@pytest.fixture
def permissive_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def infra_umask():
    previous = os.umask(0o077)
    yield
    os.umask(previous)


# --- terraform engine (real terraform, builtin terraform_data: no provider, no network) -----------


@needs_terraform
def test_plan_file_cli_config_logs_and_state_are_owner_only(tmp_path: Path, monkeypatch, permissive_umask) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", str(mirror))  # makes the engine write its CLI config
    workdir = tmp_path / "module"
    shutil.copytree(TFENGINE / "basic", workdir)
    env = tmp_path / "env"  # does not exist yet: the engine creates what it writes into
    tf = Terraform(workdir, data_dir=env / "tf-data", log_dir=env / "logs", config_dir=env)
    tf.init()

    plan = tf.plan(env / "plan.tfplan")
    assert plan.has_changes is True
    assert _mode(env / "plan.tfplan") == 0o600
    assert _mode(env / "infra-cli.tfrc") == 0o600
    assert {p.name: _mode(p) for p in (env / "logs").iterdir()} == {"init.jsonl": 0o600, "plan.jsonl": 0o600}
    assert [_mode(d) for d in (env, env / "logs")] == [0o700, 0o700]

    tf.apply(plan.plan_file)
    assert not (env / "plan.tfplan").exists()  # applied: gone
    assert _mode(workdir / "terraform.tfstate") == 0o600

    again = tf.plan(env / "plan.tfplan")
    assert again.has_changes is False and again.plan_file is None
    assert not (env / "plan.tfplan").exists()  # nothing to apply: nothing kept

    tf.destroy(env / "destroy.tfplan")
    assert not (env / "destroy.tfplan").exists()
    assert _mode(workdir / "terraform.tfstate.backup") == 0o600
    assert offenders(env) == []


@needs_terraform
def test_files_an_older_version_left_wider_are_rewritten_owner_only(tmp_path: Path, monkeypatch,
                                                                    permissive_umask) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", str(mirror))
    workdir = tmp_path / "module"
    shutil.copytree(TFENGINE / "basic", workdir)
    env = tmp_path / "env"
    tf = Terraform(workdir, data_dir=env / "tf-data", log_dir=env / "logs", config_dir=env)
    tf.version()  # writes the CLI config
    (env / "logs").mkdir()
    (env / "logs" / "plan.jsonl").write_text("old\n")
    (env / "plan.tfplan").write_text("old\n")
    _widen(env)
    config_text = (env / "infra-cli.tfrc").read_text()

    tf.init()
    tf.plan(env / "plan.tfplan")
    assert (env / "infra-cli.tfrc").read_text() == config_text
    assert _mode(env / "infra-cli.tfrc") == 0o600
    assert _mode(env / "logs" / "plan.jsonl") == 0o600
    assert _mode(env / "plan.tfplan") == 0o600


@needs_terraform
def test_dependency_lock_file_is_as_readable_as_its_folder(tmp_path: Path, monkeypatch, tf_mirror: str,
                                                          infra_umask) -> None:
    # terraform writes .terraform.lock.hcl 0644 whatever the umask: committable in build/, private in .infra/
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", tf_mirror)
    workdir = tmp_path / "build" / "terraform"
    workdir.mkdir(parents=True)
    os.chmod(workdir, 0o755)  # as the writer makes build/
    (workdir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n'
    )
    tf = Terraform(workdir, data_dir=tmp_path / "env" / "tf-data", config_dir=tmp_path / "env")
    try:
        tf.init()
        assert _mode(workdir / ".terraform.lock.hcl") == 0o644
        os.chmod(workdir, 0o700)  # as the sandbox copy under .infra/
        tf.init()
        assert _mode(workdir / ".terraform.lock.hcl") == 0o600
    finally:
        shutil.rmtree(tmp_path / "env" / "tf-data", ignore_errors=True)  # the provider may be a large copy


# --- ansible-runner artifacts -----------------------------------------------------------------


def test_ansible_artifacts_and_fact_cache_are_owner_only(tmp_path: Path, permissive_umask) -> None:
    try:
        import ansible_runner  # noqa: F401
    except ImportError:
        require(False, "ansible-runner (the ansible extra)")
    work = tmp_path / "work"
    work.mkdir()
    inventory = tmp_path / "inventory.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"a": host}, "vars": {"work_dir": str(work)}}}))
    engine = Ansible(tmp_path / "ansible", project_dir=ANSIBLE_PROJECT)
    result = engine.run("converge.yml", inventory, host_count=1)
    assert result.rc == 0
    assert (result.artifacts / "job_events").is_dir() and (result.artifacts / "stdout").is_file()
    assert offenders(tmp_path / "ansible") == []


# --- the writer: build/ is public, everything else private, whatever the umask ------------------


def test_writer_sets_modes_explicitly(tmp_path: Path, infra_umask) -> None:
    files = {"main.tf": "a\n", "modules/x/main.tf": "b\n"}
    build = tmp_path / "build" / "demo" / "terraform"
    write_tree(build, files, public=True)
    assert [_mode(p) for p in (tmp_path / "build", tmp_path / "build" / "demo", build, build / "modules",
                               build / "modules" / "x")] == [0o755] * 5
    assert [_mode(build / rel) for rel in sorted(files)] == [0o644, 0o644]

    copy = tmp_path / "infra" / "sandbox" / "demo" / "terraform"
    os.umask(0o022)
    write_tree(copy, files)
    assert offenders(tmp_path / "infra") == []
    os.chmod(copy / "main.tf", 0o644)  # left wider by an older infra: unchanged content, narrowed anyway
    assert write_tree(copy, files).written == []
    assert _mode(copy / "main.tf") == 0o600


# --- the workspace: tightened on every locked run ------------------------------------------------


def test_locking_tightens_the_folders_an_older_version_made(tmp_path: Path, monkeypatch, permissive_umask) -> None:
    monkeypatch.delenv("INFRA_STATE_DIR", raising=False)
    ws = Workspace(root=tmp_path, name="prod")
    env = tmp_path / ".infra" / "env" / "prod"
    for d in ("logs", "tf-data", "ansible/artifacts/run1", "ansible/facts"):
        (env / d).mkdir(parents=True)
    (tmp_path / ".infra" / "records" / "prod").mkdir(parents=True)
    (env / "terraform.tfstate").write_text("{}\n")
    (env / "logs" / "apply.jsonl").write_text("{}\n")
    (env / "ansible" / "artifacts" / "run1" / "stdout").write_text("x\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours\n")
    (env / "link").symlink_to(outside)
    _widen(tmp_path / ".infra")

    with ws.lock("infra up prod.yaml"):
        pass
    # named folders and the files of the environment folder and its logs; deeper files are
    # left as they are, unreachable behind 0700 folders
    assert offenders(tmp_path / ".infra") == [
        "0755 .infra/env/prod/ansible/artifacts/run1",
        "0644 .infra/env/prod/ansible/artifacts/run1/stdout",
    ]
    assert _mode(outside) == 0o644  # a symlink is not followed


# --- the CLI: umask 077 at the entry point; `infra plan` keeps no plan ---------------------------


def test_the_entry_point_runs_commands_with_umask_077_and_restores_it() -> None:
    # a probe command on the real app, run through the real console-script entry in a fresh process
    code = (
        "import os, sys\n"
        "from orchestrator.cli import main\n"
        "main.app.command('probe')(lambda: print(f'during {os.umask(0o077):03o}'))\n"
        "sys.argv = ['infra', 'probe']\n"
        "try:\n    main.run()\nexcept SystemExit:\n    print(f'after {os.umask(0o022):03o}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, umask=0o022, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "during 077\nafter 022\n", "")


def test_infra_plan_sandbox_leaves_only_owner_only_working_files(tmp_path: Path, tf_mirror: str) -> None:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        require(False, "moto[server] (the sandbox emulator)")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLES / "sandbox.yaml", project / "env.yaml")
    old = project / ".infra" / "sandbox" / "demo"
    (old / "logs").mkdir(parents=True)
    (old / "logs" / "apply.jsonl").write_text("{}\n")
    _widen(project / ".infra")
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(project / "none.tfrc")}
    env.pop("INFRA_STATE_DIR", None)

    def infra(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([INFRA, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, umask=0o022)

    try:
        proc = infra("plan", "--sandbox", "env.yaml")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "to add" in proc.stdout
        assert not (old / "plan.tfplan").exists()  # `up` plans again: `plan` keeps none
        assert (old / "tf-data").is_dir() and (old / "terraform" / ".terraform.lock.hcl").is_file()
        assert offenders(project / ".infra") == []
        build = project / "build"
        modes = {_mode(p) for p in [build, *build.rglob("*")] if p.is_dir()}
        assert modes == {0o755}
        assert {_mode(p) for p in build.rglob("*") if p.is_file()} == {0o644}
    finally:
        infra("sandbox", "stop")

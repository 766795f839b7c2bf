"""The commands of the workflow ``infra init`` writes, run as GitHub Actions would run them (each
``run:`` with ``bash -eo pipefail``, the step's ``env:`` filled in, ``$GITHUB_STEP_SUMMARY``, a
step after a failed one skipped unless its ``if:`` says otherwise), against the embedded AWS
emulator: ``infra`` on the PATH is a shim that adds ``--sandbox`` after plan/up/drift and runs the
real console script. The ``uses:`` steps (checkout, installers, credentials, artifacts) are
GitHub's; the install step is checked, not run (this is the version it names).

- the pull request job validates and plans only what the pull request changed (``--changed-since
  origin/main``) and writes the markdown plan it attaches and comments;
- ``infra state bootstrap`` creates the generated blueprints' state buckets (the README's step);
- the main branch's plan job saves every environment's plan in ``plans/``; the apply job's command
  reads them back after a trip through an artifact (plain copies, permissions not kept) and
  refuses them once a blueprint changed since (exit 2, nothing applied). The successful apply of
  saved plans is in tests/integration/test_rollout_sandbox.py; a full ``up`` of the two generated
  environments takes minutes in the emulator, and so does drift, which needs them applied
  (tests/integration/test_rollout_sandbox.py runs drift on a smaller rollout).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_module

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))
SHIM = """#!{python}
import os, sys
args = sys.argv[1:]
if args[:1] in (["plan"], ["up"], ["drift"]):
    args.insert(1, "--sandbox")
os.execv({infra!r}, [{infra!r}, *args])
"""
EXPR = re.compile(r"\$\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
INSTALLED = f"infra-orchestrator[aws,kube]=={version('infra-orchestrator')}"  # this infra, its extras
REPORT = "report page (plan, cost, capacity, placement, last runs)"
WHEN_FILE = re.compile(r"\$\{\{ !cancelled\(\) && hashFiles\('([^']+)'\) != '' \}\}")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _environments(markdown: str) -> list[str]:
    """The environments in the markdown plan's table (its rows name the provider, aws)."""
    return re.findall(r"(?m)^\| `([a-z0-9-]+)` \| aws \|", markdown)


def _job(repo: Path, flow: dict, name: str, env: dict, context: dict[str, str]) -> list[tuple[str, int]]:
    """Run job ``name``'s ``run:`` steps as the runner would: ``[(step name or command, exit code)]``."""
    summary = repo.parent / f"summary-{name}.md"
    summary.write_text("")
    ran, failed = [], False
    for step in flow["jobs"][name]["steps"]:
        if "run" not in step:
            continue
        if step["run"].startswith("python -m pip install "):
            assert step["run"] == f'python -m pip install "{INSTALLED}"'
            continue
        when = step.get("if")
        if when is not None:
            wanted = WHEN_FILE.fullmatch(when)
            assert wanted is not None, f"the test does not know this condition: {when}"
            if not (repo / wanted.group(1)).is_file():
                continue
        elif failed:
            continue
        step_env = {key: EXPR.sub(lambda m: context[m.group(1)], str(value))
                    for key, value in step.get("env", {}).items()}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                              env={**env, **step_env, "GITHUB_STEP_SUMMARY": str(summary)}, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)
        ran.append((step.get("name", step["run"]), done.returncode))
        with (repo.parent / f"{name}.log").open("a") as log:
            log.write(f"$ {step['run']}\n{done.stdout}{done.stderr}")
        failed = failed or done.returncode != 0
    return ran


@pytest.fixture(scope="module")
def workflow(tmp_path_factory, tf_mirror):
    """The generated repository on ``main``, cloned twice: a pull request's checkout (a branch that
    changes prod.yaml, ``origin/main`` its base) and ``main``'s after the merge. The pull request
    job and the main branch's plan job run at the same time, as GitHub would run them, each in its
    clone with its own emulator."""
    require_module("boto3", "boto3 (the sandbox extra: pip install -e '.[sandbox]')")
    root = tmp_path_factory.mktemp("gitops-sandbox")
    shims = root / "bin"
    shims.mkdir()
    (shims / "infra").write_text(SHIM.format(python=sys.executable, infra=INFRA))
    (shims / "infra").chmod(0o755)
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(root / "none.tfrc"),
           "COLUMNS": "200", "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    env.pop("INFRA_STATE_DIR", None)
    init = subprocess.run([INFRA, "init", "origin", "--state-bucket", "sbx-state"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    origin = root / "origin"
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "infra init")
    pr, main = root / "pr" / "repo", root / "main" / "repo"
    for clone in (pr, main):
        clone.parent.mkdir()
        _git(clone.parent, "clone", "-q", str(origin), "repo")
    _git(pr, "checkout", "-q", "-b", "bigger-prod")
    prod = pr / "blueprints" / "prod.yaml"
    prod.write_text(prod.read_text().replace("    max: 4\n", "    max: 6\n"))
    _git(pr, "commit", "-q", "-am", "prod: up to 6 GPU nodes")
    # the README's step before the first run: the state buckets (here the emulator's)
    boot = {name: subprocess.run([INFRA, "state", "bootstrap", f"blueprints/{name}.yaml", "--sandbox"], cwd=main,
                                 env=env, capture_output=True, text=True, timeout=300) for name in ("dev", "prod")}
    flow = yaml.safe_load((origin / ".github" / "workflows" / "infra.yml").read_text())
    with ThreadPoolExecutor(2) as pool:
        pr_job = pool.submit(_job, pr, flow, "plan", env, {"github.base_ref": "main"})
        main_job = pool.submit(_job, main, flow, "plan-main", env, {})
        ran = {"plan": pr_job.result(), "plan-main": main_job.result()}
    yield {"pr": pr, "main": main, "env": env, "flow": flow, "ran": ran, "bootstrap": boot}
    for clone in (pr, main):
        subprocess.run([INFRA, "sandbox", "stop"], cwd=clone, env=env, capture_output=True, timeout=120)


def test_the_pull_request_job_plans_only_what_changed(workflow) -> None:
    repo = workflow["pr"]
    log = (repo.parent / "plan.log").read_text()
    assert workflow["ran"]["plan"] == [("validate", 0), ("plan what changed", 0), ("show the plan", 0),
                                       (REPORT, 0)], log[-4000:]
    plan = (repo / "plan.md").read_text()
    assert _environments(plan) == ["prod"], plan
    assert "- `prod`: blueprint blueprints/prod.yaml changed" in plan and "Not selected: `dev`." in plan, plan
    assert (repo.parent / "summary-plan.md").read_text() == plan  # what the run's summary shows


def test_the_main_jobs_save_every_plan_and_the_apply_refuses_a_stale_one(workflow) -> None:
    repo, env, flow = workflow["main"], workflow["env"], workflow["flow"]
    for name, region in (("dev", "us-east-1"), ("prod", "us-west-2")):
        boot = workflow["bootstrap"][name]
        assert boot.returncode == 0, boot.stdout + boot.stderr
        assert boot.stdout.splitlines()[:2] == [f"state backend s3: s3://sbx-state-{name} (sandbox) created",
                                                f"  set   bucket created in {region}"]
    log = (repo.parent / "plan-main.log").read_text()
    assert workflow["ran"]["plan-main"] == [("plan every environment and save the plans", 0),
                                            ("show the plan", 0), (REPORT, 0)], log[-4000:]
    page = (repo / "report.html").read_text()  # the infra-report artifact: both environments, their plan runs
    assert 'href="#env-dev">dev</a>' in page and 'href="#env-prod">prod</a>' in page
    assert page.count("infra plan</code> (sandbox)") == 2
    plan = (repo / "plan.md").read_text()
    assert _environments(plan) == ["dev", "prod"], plan
    assert (repo.parent / "summary-plan-main.md").read_text() == plan
    assert sorted(p.name for p in (repo / "plans").iterdir() if p.is_dir()) == ["dev", "prod"]
    # the artifact's trip: upload-artifact and download-artifact keep the bytes, not the modes
    saved = repo.parent / "artifact"
    shutil.copytree(repo / "plans", saved, copy_function=shutil.copyfile)
    shutil.rmtree(repo / "plans")
    shutil.copytree(saved, repo / "plans", copy_function=shutil.copyfile)
    # a commit lands after the plan was made: dev (applied first) changed, so nothing may apply
    dev = repo / "blueprints" / "dev.yaml"
    dev.write_text(dev.read_text().replace("    max: 2\n", "    max: 3\n"))
    ran = _job(repo, flow, "apply", env, {})
    log = (repo.parent / "apply.log").read_text()
    assert ran == [("apply the reviewed plans in the rollout's order", 2)], log[-4000:]
    assert ("[dev] failed: saved plan plans/dev no longer matches: the blueprint changed "
            "(node_pools[1].max 2 -> 3)") in log, log[-4000:]
    ups = {p.parent.name: json.loads(p.read_text())["outcome"] for p in (repo / ".infra" / "records").glob("*/*.json")
           if json.loads(p.read_text())["command"] == "up"}
    assert ups == {"dev": "failed"}  # prod not started: nothing applied

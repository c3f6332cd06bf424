"""The predict report page in a real headless browser (Debian's Chromium, driven by Selenium):
it loads without console errors, its timeline has one series per track, clicking a timeline
seeks the video, and the download button hands over the per-frame table."""

import os
import shutil
import time
from pathlib import Path

import pytest

import tests.predict.test_time_axis as base
from fervid.predict import PredictOptions, Predictor
from fervid.predict.outputs import write_outputs

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's chromium and chromium-driver (see .ci/run)")
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory, frame_model_file):
    folder = tmp_path_factory.mktemp("report")
    clip = base.write_clip(folder / "two faces.mp4")  # a space: the link must be URL-encoded
    predictor = Predictor(frame_model_file, PredictOptions(batch_size=8))
    predictor.detector = base.BrightFrameFaceDetector(
        centres=((0.25, 0.5), (0.75, 0.5)), half=(0.12, 0.17)
    )
    prediction = predictor.run(clip)
    assert prediction.table["track"].nunique() == 2
    written = write_outputs(prediction, folder / "out", report=True)
    page = next(path for path in written if path.suffix == ".html")
    return page, prediction


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_report_loads_without_errors_and_has_a_series_per_track(report, browser):
    page, prediction = report
    browser.get(page.as_uri())
    wait_for(
        lambda: browser.execute_script("return document.querySelector('video').readyState") >= 1
    )
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    series = browser.find_elements("css selector", "canvas.timeline")
    tracks = sorted(int(t) for t in prediction.table["track"].unique())
    assert sorted(int(c.get_attribute("data-track")) for c in series) == tracks
    rows = browser.find_elements("css selector", "#tracks tbody tr")
    dominant = {t["track"]: t["dominant_label"] for t in prediction.summary["tracks"]}
    assert [r.text.split()[2] for r in rows] == [dominant[t] for t in tracks]


def test_clicking_a_timeline_seeks_the_video(report, browser):
    page, prediction = report
    browser.get(page.as_uri())
    wait_for(
        lambda: browser.execute_script("return document.querySelector('video').readyState") >= 1
    )
    canvas = browser.find_elements("css selector", "canvas.timeline")[1]
    width = canvas.size["width"]
    duration = browser.execute_script(
        "return JSON.parse(document.getElementById('report-data').textContent).duration"
    )
    webdriver.ActionChains(browser).move_to_element_with_offset(
        canvas, int(0.75 * width) - width // 2, 0
    ).click().perform()
    wait_for(
        lambda: browser.execute_script("return document.querySelector('video').currentTime") > 0
    )
    now = browser.execute_script("return document.querySelector('video').currentTime")
    assert now == pytest.approx(0.75 * duration, abs=0.15)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_download_button_hands_over_the_per_frame_table(report, browser):
    page, prediction = report
    browser.get(page.as_uri())
    browser.find_element("id", "download").click()
    target = Path(browser.downloads) / "two faces_frames.csv"
    wait_for(target.exists)
    wait_for(lambda: target.stat().st_size > 0)
    lines = target.read_text().splitlines()
    assert lines[0].startswith("track,frame,time,Neutral,")
    assert len(lines) - 1 == len(prediction.table)


frame_model_file = base.frame_model_file  # fixture

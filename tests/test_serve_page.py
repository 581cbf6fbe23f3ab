"""The page at `/` of `transferlm serve`, driven in headless Chromium (Debian's chromium and
chromium-driver, through selenium): what a person sees must be what the API answers.

Screenshots go to the test's temporary folder; with TRANSFERLM_SCREENSHOTS=DIR (e.g. docs) they
are also copied there (docs/serve_page.png, docs/serve_page_error.png are made that way).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from serve_util import Running, make_classifier, make_gpt2, make_tagger
from transferlm.serving import ServeOptions, create_app, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    clf, _ = make_classifier(d / "clf")
    tag, tag_data = make_tagger(d / "tag")
    models = [load_model("topics", str(clf)), load_model("ner", str(tag)), load_model("minilm", "minilm"),
              load_model("tiny-gpt", str(make_gpt2(d / "gpt")))]
    with Running(create_app(models, ServeOptions(max_new_tokens=64))) as run:
        yield run, tag_data


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1100,1500"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(drv, tmp_path: Path, name: str) -> Path:
    height = int(drv.execute_script("return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom) + 24"))
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the whole page in one picture
                        {"width": 1100, "height": height, "deviceScaleFactor": 1, "mobile": False})
    out = tmp_path / name
    try:
        assert drv.save_screenshot(str(out))
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert out.stat().st_size > 20_000  # a drawn page, not a blank one
    dest = os.environ.get("TRANSFERLM_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(dest) / name)
    return out


def test_page_shows_tokens_classes_entities_and_a_streamed_completion(served, browser, tmp_path):
    run, tag_data = served
    api = httpx.Client(base_url=run.url, timeout=60)
    text = " ".join(tag_data[0][0])  # a tweet the tagger was fitted on: it has entities
    drv = browser
    drv.get(run.url + "/")
    wait = WebDriverWait(drv, 60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert "topics (classifier)" in drv.find_element(By.ID, "served").text

    box = drv.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    drv.find_element(By.ID, "analyze").click()
    wait.until(lambda d: d.find_element(By.ID, "analyze-status").text == "done")
    assert not drv.find_element(By.ID, "error").is_displayed()

    # subword tokens: one coloured box per token of the chosen model, in order
    model = drv.find_element(By.ID, "tokenize-model").get_attribute("value")
    want = api.post("/tokenize", json={"model": model, "inputs": text}).json()["results"][0]
    toks = drv.find_elements(By.CSS_SELECTOR, "#tokens .tok")
    assert [t.text for t in toks] == [s.replace(" ", "\u2423") for s in want["text"]]
    assert [int(t.get_attribute("data-id")) for t in toks] == want["ids"]
    colours = [t.value_of_css_property("background-color") for t in toks]
    assert all(a != b for a, b in zip(colours[1:-2], colours[2:-1]))  # neighbours differ
    assert "special" in toks[0].get_attribute("class")  # [CLS]

    # class probabilities as bars: every label, best first, bar width = probability
    want = api.post("/classify", json={"model": "topics", "inputs": text, "truncate": True}).json()["results"][0]
    rows = drv.find_elements(By.CSS_SELECTOR, "#classes .class-row")
    assert [r.find_element(By.CLASS_NAME, "class-label").text for r in rows] == [d["label"] for d in want]
    for r, d in zip(rows, want):
        assert r.find_element(By.CLASS_NAME, "class-value").text == f"{100 * d['score']:.1f}%"
        track = r.find_element(By.CLASS_NAME, "bar-track").size["width"]
        bar = r.find_element(By.CLASS_NAME, "bar").size["width"]
        assert abs(bar - d["score"] * track) <= 2  # pixels
    assert "best" in rows[0].get_attribute("class")

    # entities highlighted in the text: the marks are /tag's spans, the text around them intact
    want = api.post("/tag", json={"model": "ner", "inputs": text}).json()["results"][0]
    assert want, "the fitted tagger finds entities in its own training tweet"
    marks = drv.find_elements(By.CSS_SELECTOR, "#entities mark.ent")
    assert [(m.find_element(By.CLASS_NAME, "ent-text").text, m.get_attribute("data-label")) for m in marks] == \
           [(text[e["start"]:e["end"]], e["label"]) for e in want]
    assert all(m.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent") for m in marks)
    shown = drv.execute_script("""
        const box = document.getElementById('entities').cloneNode(true);
        box.querySelectorAll('.ent-label').forEach((e) => e.remove());
        return box.textContent;""")
    assert shown == text

    # the prompt box: the completion arrives token by token and ends as /generate's text
    prompt = drv.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("the company said")
    n = drv.find_element(By.ID, "max-new-tokens")
    n.clear()
    n.send_keys("24")
    drv.execute_script("""
        window.__seen = [];
        // each update of the completion replaces its text node: one record per drawn step
        new MutationObserver((recs) => recs.forEach((r) => r.addedNodes.forEach((n) => window.__seen.push(n.data))))
          .observe(document.getElementById('completion-text'), {childList: true});""")
    drv.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "completion-text").get_attribute("data-done") == "true")
    want = api.post("/generate", json={"model": "tiny-gpt", "inputs": "the company said",
                                       "parameters": {"max_new_tokens": 24}}).json()
    assert drv.find_element(By.ID, "completion-text").text == want["generated_text"].strip() or \
        drv.execute_script("return document.getElementById('completion-text').textContent") == want["generated_text"]
    assert drv.find_element(By.ID, "generate-status").text == "done: 24 tokens (length)"
    seen = [s for s in drv.execute_script("return window.__seen") if s]
    assert len(seen) >= 24, seen  # drawn event by event (24 tokens, then the final text), not once at the end
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    assert drv.find_element(By.ID, "completion-prompt").text == "the company said"
    screenshot(drv, tmp_path, "serve_page.png")

    # classify by prompting: the prompt box's text scored against the labels typed, one bar each
    labels = drv.find_element(By.ID, "prompt-labels")
    labels.clear()
    labels.send_keys("business, sport, tech")
    drv.find_element(By.ID, "prompt-classify").click()
    wait.until(lambda d: d.find_element(By.ID, "prompt-status").text.startswith("done"))
    want = api.post("/prompt", json={"model": "tiny-gpt", "inputs": "the company said",
                                     "labels": ["business", "sport", "tech"], "overflow": "clip"}).json()["results"][0]
    rows = drv.find_elements(By.CSS_SELECTOR, "#prompt-classes .class-row")
    assert [r.find_element(By.CLASS_NAME, "class-label").text for r in rows] == \
        [d["label"] for d in want["probabilities"]]
    assert [r.find_element(By.CLASS_NAME, "class-value").text for r in rows] == \
        [f"{100 * d['score']:.1f}%" for d in want["probabilities"]]
    assert drv.find_element(By.ID, "prompt-status").text == f"done: {want['label']}"

    # an error the API returns is shown to the person, and the page still works after it
    drv.find_element(By.ID, "chat").click()
    drv.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "422" in drv.find_element(By.ID, "error").text and "<|im_start|>" in drv.find_element(By.ID, "error").text
    screenshot(drv, tmp_path, "serve_page_error.png")
    drv.find_element(By.ID, "chat").click()
    drv.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "completion-text").get_attribute("data-done") == "true")
    assert not drv.find_element(By.ID, "error").is_displayed()


def test_docs_page_renders_offline_in_chromium(served, browser):
    run, _ = served
    drv = browser
    drv.get(run.url + "/docs")  # Swagger UI from this server's files: there is no network here
    blocks = WebDriverWait(drv, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary"))
    shown = {tuple(b.text.split("\n")[:2]) for b in blocks}
    assert {("POST", "/embed"), ("POST", "/classify"), ("POST", "/tag"), ("POST", "/generate_stream"),
            ("GET", "/metrics")} <= shown

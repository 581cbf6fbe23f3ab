"""docs/serve_page_smollm2.png: the `transferlm serve` page with SmolLM2 answering in the prompt box.

    flock /tmp/heavy.lock python docs/scripts/serve_screenshot.py

Serves MiniLM, the small classifier and tagger the tests fit (tests/serve_util.py: a 2-layer
encoder fitted on 20 BBC sentences and 12 WNUT-16 tweets) and the smollm2 asset; drives the page
in headless Chromium as tests/test_serve_page.py does, with a chat prompt for SmolLM2, and saves
the whole page. Prints the completion the page showed and the one /generate gives.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serve_util import Running, make_classifier, make_tagger  # noqa: E402

from transferlm.serving import ServeOptions, create_app, load_model  # noqa: E402

PROMPT = "What is the capital of France? Answer in one sentence."


def main() -> None:
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="serve-shot-"))
    clf, _ = make_classifier(tmp / "clf")
    tag, tag_data = make_tagger(tmp / "tag")
    models = [load_model("minilm", "minilm"), load_model("topics", str(clf)), load_model("ner", str(tag)),
              load_model("smollm2", "smollm2")]
    text = " ".join(tag_data[0][0])
    with Running(create_app(models, ServeOptions())) as run:
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--window-size=1100,1500"]:
            opts.add_argument(flag)
        drv = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
        try:
            drv.get(run.url + "/")
            wait = WebDriverWait(drv, 300)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
            box = drv.find_element(By.ID, "text")
            box.clear()
            box.send_keys(text)
            drv.find_element(By.ID, "analyze").click()
            wait.until(lambda d: d.find_element(By.ID, "analyze-status").text == "done")
            prompt = drv.find_element(By.ID, "prompt")
            prompt.clear()
            prompt.send_keys(PROMPT)
            drv.find_element(By.ID, "chat").click()
            drv.find_element(By.ID, "generate").click()
            wait.until(lambda d: d.find_element(By.ID, "completion-text").get_attribute("data-done") == "true")
            shown = drv.find_element(By.ID, "completion-text").text
            height = int(drv.execute_script("return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom) + 24"))
            drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 1100, "height": height, "deviceScaleFactor": 1, "mobile": False})
            out = ROOT / "docs" / "serve_page_smollm2.png"
            drv.save_screenshot(str(out))
        finally:
            drv.quit()
        api = httpx.post(run.url + "/generate", json={"model": "smollm2", "inputs": PROMPT, "chat": True,
                                                       "parameters": {"max_new_tokens": 24}}, timeout=300).json()
    print(f"page showed: {shown!r}")
    print(f"/generate:   {api['generated_text']!r}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

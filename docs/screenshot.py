"""Save docs/screenshot.png: the running app answering a question, its first source expanded.

    python app.py &                      # over the real seeds/
    .venv/bin/python docs/screenshot.py  # [URL] [QUESTION]

Uses Debian's chromium with the same flags as tests/system/test_app.py (no internet,
so background networking is off).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def main(url: str = "http://127.0.0.1:7860/", question: str = "Who is Derek Scissors?") -> None:
    target = Path(__file__).resolve().parent / "screenshot.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        box = page.get_by_placeholder("Ask a question about the sources")
        box.fill(question)
        box.press("Enter")
        answer = page.locator(".qa-answer").first
        answer.wait_for(timeout=120_000)
        answer.locator("summary").first.click()
        answer.locator("mark").first.wait_for(state="visible")
        page.screenshot(path=str(target), full_page=True)
        browser.close()
    print(f"saved {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])

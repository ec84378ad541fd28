"""test_serve_page.py: the live page of `salign serve` (issue 14) in a real browser. Headless
Chromium (Debian's chromium package) opens /?q=...&ask=1, the page streams an answer from
/v1/chat/completions; the test reads the rendered sentences, edits (the upstream's original in
<del>, the revision in <ins>) and the stats line from the DOM over the DevTools protocol
(--remote-debugging-pipe: NUL-separated JSON on fds 3 and 4, no extra Python package), checks
that the text equals the API's answer for the same question, and saves a screenshot as a test
artifact (tests/tmp/.../serve_page.png). Skipped where chromium is not installed."""
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, skip, test, tmpdir  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
Q = "What is 12 plus 7? Answer in two short sentences."
MAX = 24
KEY = "sk-page"


class Browser:
    """Chromium driven through --remote-debugging-pipe."""

    def __init__(self, url):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            skip("chromium is not installed (Debian: apt-get install chromium)")
        r3, w3 = os.pipe()
        r4, w4 = os.pipe()

        def fds():
            os.dup2(r3, 100)
            os.dup2(w4, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        self.proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                      "--remote-debugging-pipe", "--window-size=1000,800",
                                      "--user-data-dir=" + os.path.join(tmpdir(), "chromium"), url],
                                     preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(r3)
        os.close(w4)
        self.w = os.fdopen(w3, "wb", buffering=0)
        self.r = os.fdopen(r4, "rb", buffering=0)
        self.buf = b""
        self.n = 0
        self.session = None

    def call(self, method, params=None, session=True):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = self.r.read(65536)
                assert chunk, "chromium closed the pipe"
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            m = json.loads(raw)
            if m.get("id") == self.n:
                assert "error" not in m, m
                return m["result"]

    def attach(self):
        for _ in range(100):
            pages = [t for t in self.call("Target.getTargets", session=False)["targetInfos"] if t["type"] == "page"]
            if pages:
                self.session = self.call("Target.attachToTarget", {"targetId": pages[0]["targetId"],
                                                                   "flatten": True}, session=False)["sessionId"]
                return
            time.sleep(0.1)
        raise AssertionError("no page target")

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r["result"].get("value")

    def close(self):
        self.proc.kill()
        self.proc.wait()


@test
def test_page_streams_sentences_and_edits_in_chromium():
    if not os.path.exists(GGUF):
        skip("missing %s" % GGUF)
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        skip("chromium is not installed (Debian: apt-get install chromium)")
    p = subprocess.Popen([SALIGN, "serve", "--upstream", NAME, "--aligner", NAME, "-t", "2", "--port", "0",
                          "--api-key", KEY], stderr=subprocess.PIPE, text=True)
    browser = None
    try:
        port = None
        for line in p.stderr:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "the server did not start"
        threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
        url = "http://127.0.0.1:%d/?%s" % (port, urllib.parse.urlencode({"q": Q, "ask": 1, "max": MAX, "key": KEY}))
        browser = Browser(url)
        browser.attach()
        deadline = time.time() + 120
        while time.time() < deadline and browser.js("document.getElementById('answer').dataset.done") != "1":
            time.sleep(0.2)
        assert browser.js("document.getElementById('answer').dataset.done") == "1", "the page did not finish"
        assert browser.js("document.getElementById('err').textContent") == "", browser.js(
            "document.getElementById('err').textContent")
        sents = browser.js("""Array.from(document.querySelectorAll('#answer .sent')).map(s => ({
            text: s.textContent, edited: s.classList.contains('edited'),
            original: s.querySelector('del') ? s.querySelector('del').textContent : null,
            revised: s.querySelector('ins') ? s.querySelector('ins').textContent : null}))""")
        stats = browser.js("document.getElementById('stats').textContent")
        shot = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
        path = os.path.join(tmpdir(), "serve_page.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot))
        print("screenshot: %s" % path)
        assert sents, "no sentence rendered"
        assert re.search(r"copy rate \d+%", stats) and "first sentence" in stats, stats
        # the rendered answer (revisions, without the struck originals) is the API's answer
        shown = "".join(s["text"].replace(s["original"], "", 1) if s["edited"] else s["text"] for s in sents)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/chat/completions",
                  body=json.dumps({"model": "stream-aligner", "max_tokens": MAX,
                                   "messages": [{"role": "user", "content": Q}]}),
                  headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
        ans = json.loads(c.getresponse().read())
        assert shown == ans["choices"][0]["message"]["content"], (shown, ans)
        edits = ans["x_stream_aligner"]["sentences_detail"]
        assert [e["copied"] or not e["aligned"] for e in edits] == [not s["edited"] for s in sents], (edits, sents)
        for s, e in zip(sents, edits):
            if s["edited"]:
                assert s["original"] == e["original"] and s["revised"] == e["revised"], (s, e)
    finally:
        if browser:
            browser.close()
        p.terminate()
        p.wait(timeout=30)


if __name__ == "__main__":
    main()

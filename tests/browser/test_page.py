#!/usr/bin/env python3
"""Browser test of `face2scene serve` (ctest label `browser`): headless Chromium, driven through
chromedriver's W3C WebDriver HTTP API (Python standard library only), opens the page, drops
examples/solvay_group.jpg with a reference photo of one person, waits for the result, checks that
the restored image, the degradation read-out and the faces are shown, that the page fits a phone
screen, and saves screenshots. Exit 77 (ctest: skipped) when Chromium, chromedriver or the models
are missing.

  python3 tests/browser/test_page.py --cli build/bin/face2scene --out build/browser [--scale 4]
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
SKIP = 77


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {url}: {e.code} {e.read()[:500]!r}") from None


class Browser:
    """The few WebDriver commands the test needs."""

    def __init__(self, driver_url, chromium, width, height):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--window-size={width},{height}"]}}}}
        self.base = driver_url
        self.sid = http("POST", f"{driver_url}/session", caps)["value"]["sessionId"]
        self.url = f"{driver_url}/session/{self.sid}"

    def cmd(self, method, path, body=None):
        return http(method, self.url + path, body)["value"]

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find(self, css):
        v = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(v, dict) or ELEMENT not in v:
            raise AssertionError(f"no element {css}: {v}")
        return v[ELEMENT]

    def send_file(self, css, path):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": path})

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            err = self.js("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent;")
            if err:
                raise AssertionError(f"the page shows an error while waiting for {what}: {err}")
            v = self.js(script)
            if v:
                return v
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def resize(self, width, height):
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self):
        try:
            http("DELETE", self.url)
        except Exception:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True, help="the built face2scene binary")
    ap.add_argument("--out", default="browser-out", help="folder for screenshots")
    ap.add_argument("--photo", default=os.path.join(ROOT, "examples/solvay_group.jpg"))
    ap.add_argument("--ref", default=os.path.join(ROOT, "tests/fixtures/faceres/solvay_face.png"),
                    help="a reference photo of one person (default: a face of the Solvay photo, public domain)")
    ap.add_argument("--person", default="Solvay face")
    ap.add_argument("--scale", default="4", choices=["1", "2", "4"])
    ap.add_argument("--blind-paste-min", default="60", help="px; the example's faces measure 54-78 px")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--timeout", type=int, default=900, help="seconds for the restore")
    args = ap.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        print("skipped: needs chromium and chromium-driver (apt install chromium chromium-driver)")
        return SKIP
    weights = os.path.join(ROOT, "weights", "ref_fr.safetensors")
    if not os.path.exists(weights):
        print(f"skipped: {weights} missing")
        return SKIP
    os.makedirs(args.out, exist_ok=True)
    temp = tempfile.mkdtemp(prefix="f2s_browser_")
    procs = []
    try:
        # The server on a free loopback port; it prints its address once the models are loaded.
        server = subprocess.Popen([args.cli, "serve", "--port", "0", "--temp", temp, "--models", os.path.join(ROOT, "weights")],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append(server)
        line = server.stdout.readline()
        if "http://" not in line:
            raise AssertionError(f"serve did not start: {line!r} (exit {server.wait(timeout=30)})")
        url = line[line.index("http://"):].split()[0]
        print("server:", url)

        dport = free_port()
        chromedriver = subprocess.Popen([driver, f"--port={dport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(chromedriver)
        driver_url = f"http://127.0.0.1:{dport}"
        for _ in range(100):
            try:
                if http("GET", f"{driver_url}/status", timeout=2)["value"]["ready"]:
                    break
            except Exception:
                time.sleep(0.1)
        b = Browser(driver_url, chromium, args.width, 1000)
        try:
            b.go(url)
            assert "face2scene" in b.js("return document.title;")
            b.send_file("#photo-input", os.path.abspath(args.photo))
            status = b.wait("const t = document.getElementById('faces-status').textContent; return /found/.test(t) && t;",
                            120, "face detection")
            print("page:", status)
            nfaces = b.js("return document.querySelectorAll('#preview-box .fbox').length;")
            assert nfaces >= 10, f"{nfaces} face boxes drawn on the Solvay photo"
            # One person with one reference photo; the face assignment list appears.
            b.click("#add-person")
            b.js("const i = document.querySelector('.person-name'); i.value = arguments[0];"
                 "i.dispatchEvent(new Event('input'));", args.person)
            b.send_file(".person input[type=file]", os.path.abspath(args.ref))
            b.wait("return document.querySelectorAll('#face-assign select').length;", 10, "the face assignment list")
            b.js("const s = document.getElementById('opt-scale'); s.value = arguments[0];", args.scale)
            # Small faces without a reference are read, not pasted (restore --blind-paste-min).
            b.js("document.getElementById('opt-blind-paste-min').value = arguments[0];", args.blind_paste_min)
            t0 = time.time()
            b.click("#restore-btn")
            b.wait("return !document.getElementById('progress').hidden || !document.getElementById('result').hidden;",
                   30, "the progress bar")
            b.wait("return !document.getElementById('result').hidden && document.getElementById('after-img').naturalWidth;",
                   args.timeout, "the result")
            print(f"result shown after {time.time() - t0:.1f} s")
            info = b.js("""
              const a = document.getElementById('after-img'), p = document.getElementById('preview-img');
              return {after: [a.naturalWidth, a.naturalHeight], photo: [p.naturalWidth, p.naturalHeight],
                      words: document.getElementById('degradation-words').textContent,
                      faces: document.querySelectorAll('#faces .face').length,
                      thumbs: document.querySelectorAll('#faces canvas').length,
                      people: [...document.querySelectorAll('#faces .who')].map(e => e.parentElement.textContent),
                      kept: [...document.querySelectorAll('#faces .who')].filter(e => /face kept/.test(e.parentElement.textContent)).length,
                      download: document.getElementById('download').href};""")
            print("page shows:", json.dumps(info)[:600])
            s = int(args.scale)
            assert info["after"] == [info["photo"][0] * s, info["photo"][1] * s], info
            assert info["words"] and info["words"] != "—" and "not read" not in info["words"], info["words"]
            assert info["faces"] >= 10 and info["thumbs"] == 2 * info["faces"], info
            assert info["download"].startswith("blob:"), info["download"]
            assert info["kept"] >= 1, f"no face kept unpasted under {args.blind_paste_min} px: {info['people']}"
            # The viewer: the split handle and zoom work.
            b.click("#zoom-1")
            z = b.js("return document.getElementById('stage').style.transform;")
            assert "scale(1)" in z, z
            b.click("#zoom-fit")
            # Full page at desktop width, then a phone: nothing may stick out sideways.
            height = b.js("return document.documentElement.scrollHeight;")
            b.resize(args.width, min(max(height + 100, 900), 4000))
            time.sleep(0.5)
            b.js("window.scrollTo(0, 0);")
            b.screenshot(os.path.join(args.out, "serve_desktop.png"))
            b.resize(390, 844)
            time.sleep(0.5)
            overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;")
            assert overflow <= 1, f"the page is {overflow} px wider than a 390 px phone screen"
            b.js("document.getElementById('result').scrollIntoView();")
            b.screenshot(os.path.join(args.out, "serve_phone.png"))
            print("screenshots:", os.path.join(args.out, "serve_desktop.png"), os.path.join(args.out, "serve_phone.png"))
        finally:
            b.quit()
        # SIGTERM stops the server cleanly, and its temporary files go with it.
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=120)
        assert rc == 0, f"serve exited {rc} on SIGTERM"
        assert not os.listdir(temp), f"serve left {os.listdir(temp)} in its temporary folder"
        print("ok")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

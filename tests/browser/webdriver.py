"""A tiny W3C WebDriver client (Python 3 standard library only) for Debian's chromedriver + chromium.

    from webdriver import WebDriver
    with WebDriver() as wd:
        wd.get("http://127.0.0.1:8006/#token=...")
        row = wd.wait_for(lambda: wd.find_all('tr[data-name="web1"]'), 10, "the VM row")
        wd.click(wd.find('tr[data-name="web1"] .btn-pause'))
        wd.screenshot("/tmp/page.png")

Elements are returned as `Element` (a str holding the WebDriver element id), so they can be passed to
execute() and come back from it. Errors from the driver raise WebDriverError.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C name of an element reference
KEY_ENTER = "\ue007"  # for send_keys: the Enter key ("\r" in the text is not sent as Enter)


class WebDriverError(Exception):
    """An error answer from the driver: .error is the W3C error code ("no such element", ...)."""

    def __init__(self, error, message):
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


class Element(str):
    """A WebDriver element id."""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_wire(v):
    """Arguments for execute(): Element -> element reference, recursively."""
    if isinstance(v, Element):
        return {ELEMENT_KEY: str(v)}
    if isinstance(v, (list, tuple)):
        return [_to_wire(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_wire(x) for k, x in v.items()}
    return v


def _from_wire(v):
    """Results from execute(): element reference -> Element, recursively."""
    if isinstance(v, dict):
        if ELEMENT_KEY in v and len(v) == 1:
            return Element(v[ELEMENT_KEY])
        return {k: _from_wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_wire(x) for x in v]
    return v


class WebDriver:
    """Starts chromedriver on a free port and a headless chromium session in it."""

    def __init__(self, chromedriver=CHROMEDRIVER, chromium=CHROMIUM, args=None, timeout=30):
        self.timeout = timeout
        self.session = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # chromedriver's own log: kept in a temp file, shown in the error if it does not start.
        self._log = tempfile.TemporaryFile()
        # Chromium's temporary directories (profile, org.chromium.Chromium.*): in one of ours, removed at quit,
        # since a browser that is stopped leaves them behind in /tmp.
        self._tmp = tempfile.mkdtemp(prefix="virtus-browser-")
        self.proc = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": self._tmp},
        )
        try:
            self._wait_ready()
            chrome_args = args or ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]
            caps = {
                "capabilities": {
                    "alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {"binary": chromium, "args": list(chrome_args)},
                        "goog:loggingPrefs": {"browser": "ALL"},
                    }
                }
            }
            value = self._request("POST", "/session", caps)
            self.session = value["sessionId"]
        except BaseException:
            self._stop_driver()
            raise

    # ---- plumbing ----

    def _wait_ready(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self._request("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.1)
        self._log.seek(0)
        log = self._log.read().decode(errors="replace")
        raise RuntimeError(f"chromedriver did not start on port {self.port}:\n{log}")

    def _request(self, method, path, body=None, timeout=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as res:
                answer = json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                v = json.loads(e.read()).get("value", {})
                raise WebDriverError(v.get("error", str(e.code)), (v.get("message") or "").split("\n")[0]) from None
            except (ValueError, AttributeError):
                raise WebDriverError(str(e.code), e.reason) from None
        return answer.get("value")

    def _cmd(self, method, path, body=None):
        """A command in this session; POSTs always send a JSON body, as W3C wants."""
        if method == "POST" and body is None:
            body = {}
        return self._request(method, f"/session/{self.session}{path}", body)

    # ---- navigation and elements ----

    def get(self, url):
        self._cmd("POST", "/url", {"url": url})

    def current_url(self):
        return self._cmd("GET", "/url")

    def find(self, css, within=None):
        """The first element matching the CSS selector (raises WebDriverError 'no such element')."""
        path = f"/element/{within}/element" if within else "/element"
        return Element(self._cmd("POST", path, {"using": "css selector", "value": css})[ELEMENT_KEY])

    def find_all(self, css, within=None):
        """Every element matching the CSS selector (maybe none)."""
        path = f"/element/{within}/elements" if within else "/elements"
        return [Element(v[ELEMENT_KEY]) for v in self._cmd("POST", path, {"using": "css selector", "value": css})]

    def click(self, el):
        self._cmd("POST", f"/element/{el}/click")

    def send_keys(self, el, text):
        self._cmd("POST", f"/element/{el}/value", {"text": text})

    def clear(self, el):
        self._cmd("POST", f"/element/{el}/clear")

    def text(self, el):
        """The element's rendered text (what a user sees; "" when hidden)."""
        return self._cmd("GET", f"/element/{el}/text")

    def attribute(self, el, name):
        return self._cmd("GET", f"/element/{el}/attribute/{name}")

    def prop(self, el, name):
        """A DOM property (e.g. "disabled", "value", "hidden")."""
        return self._cmd("GET", f"/element/{el}/property/{name}")

    def displayed(self, el):
        return self._cmd("GET", f"/element/{el}/displayed")

    def execute(self, script, *args):
        """Run a function body synchronously in the page: execute("return arguments[0] + 1", 41)."""
        return _from_wire(self._cmd("POST", "/execute/sync", {"script": script, "args": _to_wire(list(args))}))

    # ---- prompts (window.alert/confirm/prompt) ----

    def alert_text(self):
        return self._cmd("GET", "/alert/text")

    def accept_alert(self, text=None):
        """Accept the open alert/confirm/prompt, typing text into a prompt first."""
        if text is not None:
            self._cmd("POST", "/alert/text", {"text": text})
        self._cmd("POST", "/alert/accept")

    def dismiss_alert(self):
        self._cmd("POST", "/alert/dismiss")

    # ---- waiting, screenshots, logs ----

    def wait_for(self, predicate, timeout=10, what="a condition"):
        """Poll predicate() until it returns something true and return that; AssertionError on timeout.
        A WebDriverError inside the predicate counts as not yet (and is named in the timeout message)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = predicate()
                if v:
                    return v
            except WebDriverError as e:
                last = e
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                     + (f" (last error: {last})" if last else ""))
            time.sleep(0.1)

    def screenshot(self, path):
        """Save a PNG of the window to path."""
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def browser_log(self):
        """The page's console messages since the last call: [{"level", "message", ...}]."""
        return self._cmd("POST", "/se/log", {"type": "browser"})

    # ---- the end ----

    def quit(self):
        if self.session:
            try:
                self._cmd("DELETE", "")
            except (OSError, WebDriverError):
                pass
            self.session = None
        self._stop_driver()

    def _stop_driver(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()
        return False


if __name__ == "__main__":
    # Quick smoke test: python3 webdriver.py URL [PNG]
    import sys
    with WebDriver() as wd:
        wd.get(sys.argv[1])
        print(wd.execute("return document.title"))
        if len(sys.argv) > 2:
            wd.screenshot(sys.argv[2])

#!/usr/bin/env python3
"""Self-check of webdriver.py: serve a tiny page, click its button, check the text, save a screenshot.

    python3 tests/browser/selftest.py /tmp/selftest.png
"""

import http.server
import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import WebDriver, WebDriverError  # noqa: E402

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>selftest</title></head>
<body style="font: 20px sans-serif; margin: 40px">
<p id="msg">before</p>
<input id="box">
<button id="go">Click me</button>
<script>
document.getElementById('go').addEventListener('click', function () {
  document.getElementById('msg').textContent = 'after: ' + document.getElementById('box').value;
});
</script>
</body></html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: selftest.py SCREENSHOT.png")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with WebDriver() as wd:
            wd.get(url)
            assert wd.execute("return document.title") == "selftest"
            msg = wd.find("#msg")
            assert wd.text(msg) == "before", wd.text(msg)
            wd.send_keys(wd.find("#box"), "hello")
            wd.click(wd.find("#go"))
            wd.wait_for(lambda: wd.text(msg) == "after: hello", 5, "the button to change the text")
            assert wd.attribute(msg, "id") == "msg"
            assert wd.find_all("button") and not wd.find_all(".nothing")
            assert wd.execute("return arguments[0].id + arguments[1]", msg, "!") == "msg!"
            assert wd.execute("return document.getElementById('go')") == wd.find("#go")
            try:
                wd.find(".nothing")
                raise AssertionError("find() of a missing element did not fail")
            except WebDriverError as e:
                assert e.error == "no such element", e
            try:
                wd.wait_for(lambda: False, 0.3, "nothing")
                raise RuntimeError("wait_for did not time out")
            except AssertionError as e:
                assert "nothing" in str(e)
            wd.screenshot(sys.argv[1])
        with open(sys.argv[1], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    finally:
        server.shutdown()
    print("selftest: ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The browser console in a real headless Chromium: log in (a wrong token refused, the right one taken),
see the host's image, run a container from the page's form, open its shell in the page's terminal and type a
command whose output appears, stop it, remove it. Prints TAP; screenshots go to $SHOTS.

Environment: SERVE_URL (as `virtus serve` printed it), VIRTUS and VIRTUS_ROOT (to check the host's state
with the command line), SHOTS (a directory)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webdriver  # noqa: E402
from tap import Tap  # noqa: E402

URL = os.environ["SERVE_URL"]
BASE, TOKEN = URL.split("/#token=")
SHOTS = os.environ["SHOTS"]
tap = Tap(SHOTS, "", 0)


def virtus(*args):
    return subprocess.run([os.environ["VIRTUS"], "--root", os.environ["VIRTUS_ROOT"], *args],
                          capture_output=True, text=True, timeout=60)


def row(d, table, attr, key):
    found = d.find_all(f'#{table} tr[{attr}="{key}"]')
    return found[0] if found else None


def container_id(name):
    out = virtus("ps", "-a", "-q").stdout.split()
    for cid in out:
        if virtus("inspect", cid).stdout.find(f'"Name": "{name}"') >= 0 or \
           virtus("inspect", cid).stdout.find(f'"Name":"{name}"') >= 0:
            return cid
    return None


def main():
    with webdriver.WebDriver() as d:
        def login():
            d.get(BASE + "/")
            d.wait_for(lambda: d.displayed(d.find("#login-form")), 10, "the login form without a token")
            d.send_keys(d.find("#token-input"), "f" * 64)
            d.click(d.find("#login"))
            d.wait_for(lambda: d.displayed(d.find("#login-form")) and "token" in d.text(d.find("#login-msg")).lower(),
                       10, "the wrong token refused with a message")
            d.screenshot(os.path.join(SHOTS, "login-refused.png"))
            d.clear(d.find("#token-input"))
            d.send_keys(d.find("#token-input"), TOKEN)
            d.click(d.find("#login"))
            d.wait_for(lambda: d.displayed(d.find("#main")), 10, "the page after the right token")
        tap.step(d, "login: no token shows the login form, a wrong one is refused, the right one opens the page", login)

        def image_listed():
            d.wait_for(lambda: any("localhost/bb:latest" in d.text(r) for r in d.find_all("#images tbody tr")),
                       10, "image bb in the images table")
        tap.step(d, "the host's image is listed", image_listed)

        def run_from_form():
            form = d.find("#run-form")
            d.send_keys(d.find('input[name="image"]', form), "bb")
            d.send_keys(d.find('input[name="name"]', form), "web")
            d.send_keys(d.find('input[name="command"]', form), "sleep 600")
            d.click(d.find('button[type="submit"]', form))
            d.wait_for(lambda: any(d.text(r).startswith("web") and "running" in d.text(r)
                                   for r in d.find_all("#containers tbody tr[data-id]")),
                       20, "container web running in the list")
            cid = container_id("web")
            assert cid, "virtus ps -a has no container named web"
            assert "running" in virtus("inspect", cid).stdout, "the command line does not see web running"
            d.screenshot(os.path.join(SHOTS, "containers.png"))
        tap.step(d, "run a container from the page's form: it runs (the page and `virtus inspect` agree)", run_from_form)

        def web_row():
            for r in d.find_all("#containers tbody tr[data-id]"):
                if d.text(r).startswith("web"):
                    return r
            raise AssertionError("no row for container web")

        def shell():
            d.click(d.find(".btn-shell", web_row()))
            d.wait_for(lambda: d.displayed(d.find("#terminal-panel")), 5, "the terminal panel")
            d.wait_for(lambda: "/ #" in d.execute("return window.virtusTermText()"), 15, "the shell's prompt")
            t0 = time.monotonic()
            d.send_keys(d.find(".xterm-helper-textarea"), "echo $((6*7)) > /tmp/x; cat /tmp/x" + webdriver.KEY_ENTER)
            d.wait_for(lambda: "\n42" in d.execute("return window.virtusTermText()"), 10,
                       "the command's output (42) in the terminal")
            print(f"# typed command to its output in the page: {(time.monotonic() - t0) * 1000:.0f} ms")
            cid = container_id("web")
            out = virtus("exec", cid, "cat", "/tmp/x").stdout.strip()
            assert out == "42", f"the shell's file in the container holds {out!r}"
            d.screenshot(os.path.join(SHOTS, "shell.png"))
            d.click(d.find("#terminal-close"))
            d.wait_for(lambda: not d.displayed(d.find("#terminal-panel")), 5, "the terminal closed")
        tap.step(d, "the container's shell in the page: a typed command's output appears, and it ran in the container",
             shell)

        def pause():
            d.click(d.find(".btn-pause", web_row()))
            d.wait_for(lambda: "paused" in d.text(web_row()), 20, "container web paused")
            assert '"Status": "paused"' in virtus("inspect", container_id("web")).stdout.replace('":"', '": "')
            d.click(d.find(".btn-pause", web_row()))
            d.wait_for(lambda: "running" in d.text(web_row()), 20, "container web running again")
        tap.step(d, "pause and unpause from the page: the container's state follows (the command line agrees)", pause)

        def stop():
            d.click(d.find(".btn-stop", web_row()))
            d.wait_for(lambda: "exited" in d.text(web_row()), 30, "container web exited")
            assert "exited" in virtus("inspect", container_id("web")).stdout
        tap.step(d, "stop from the page: the container exits", stop)

        def remove():
            d.click(d.find(".btn-rm", web_row()))
            d.accept_alert()
            d.wait_for(lambda: not any(d.text(r).startswith("web")
                                       for r in d.find_all("#containers tbody tr[data-id]")), 20, "row web gone")
            assert container_id("web") is None, "virtus ps -a still lists web"
            d.screenshot(os.path.join(SHOTS, "removed.png"))
        tap.step(d, "remove from the page (confirmed): the container is gone", remove)

        # (the wrong token's 401 is the one error expected)
        log = [e for e in d.browser_log() if e.get("level") == "SEVERE" and "401 (Unauthorized)" not in e["message"]]
        tap.ok(not log, "no other errors in the browser's console", log)
    print(f"1..{tap.n}")


if __name__ == "__main__":
    main()

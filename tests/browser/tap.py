"""TAP lines for the browser tests: numbered checks, each a function whose timeout or driver error is its
failure (with a screenshot), not the end of the run."""
import os
import sys

import webdriver


class Tap:
    def __init__(self, shots, prefix="", start=0):
        self.shots, self.prefix, self.n = shots, prefix, start

    def ok(self, cond, what, detail=""):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {what}")
        if not cond and detail:
            for line in str(detail).splitlines():
                print(f"#   {line}")
        sys.stdout.flush()
        return cond

    def step(self, d, name, fn):
        try:
            fn()
        except (AssertionError, webdriver.WebDriverError) as e:
            d.screenshot(os.path.join(self.shots, f"{self.prefix}failed-{self.n + 1}.png"))
            return self.ok(False, name, e)
        return self.ok(True, name)

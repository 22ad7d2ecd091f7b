"""The tests' headless Chromium: the same launcher the report benchmark uses."""

from benchmarks.browser import CHROMEDRIVER, CHROMIUM, chromium

__all__ = ["CHROMEDRIVER", "CHROMIUM", "chromium"]

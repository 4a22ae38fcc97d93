"""The web console: static pages and ES modules (served by the API app), the profile labels it shows and
its alarm tone. No build step: the files here are what the browser loads (uPlot is vendored in vendor/)."""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent

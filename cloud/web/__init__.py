"""Static web UI (index.html, worker.html, app.js, style.css); a package only so the files ship as package data."""

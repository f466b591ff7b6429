"""`build --serve`: on 127.0.0.1 only, live pages for the browser and the files on disk as they
were, a waiting page before the first look, a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cnnviz_report.serve import LIVE_SCRIPT, LiveServer, live_page

ROOT = Path(__file__).resolve().parent.parent
PAGE = """<!doctype html><html><head>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; script-src 'self'">
<title>t</title></head><body>layer</body></html>
"""


def get(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode(errors="replace"), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, "", {}


def test_pages_are_served_live_and_the_files_stay_as_they_are(tmp_path):
    site = tmp_path / "site"
    server = LiveServer(str(site), port=0).start()
    try:
        assert server.server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
        status, body, _ = get(server.url)  # before the first look: a page that waits for it
        assert status == 200 and "first look is being drawn" in body and LIVE_SCRIPT in body
        assert get(server.url + ".cnnviz-live/version?page=/index.html")[1] == "missing"
        (site / "layers").mkdir(parents=True)
        (site / "index.html").write_text(PAGE)
        (site / "layers" / "001-a.html").write_text(PAGE)
        status, body, headers = get(server.url + "layers/001-a.html")
        assert status == 200 and body == live_page(PAGE) and headers["Cache-Control"] == "no-store"
        assert "default-src 'none'; connect-src 'self'; img-src 'self'" in body and f'src="{LIVE_SCRIPT}"' in body
        assert (site / "layers" / "001-a.html").read_text() == PAGE  # on disk: today's policy, no script
        escaped = PAGE.replace("'", "&#39;")  # as the templates write it
        assert "default-src &#39;none&#39;; connect-src &#39;self&#39;; img-src" in live_page(escaped)
        version = get(server.url + ".cnnviz-live/version?page=/layers/001-a.html")[1]
        assert version == str(os.stat(site / "layers" / "001-a.html").st_mtime_ns)
        assert "reload" in get(server.url + LIVE_SCRIPT.lstrip("/"))[1]
        assert get(server.url + "../../etc/passwd")[0] == 404 and get(server.url + "nothing.png")[0] == 404
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.server.server_address[1]), timeout=2)


def test_build_serve_prints_the_url_serves_the_site_and_stops_on_ctrl_c(tmp_path):
    out = tmp_path / "site"
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnviz_report", "build", "--serve", "--port", "0", "--out", str(out),
         "--ascent-steps", "1", "--max-filters", "2", "--no-cache", "--no-explain"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines = []
    try:
        deadline = time.monotonic() + 300
        while not any("until Ctrl-C" in line for line in lines[1:]) and time.monotonic() < deadline:
            lines.append(process.stdout.readline())
        url = lines[0].split()[1]
        assert lines[0].startswith("Serving http://127.0.0.1:") and any(line.startswith("First look: ") for line in lines)
        status, body, _ = get(url)
        assert status == 200 and LIVE_SCRIPT in body and "This report is still being built" not in body
        assert get(url + "layers/008-conv4/mosaic.png")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.rstrip("/").rsplit(":", 1)[1])), timeout=2)


def test_a_busy_port_stops_the_build_at_once(tmp_path, capsys):
    from cnnviz_report.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["build", "--serve", "--port", str(port), "--out", str(tmp_path / "site")])
    assert code == 2 and not (tmp_path / "site").exists()
    assert capsys.readouterr().err.startswith(f"cnnviz_report: error: --serve: cannot listen on 127.0.0.1:{port}: ")

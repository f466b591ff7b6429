"""``build --serve``: the site served while it builds, each open page reloading when it is replaced.

The way ``mkdocs serve`` works, on 127.0.0.1 unless another address is asked for. The files on
disk keep their Content-Security-Policy (``default-src 'none'``, no polling) and work from
``file://``; only the pages this server sends get what the reload needs: ``connect-src 'self'``
in their policy and one script of the server's own, which asks every second whether its page's
file changed. Before the first look exists, ``/`` answers with a page that waits for it.
"""

from __future__ import annotations

import http.server
import os
import threading
import urllib.parse
from functools import partial

LIVE_PREFIX = "/.cnnviz-live/"
LIVE_SCRIPT = LIVE_PREFIX + "live.js"
LIVE_VERSION = LIVE_PREFIX + "version"
POLICIES = ("default-src 'none';", "default-src &#39;none&#39;;")  # as written, and as the templates escape it
POLL_MS = 1000

SCRIPT = """// cnnviz_report --serve: reload this page when the build replaces its file.
(function () {
  "use strict";
  var page = location.pathname;
  if (page.slice(-1) === "/") { page += "index.html"; }
  var first = null;
  function poll() {
    fetch("%(version)s?page=" + encodeURIComponent(page), { cache: "no-store" })
      .then(function (answer) { return answer.text(); })
      .then(function (version) {
        if (first === null) { first = version; } else if (version !== first) { location.reload(); return; }
        setTimeout(poll, %(poll)d);
      })
      .catch(function () { setTimeout(poll, %(poll)d * 5); });  // the server stopped: ask less often
  }
  poll();
}());
""" % {"version": LIVE_VERSION, "poll": POLL_MS}

WAITING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; connect-src 'self'; script-src 'self'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Building the report</title><script src="%s" defer></script></head>
<body><p>The report's first look is being drawn: this page opens it when it is ready.</p></body></html>
""" % LIVE_SCRIPT


def live_page(html: str) -> str:
    """A page as this server sends it: its policy lets it ask the server, and it loads the script."""
    for policy in POLICIES:
        if policy in html:
            quote = "'" if "'" in policy else "&#39;"
            html = html.replace(policy, f"{policy} connect-src {quote}self{quote};", 1)
            break
    return html.replace("</head>", f'<script src="{LIVE_SCRIPT}" defer></script></head>', 1)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files of the site folder; HTML through ``live_page``; the script and each page's version."""

    def __init__(self, *args, folder: str, **kwargs):
        self.folder = folder
        super().__init__(*args, directory=folder, **kwargs)

    def log_message(self, format, *args):  # the build's console is for the build
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == LIVE_SCRIPT:
            return self._send(SCRIPT.encode(), "text/javascript; charset=utf-8")
        if parsed.path == LIVE_VERSION:
            page = urllib.parse.parse_qs(parsed.query).get("page", ["/index.html"])[0]
            return self._send(self._version(page).encode(), "text/plain; charset=utf-8")
        target = self.translate_path(parsed.path)
        if parsed.path.endswith("/") or os.path.isdir(target):
            target = os.path.join(target, "index.html")
        if target.endswith(".html"):
            try:
                with open(target, encoding="utf-8") as handle:
                    return self._send(live_page(handle.read()).encode("utf-8"), "text/html; charset=utf-8")
            except FileNotFoundError:
                if parsed.path in ("/", "/index.html"):
                    return self._send(WAITING_PAGE.encode(), "text/html; charset=utf-8")
            except (OSError, UnicodeDecodeError):
                pass
        return super().do_GET()

    def _version(self, page: str) -> str:
        """The page file's modification time, or ``missing``: the script reloads when it changes."""
        try:
            return str(os.stat(self.translate_path(page)).st_mtime_ns)
        except OSError:
            return "missing"

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LiveServer:
    """The site folder served on ``host:port`` in a thread of its own (port 0: any free one)."""

    def __init__(self, folder: str, host: str = "127.0.0.1", port: int = 8000):
        handler = partial(_Handler, folder=os.path.abspath(folder))
        self.server = http.server.ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="cnnviz-serve", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def start(self) -> "LiveServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

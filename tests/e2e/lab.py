"""A private JupyterLab for end-to-end tests, driven in headless Debian Chromium through Playwright.

Everything the server and the browser write lives in one temporary folder: home, Jupyter config, data,
runtime and settings folders, IPython folder and the browser profile.  The server listens on 127.0.0.1
on a free port and requires a token.  The browser is the system ``chromium`` found on ``PATH`` and
given to Playwright by path; nothing is downloaded.

Pitfall handled here: JupyterLab silently drops "Run All" sent before the notebook's kernel connection
is up, and the toolbar's idle mark appears before that.  :meth:`LabPage.wait_kernel_ready` therefore waits
in the page itself until the session context is ready, its kernel's websocket is connected and the
kernel reports idle (JupyterLab is started with ``expose_app_in_browser`` so the page can be asked).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    """``with JupyterLab(root, tmp) as lab:`` serves ``root`` until the block ends (process group killed)."""

    def __init__(self, root: Path, tmp: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 90.0):
        self.root, self.tmp = Path(root), Path(tmp)
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.tmp / "jupyterlab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        dirs = {name: self.tmp / name for name in ("home", "config", "data", "runtime", "ipython", "settings",
                                                   "workspaces", "xdg-cache", "xdg-config")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # no news or update pop-ups over the notebook
        notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        env.update({
            "HOME": str(dirs["home"]), "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]), "XDG_CACHE_HOME": str(dirs["xdg-cache"]),
            "XDG_CONFIG_HOME": str(dirs["xdg-config"]), "JUPYTER_PLATFORM_DIRS": "1",
        })
        env.update(self.extra_env)
        return env

    def __enter__(self) -> "JupyterLab":
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={self.tmp / 'settings'}",
            f"--LabApp.workspaces_dir={self.tmp / 'workspaces'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root in a throw-away machine
            cmd.append("--allow-root")
        env = self._env()
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout} s:\n{self.log_tail()}")
            time.sleep(0.3)

    def __exit__(self, *exc: Any) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as r:
            return json.load(r)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


# JavaScript run in the page against the exposed JupyterLab application.
_JS_PANEL = "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget; return w && w.sessionContext ? w : null; }"

JS_KERNEL_READY = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const w = app.shell.currentWidget; if (!w || !w.sessionContext || !w.context || !w.context.isReady) return false;
  const sc = w.sessionContext; const k = sc.session && sc.session.kernel;
  return Boolean(sc.isReady && k && k.connectionStatus === 'connected' && k.status === 'idle');
}"""

JS_CELL_INDEX_WITH_TAG = """(tag) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.widgets.findIndex(c => (c.model.getMetadata('tags') || []).includes(tag));
}"""

JS_RUN_RANGE = """async ([start, stop]) => {
  const app = window.jupyterapp; const panel = app.shell.currentWidget; const nb = panel.content;
  nb.activeCellIndex = start;
  nb.deselectAll();
  if (stop > start + 1) { nb.extendContiguousSelectionTo(stop - 1); }
  await app.commands.execute('notebook:run-cell');
  return [start, stop];
}"""

JS_DONE = """([start, stop]) => {
  const panel = window.jupyterapp.shell.currentWidget; const nb = panel.content;
  const k = panel.sessionContext.session.kernel;
  const cells = nb.widgets.slice(start, stop).filter(c => c.model.type === 'code');
  const pending = cells.filter(c => c.model.executionCount === null || (c.promptNode && c.promptNode.textContent.includes('*')));
  return k.status === 'idle' && pending.length === 0;
}"""

JS_ERRORS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const out = [];
  nb.widgets.forEach((c, i) => {
    if (c.model.type !== 'code') return;
    const outputs = c.model.outputs;
    for (let j = 0; j < outputs.length; j++) {
      const o = outputs.get(j);
      if (o.type === 'error') out.push([i, o.toJSON().ename + ': ' + o.toJSON().evalue]);
    }
  });
  return out;
}"""

JS_RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  await app.commands.execute('notebook:run-all-cells');
  return true;
}"""

JS_N_CELLS = "() => window.jupyterapp.shell.currentWidget.content.widgets.length"


class LabPage:
    """A notebook opened in the browser, with the waits that make driving it reliable."""

    def __init__(self, page: Any, lab: JupyterLab):
        self.page, self.lab = page, lab

    def open(self, name: str, *, timeout: float = 120.0) -> "LabPage":
        self.page.goto(self.lab.notebook_url(name), wait_until="domcontentloaded")
        self.page.wait_for_function("() => Boolean(window.jupyterapp)", timeout=timeout * 1000)
        self.wait_kernel_ready(timeout=timeout)
        return self

    def wait_kernel_ready(self, *, timeout: float = 120.0) -> None:
        self.page.wait_for_function(JS_KERNEL_READY, timeout=timeout * 1000, polling=250)

    def n_cells(self) -> int:
        return int(self.page.evaluate(JS_N_CELLS))

    def cell_index(self, tag: str) -> int:
        index = int(self.page.evaluate(JS_CELL_INDEX_WITH_TAG, tag))
        if index < 0:
            raise LookupError(f"no cell tagged {tag!r}")
        return index

    def run_cells(self, start: int, stop: int, *, timeout: float = 300.0) -> None:
        """Run cells ``start`` .. ``stop - 1`` and wait until they finished and the kernel is idle."""
        self.wait_kernel_ready(timeout=timeout)
        self.page.evaluate(JS_RUN_RANGE, [start, stop])
        self.page.wait_for_function(JS_DONE, arg=[start, stop], timeout=timeout * 1000, polling=500)

    def run_all(self, *, timeout: float = 600.0) -> None:
        """Clear the outputs, "Run All" once the kernel is ready, and wait until every cell ran."""
        self.wait_kernel_ready(timeout=timeout)
        self.page.evaluate(JS_RUN_ALL)
        self.page.wait_for_function(JS_DONE, arg=[0, self.n_cells()], timeout=timeout * 1000, polling=500)

    def errors(self) -> list[list[Any]]:
        return list(self.page.evaluate(JS_ERRORS))

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

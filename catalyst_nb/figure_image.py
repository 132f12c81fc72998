"""A plotly figure displayed in both its forms at once: interactive, and a static PNG beside it.

Why: a notebook output that holds only plotly's JSON shows nothing where no JavaScript runs (a code host's
notebook view, nbviewer, JupyterLab with an untrusted notebook).  :func:`show_figure` puts both forms in
ONE output bundle; each front end picks the richest form it can draw (JupyterLab the interactive figure,
the others the PNG), so a reader sees the figure everywhere and nothing twice.

The PNG is drawn offline by kaleido in the system's Chromium (Debian's ``chromium`` on ``PATH``, or
``BROWSER_PATH``), with the plotly.js of the installed plotly package and MathJax turned off, so nothing
is fetched.  Where kaleido or a Chromium is missing the figure is still shown, interactive only, and one
warning is logged.
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["PLOTLY_MIMETYPE", "FigureWithImage", "figure_png", "show_figure"]

log = logging.getLogger(__name__)

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
_DEFAULT_WIDTH = 800  # fits JupyterLab's notebook column in a 1280-pixel window with the file browser open
_TIMEOUT_S = 120.0  # a first figure starts the browser: seconds on an idle machine, more on a loaded one
_warned: set[str] = set()


def _local_plotlyjs() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def figure_png(fig: "go.Figure", *, width: int = _DEFAULT_WIDTH, height: int | None = None,
               scale: float = 1.0) -> bytes | None:
    """The figure as PNG bytes, drawn offline; ``None`` when kaleido or a Chromium is not available.

    ``height`` defaults to the figure's own layout height (or plotly's 450).
    """
    if width <= 0:
        raise ValueError(f"width={width!r}; expected a positive number of pixels")
    if scale <= 0:
        raise ValueError(f"scale={scale!r}; expected a positive factor")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        _warn_once("kaleido", "figures are shown without a static image: kaleido is not installed "
                              "(pip install 'catalyst_nb[images]')")
        return None
    browser = _browser_path()
    if browser is None:
        _warn_once("browser", "figures are shown without a static image: no Chromium found "
                              "(install Debian's chromium, or set BROWSER_PATH)")
        return None
    opts = {"format": "png", "width": int(width), "height": int(height or fig.layout.height or 450),
            "scale": float(scale)}
    try:
        return _renderer(browser).png(fig, opts)
    except Exception as exc:  # kaleido's browser errors have no common base class; the figure still shows
        _warn_once(type(exc).__name__, f"figures are shown without a static image: {type(exc).__name__}: {exc}")
        return None


def _browser_path() -> str | None:
    explicit = os.environ.get("BROWSER_PATH")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _Renderer:
    """One headless browser for the process, driven from its own thread and event loop.

    Why not kaleido's own sync server: when its browser fails to start, its calls wait forever; here a
    failure is raised to the caller and every call has a time limit.  The first figure costs seconds
    (the browser starts), the next ones a fraction of a second.
    """

    def __init__(self, browser: str) -> None:
        self.browser = browser
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="figure-png", daemon=True)
        self.thread.start()
        self.kaleido: Any = None
        self.failed: Exception | None = None
        atexit.register(self.close)

    async def _open(self) -> Any:
        if self.kaleido is None:
            from kaleido import Kaleido

            k = Kaleido(n=1, mathjax=False, plotlyjs=str(_local_plotlyjs()), path=self.browser)
            await k.__aenter__()
            self.kaleido = k
        return self.kaleido

    async def _calc(self, fig: Any, opts: dict[str, Any]) -> bytes:
        k = await self._open()
        return bytes(await k.calc_fig(fig, opts=opts))

    def png(self, fig: Any, opts: dict[str, Any], *, timeout: float = _TIMEOUT_S) -> bytes:
        if self.failed is not None:  # a browser that would not start is not tried again for every figure
            raise self.failed
        try:
            return asyncio.run_coroutine_threadsafe(self._calc(fig, opts), self.loop).result(timeout=timeout)
        except Exception as exc:
            if self.kaleido is None:
                self.failed = exc
            raise

    def close(self) -> None:
        if self.kaleido is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.kaleido.__aexit__(None, None, None), self.loop).result(timeout=30)
            self.kaleido = None
        self.loop.call_soon_threadsafe(self.loop.stop)


_renderers: dict[str, _Renderer] = {}
_lock = threading.Lock()


def _renderer(browser: str) -> _Renderer:
    with _lock:
        if browser not in _renderers:
            _renderers[browser] = _Renderer(browser)
        return _renderers[browser]


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


class FigureWithImage:
    """What a notebook cell displays for :func:`show_figure`: the two forms in one mime bundle."""

    def __init__(self, fig: "go.Figure", *, width: int = _DEFAULT_WIDTH, height: int | None = None) -> None:
        self.figure = fig
        self.width, self.height = width, height
        self._png: bytes | None = None
        self._drawn = False

    @property
    def png(self) -> bytes | None:
        """The static image (drawn on first use, then kept)."""
        if not self._drawn:
            self._png = figure_png(self.figure, width=self.width, height=self.height)
            self._drawn = True
        return self._png

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        spec = json.loads(self.figure.to_json())  # plotly's encoder: numpy arrays, dates, NaN
        layout = spec.get("layout", {})
        bundle: dict[str, Any] = {
            PLOTLY_MIMETYPE: {"data": spec.get("data", []), "layout": layout, "config": {}},
            "text/plain": _describe(layout),
        }
        if self.png is not None:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle


def _describe(layout: Mapping[str, Any]) -> str:
    title = layout.get("title")
    text = title.get("text") if isinstance(title, Mapping) else title
    return f"<plotly figure{': ' + str(text) if text else ''}>"


def show_figure(fig: "go.Figure", *, width: int = _DEFAULT_WIDTH, height: int | None = None) -> FigureWithImage:
    """``show_figure(fig)`` as a cell's last line shows ``fig`` interactive and as a PNG (one output)."""
    if not hasattr(fig, "to_json") or not hasattr(fig, "layout"):
        raise ValueError(f"fig={type(fig).__name__}; expected a plotly Figure")
    return FigureWithImage(fig, width=width, height=height)

"""show_figure: one output holding the interactive figure and a PNG drawn offline by the system Chromium."""
from __future__ import annotations

import base64
import logging
import os
import shutil
import struct

import pytest

from catalyst_nb import figure_image
from catalyst_nb.figure_image import PLOTLY_MIMETYPE, figure_png, show_figure


def _figure(height: int = 300):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.5, 0.7, 0.6], name="accuracy"))
    fig.update_layout(title="stage accuracy", height=height)
    return fig


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


@pytest.fixture
def chromium():
    if not (os.environ.get("BROWSER_PATH") or shutil.which("chromium")):
        if os.environ.get("CATALYST_REQUIRE_BROWSER") == "1":
            pytest.fail("CATALYST_REQUIRE_BROWSER=1 but Debian chromium is not installed")
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("kaleido")


def test_one_output_holds_the_interactive_figure_and_its_png(chromium):
    bundle = show_figure(_figure(height=320), width=640)._repr_mimebundle_()
    assert bundle["text/plain"] == "<plotly figure: stage accuracy>"
    spec = bundle[PLOTLY_MIMETYPE]
    assert spec["data"][0]["y"] == [0.5, 0.7, 0.6] and spec["layout"]["height"] == 320
    assert _png_size(base64.b64decode(bundle["image/png"])) == (640, 320)


def test_a_second_figure_reuses_the_browser_and_scale_multiplies_pixels(chromium):
    first = figure_png(_figure(), width=400)
    second = figure_png(_figure(height=200), width=300, scale=2)
    assert _png_size(first) == (400, 300) and _png_size(second) == (600, 400)
    assert len(figure_image._renderers) == 1


def test_without_a_browser_the_figure_still_shows_and_one_warning_says_why(monkeypatch, caplog):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    monkeypatch.setattr(figure_image, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="catalyst_nb.figure_image"):
        bundles = [show_figure(_figure())._repr_mimebundle_() for _ in range(2)]
    assert all(set(b) == {PLOTLY_MIMETYPE, "text/plain"} for b in bundles)
    assert [r.getMessage() for r in caplog.records] == [
        "figures are shown without a static image: no Chromium found (install Debian's chromium, or set BROWSER_PATH)"]


@pytest.mark.parametrize("kwargs, message", [({"width": 0}, "width=0"), ({"scale": -1}, "scale=-1")])
def test_bad_sizes_are_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        figure_png(_figure(), **kwargs)


def test_something_else_than_a_figure_is_refused():
    with pytest.raises(ValueError, match="fig=dict"):
        show_figure({"data": []})

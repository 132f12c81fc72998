"""plotly.js written once per folder tree and referenced by a relative path from every HTML page in it.

Why: a page that inlines plotly.js weighs about 5 MB, so a sweep of a hundred cells wrote half a gigabyte
of copies of one script.  Instead the script lies once at the root of the tree (a run folder, or the
sweep folder for all its cells) under a versioned name, and each page loads it with
``<script src="../../plotly-X.Y.Z.min.js">``: the pages stay small and still open with no network, as
long as they stay inside their tree (a page that cannot find the script says so instead of drawing an
empty page).

Which tree a page belongs to is found on disk, not passed down: the nearest folder, from the page's own
folder upwards, that already holds the script.  A sweep writes the script into its folder before any
cell runs, so every cell's report finds it there; a run on its own finds none and writes one into its
own folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from catalyst_nb.state_io import atomic_write_text

__all__ = ["script_name", "ensure_script", "find_script", "script_for", "page_head", "MISSING_SCRIPT_NOTE"]

MISSING_SCRIPT_NOTE = "plotly.js was not found next to this page"


def script_name() -> str:
    """``plotly-<plotly.js version>.min.js``: a newer plotly never reuses an older script."""
    from plotly.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


def ensure_script(root: str | os.PathLike[str]) -> Path:
    """The script in ``root``, written (atomically: concurrent cells may race) if it is not there yet."""
    path = Path(root) / script_name()
    if not path.is_file():
        from plotly.offline import get_plotlyjs

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, get_plotlyjs())
    return path


def find_script(folder: str | os.PathLike[str]) -> Path | None:
    """The script in ``folder`` or the nearest of its parents that holds one, else ``None``."""
    name = script_name()
    start = Path(folder).resolve()
    for candidate in (start, *start.parents):
        if (candidate / name).is_file():
            return candidate / name
    return None


def script_for(folder: str | os.PathLike[str]) -> Path:
    """The script a page written into ``folder`` should load: the tree's, or a new one in ``folder``."""
    return find_script(folder) or ensure_script(folder)


def page_head(page: str | os.PathLike[str], script: str | os.PathLike[str]) -> str:
    """The ``<script>`` tags for a page at ``page``: load ``script`` by a relative path, and if it did not
    load (the page was moved out of its tree), say so at the top of the page."""
    src = Path(os.path.relpath(Path(script).resolve(), Path(page).resolve().parent)).as_posix()
    note = (f"{MISSING_SCRIPT_NOTE} ({src}): keep the page inside its folder, next to the script, "
            "to see the figures.")
    return (
        f'<script src="{src}" charset="utf-8"></script>\n'
        "<script>window.addEventListener('DOMContentLoaded',function(){if(typeof Plotly==='undefined'){"
        "var p=document.createElement('p');p.className='missing-plotly';p.style.color='#b00';"
        f"p.textContent={_js_string(note)};document.body.insertBefore(p,document.body.firstChild);}}}});</script>"
    )


def _js_string(text: str) -> str:
    import json

    return json.dumps(text).replace("</", "<\\/")

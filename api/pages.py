"""Dashboards served by the API (docs/dashboards.md): plain HTML + one JS file + one CSS file.

The pages are static shells: they hold no data and need no key. Their script reads the key from
``?key=`` (then moves it to ``sessionStorage`` and strips it from the address bar) or from the login
form, and calls the read API with ``Authorization: Bearer``; tenancy is the API's. The live
dashboard listens to ``/v1/streams/{id}/live/events`` (``?key=``: EventSource cannot send headers).
No CDN: charts are drawn by uPlot 1.6.32 (MIT, ``static/vendor/``: the npm package's
``dist/uPlot.iife.min.js`` and ``uPlot.min.css`` with its LICENSE, unmodified; 51 KB).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from liveledger.errors import not_found

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the key may be in the URL: never send it on
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
}


@lru_cache(maxsize=16)
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(name: str, **values: str) -> HTMLResponse:
    text = _template(name)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return HTMLResponse(text, headers=_HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard")
async def index() -> HTMLResponse:
    return render("index.html")


@router.get("/dashboard/brands/{brand_id}")
async def brand_page(brand_id: str) -> HTMLResponse:
    return render("brand.html", brand_id=brand_id)


@router.get("/dashboard/streams/{stream_id}")
async def stream_page(stream_id: str) -> HTMLResponse:
    return render("stream.html", stream_id=stream_id)


@router.get("/dashboard/creators/{creator_id}")
async def creator_page(creator_id: str) -> HTMLResponse:
    return render("creator.html", creator_id=creator_id)


@router.get("/dashboard/finance")
async def finance_page() -> HTMLResponse:
    return render("finance.html")


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _serve(folder: Path, name: str) -> Response:
    # A name is one plain file name: no NUL (Path.resolve raises on it), no separators, no dot-files.
    if not _SAFE_NAME.fullmatch(name):
        raise not_found("no such file")
    path = (folder / name).resolve()
    media = _STATIC_TYPES.get(path.suffix)
    if media is None or path.parent != folder or not path.is_file():
        raise not_found("no such file")
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}")
async def static(name: str) -> Response:
    return _serve(STATIC, name)


@router.get("/dashboard/static/vendor/{name}")
async def vendored(name: str) -> Response:
    """Third-party files, kept as published (uPlot: see static/vendor/uPlot.LICENSE)."""
    return _serve(STATIC / "vendor", name)

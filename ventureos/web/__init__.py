"""The pages for people: ``/``, ``/company/{slug}``, ``/city/{slug}``, ``/state/{code}``, ``/violation/{id}``.

Each page is one HTML shell (``page.html``) with the brand filled in on the server, plus one script
(``static/app.js``) that reads API V2 and builds the page with DOM calls: every value from the data is
set as text (``textContent``), never parsed as HTML. No CDN: the app serves its own CSS and script.

Brands are the Projects items (``BRAND#{id}`` / ``CONFIG``; ``ventureos/data/projects/*.json`` when the
serving store has none loaded yet): chosen by the request's host name (the item's ``domain``, with or
without ``www.``) or by ``?brand={id}`` to preview one; anything unknown gets ``DEFAULT_BRAND``, never
an error page. A brand gives the title, tagline, colours, logo text, navigation (its entity types)
and the agencies it leads with (TransportTrail shows FAA first).
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ventureos.api.common import store_of
from ventureos.serving.base import PROJECTS, Item, MissingServingTable
from ventureos.serving.projects import PROJECTS_DIR, project_item

router = APIRouter(include_in_schema=False)

STATIC = resources.files("ventureos.web") / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
PAGE = (resources.files("ventureos.web") / "page.html").read_text(encoding="utf-8")
"""The one shell of every page; ``{{name}}`` marks are filled by ``render`` (escaped)."""

DEFAULT_BRAND: Item = {
    "id": "ventureos",
    "name": "VentureOS Violation Tracker",
    "tagline": "Federal enforcement records of US companies, cities and states: OSHA, FAA and EPA in one place.",
    "agencies": [],
    "entity_types": ["company", "city", "state"],
    "theme": {"primary": "#1F3A5F", "accent": "#C9D6E8"},
}
"""The brand of any host or ``?brand=`` that names no project: every agency, no lead agency."""
AGENCIES = ("osha", "faa", "epa")
COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
BRANDS_TTL_SECONDS = 60.0
NAV_LABELS = {"company": "Companies", "city": "Cities", "state": "States"}
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
"""Scripts only from the app: injected markup could not run even if some text were ever parsed as HTML."""
TITLES = {"home": "", "company": "Company", "city": "City", "state": "State", "violation": "Violation"}


class Brands:
    """The Projects items of one app, re-read at most once a minute (they change only on a deploy)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = -BRANDS_TTL_SECONDS
        self._brands: dict[str, Item] = {}

    def _read(self, request: Request) -> dict[str, Item]:
        try:
            items = store_of(request).scan(PROJECTS)
        except MissingServingTable:
            items = []
        if not items:
            items = [project_item(f) for f in PROJECTS_DIR.iterdir() if f.name.endswith(".json")]
        return {str(i["id"]): i for i in items if i.get("id")}

    def all(self, request: Request) -> dict[str, Item]:
        with self._lock:
            if time.monotonic() - self._loaded_at >= BRANDS_TTL_SECONDS:
                self._brands = self._read(request)
                self._loaded_at = time.monotonic()
            return self._brands


def _brands_of(request: Request) -> Brands:
    state = request.app.state
    if getattr(state, "brands", None) is None:
        state.brands = Brands()
    brands: Brands = state.brands
    return brands


def choose_brand(brands: dict[str, Item], host: str, preview: str | None) -> Item:
    """``?brand=`` first, then the host name's project, else the default brand."""
    if preview:
        return brands.get(preview, DEFAULT_BRAND)
    name = host.split(":", 1)[0].lower().removeprefix("www.")
    return next((b for b in brands.values() if str(b.get("domain", "")).lower() == name), DEFAULT_BRAND)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#RRGGBB`` colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _theme_colour(value: Any, text: str, default: str) -> str:
    """The brand's colour when it is valid and ``text`` on it reads at WCAG AA (4.5:1), else the default."""
    colour = str(value)
    return colour if COLOUR.match(colour) and contrast(colour, text) >= 4.5 else default


def page_config(brand: Item) -> dict[str, Any]:
    """What the script needs of the brand; agencies in display order (the brand's own first)."""
    own = [a for a in brand.get("agencies", []) if a in AGENCIES]
    theme = brand.get("theme") or {}
    return {
        "id": brand["id"],
        "name": brand.get("name") or DEFAULT_BRAND["name"],
        "tagline": brand.get("tagline") or "",
        "agencies": own + [a for a in AGENCIES if a not in own],
        "lead_agencies": own,
        "entity_types": [t for t in brand.get("entity_types", NAV_LABELS) if t in NAV_LABELS],
        # White text sits on the primary colour, body text (#1a1a1a) on the accent.
        "primary": _theme_colour(theme.get("primary"), "#ffffff", DEFAULT_BRAND["theme"]["primary"]),
        "accent": _theme_colour(theme.get("accent"), "#1a1a1a", DEFAULT_BRAND["theme"]["accent"]),
    }


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "<" can end it early."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(request: Request, page: str, subject: str = "") -> HTMLResponse:
    config = page_config(
        choose_brand(
            _brands_of(request).all(request),
            request.headers.get("host", ""),
            request.query_params.get("brand"),
        )
    )
    preview = request.query_params.get("brand")
    suffix = f"?brand={preview}" if preview and preview == config["id"] else ""
    nav = "".join(
        f'<li><a href="/{html.escape(suffix)}#top-{t}">{NAV_LABELS[t]}</a></li>'
        for t in config["entity_types"]
    )
    title = TITLES[page]
    body = (
        PAGE.replace("{{title}}", html.escape(f"{title} — {config['name']}" if title else config["name"]))
        .replace("{{brand_name}}", html.escape(config["name"]))
        .replace("{{tagline}}", html.escape(config["tagline"]))
        .replace("{{primary}}", config["primary"])
        .replace("{{accent}}", config["accent"])
        .replace("{{home}}", "/" + html.escape(suffix))
        .replace("{{nav}}", nav)
        .replace("{{page}}", page)
        .replace("{{config}}", _script_json({**config, "page": page, "subject": subject, "query": suffix}))
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home")


@router.get("/company/{slug}", response_class=HTMLResponse)
def company(request: Request, slug: str) -> HTMLResponse:
    return render(request, "company", slug)


@router.get("/city/{slug}", response_class=HTMLResponse)
def city(request: Request, slug: str) -> HTMLResponse:
    return render(request, "city", slug)


@router.get("/state/{code}", response_class=HTMLResponse)
def state(request: Request, code: str) -> HTMLResponse:
    return render(request, "state", code)


@router.get("/violation/{violation_id}", response_class=HTMLResponse)
def violation(request: Request, violation_id: str) -> HTMLResponse:
    return render(request, "violation", violation_id)


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page assets (a fixed list: nothing else under the package is reachable)."""
    if name not in ASSETS:
        return Response("Not found", status_code=404, media_type="text/plain")
    return Response(
        (STATIC / name).read_bytes(),
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )

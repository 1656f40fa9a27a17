"""The FastAPI application: the page, the API, offline docs, JSON errors and the request guards.

    app = create_app(ServeConfig(jobs_dir=Path("jobs"), model="soccer-x4plus"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Everything the browser loads ships in the package: the page from ``serve/static`` and Swagger UI
(``/docs``) from the ``swagger-ui-bundle-v2`` package, so the server works with no internet
(FastAPI's own ``/docs`` would load Swagger UI from a CDN). The worker thread starts and stops
with the application (its lifespan).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from soccersr import __version__
from soccersr.errors import MissingExtraError
from soccersr.serve.api import build_router
from soccersr.serve.config import ServeConfig
from soccersr.serve.engines import Engines, OpenEngine
from soccersr.serve.security import host_allowed, same_origin
from soccersr.serve.store import JobStore
from soccersr.serve.worker import Worker

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

# The page loads nothing from elsewhere; this makes the browser hold it to that.
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_DESCRIPTION = """Upscale photos with soccersr's super-resolution models.

Send photos to `POST /api/jobs`, follow the job with `GET /api/jobs/{id}` until its status is
`done` or `failed`, then fetch `GET /api/jobs/{id}/result`. Every error is JSON:
`{"error": "..."}`. When the server was started with a token, send
`Authorization: Bearer <token>` with every `/api` request."""


def _swagger_dir() -> Path:
    try:
        import swagger_ui_bundle
    except ImportError:
        raise MissingExtraError("soccersr serve's /docs", "serve", "swagger-ui-bundle-v2") from None
    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(
    config: ServeConfig, *, open_engine: OpenEngine | None = None, engines: Engines | None = None
) -> FastAPI:
    """The application of one server. ``open_engine`` replaces ``open_upscaler`` (tests use tiny
    models); ``engines`` passes engines already opened (the command loads the default model first,
    so a bad ``--model`` stops it before it listens)."""
    store = JobStore(config.jobs_dir)
    engines = engines or Engines(config.model, config.engine, open_engine)
    worker = Worker(store, engines, config)
    swagger_dir = _swagger_dir()

    app = FastAPI(
        title="soccersr",
        version=__version__,
        description=_DESCRIPTION,
        docs_url=None,  # served below with local assets
        redoc_url=None,  # ReDoc has no offline bundle here
        lifespan=_lifespan(config, store, worker),
    )
    app.state.store, app.state.worker, app.state.engines = store, worker, engines
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.middleware("http")(_guard(config.local_only))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": _PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="soccersr API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.include_router(build_router(config, store, worker, engines))
    # StaticFiles serves files only: a folder (or anything outside it) is a 404, never a listing.
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_dir), name="docs-assets")
    return app


def _lifespan(config: ServeConfig, store: JobStore, worker: Worker):
    """Load the jobs on disk and start the worker with the application; stop it after."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        count = store.load()
        store.cleanup(config.keep_seconds)
        logger.info("%d job%s on disk in %s", count, "s" * (count != 1), config.jobs_dir)
        worker.start()
        yield
        worker.stop()
        store.fail_unfinished()

    return lifespan


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body"))
    return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse({"error": "internal server error (see the server log)"}, status_code=500)


def _guard(local_only: bool):
    """The middleware of every request: local hosts only (unless told otherwise), no cross-site API
    calls, and the security headers on every response."""

    async def guard(request: Request, call_next):
        host = request.headers.get("host")
        if not host_allowed(host, local_only=local_only):
            return JSONResponse({"error": f"this server answers only on a local address, not {host!r}"}, 421)
        is_api = request.url.path.startswith("/api/")
        if is_api and not same_origin(request.headers.get("origin"), host):
            return JSONResponse({"error": "cross-site requests are not allowed"}, status_code=403)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if is_api:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return guard

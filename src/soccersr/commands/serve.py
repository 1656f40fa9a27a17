"""`soccersr serve`: a web page (and JSON API) where a photo desk drops photos and gets them upscaled.

It binds to 127.0.0.1 unless told otherwise; on any other address every API request needs the
token (``--token`` or $SOCCERSR_SERVE_TOKEN) unless ``--no-auth`` is given. Needs the optional
extra ``soccersr[serve]`` (FastAPI, uvicorn). Exit codes: 0 after a clean stop, 2 for usage
errors (a missing extra, bad options, an unknown model).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from soccersr.commands.args import add_engine_arguments, engine_options, pixel_count, positive
from soccersr.options import DEFAULT_MAX_PIXELS

TOKEN_ENV = "SOCCERSR_SERVE_TOKEN"
_EXTRA_MODULES = (
    ("fastapi", "fastapi"),
    ("uvicorn", "uvicorn"),
    ("python_multipart", "python-multipart"),
    ("swagger_ui_bundle", "swagger-ui-bundle-v2"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from soccersr.serve import config as defaults  # standard library only

    parser = subparsers.add_parser(
        "serve",
        help="a web page for upscaling photos (drop, compare, download), with a JSON API",
        description="Serve a web page where photos are dropped, upscaled in the background and compared "
        "before/after, plus the JSON API behind it (documented at /docs). Needs: pip install 'soccersr[serve]'.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument(
        "--port", type=int, default=defaults.DEFAULT_PORT, help=f"port (default {defaults.DEFAULT_PORT})"
    )
    parser.add_argument(
        "-m", "--model", default=None, help="default model: built-in name or weights file (default: soccer-x4plus)"
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token", default=None, help=f"require 'Authorization: Bearer TOKEN' on the API (or set ${TOKEN_ENV})"
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="serve a non-local --host without a token (anyone on the network may use it)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive(float),
        default=defaults.DEFAULT_MAX_UPLOAD_MB,
        help=f"largest upload, all files of one request together (default {defaults.DEFAULT_MAX_UPLOAD_MB:g})",
    )
    parser.add_argument(
        "--max-pixels",
        type=pixel_count,
        default=DEFAULT_MAX_PIXELS,
        help="refuse photos above this many pixels, e.g. 40M (default, as soccersr upscale); 0 for no limit",
    )
    parser.add_argument(
        "--jobs-dir",
        type=Path,
        default=None,
        help="where jobs are kept (default: serve-jobs in the soccersr cache folder)",
    )
    parser.add_argument(
        "--keep-hours",
        type=positive(float),
        default=defaults.DEFAULT_KEEP_HOURS,
        help=f"delete finished jobs after this many hours (default {defaults.DEFAULT_KEEP_HOURS:g})",
    )
    parser.add_argument(
        "--max-queue",
        type=positive(int),
        default=defaults.DEFAULT_QUEUE_SIZE,
        help=f"jobs that may wait; more get HTTP 429 (default {defaults.DEFAULT_QUEUE_SIZE})",
    )
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"soccersr serve: error: {message}", file=sys.stderr)
    return 2


def _check_extra() -> None:
    """Raises MissingExtraError naming the first missing package of the serve extra."""
    from soccersr.errors import MissingExtraError

    for module, package in _EXTRA_MODULES:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("soccersr serve", "serve", package)


def run(args: argparse.Namespace) -> int:
    from soccersr.errors import SoccersrError

    try:
        _check_extra()
    except SoccersrError as error:
        return _error(str(error))

    from soccersr.serve.security import is_local_host

    token = args.token or (None if args.no_auth else os.environ.get(TOKEN_ENV) or None)
    local = is_local_host(args.host)
    if not local and token is None and not args.no_auth:
        return _error(
            f"--host {args.host} shares the page on the network: give --token (or set ${TOKEN_ENV}), "
            "or --no-auth to let anyone who can reach it use it"
        )
    if not 0 < args.port < 65536:
        return _error(f"--port must be in 1..65535, got {args.port}")
    return _serve(args, token=token, local=local)


def _serve(args: argparse.Namespace, *, token: str | None, local: bool) -> int:
    import uvicorn

    from soccersr.errors import SoccersrError
    from soccersr.serve.app import create_app
    from soccersr.serve.config import ServeConfig
    from soccersr.serve.engines import Engines
    from soccersr.weights import default_cache_dir
    from soccersr.weights.zoo import DEFAULT_MODEL

    try:
        config = ServeConfig(
            jobs_dir=args.jobs_dir or default_cache_dir() / "serve-jobs",
            model=args.model or DEFAULT_MODEL,
            engine=engine_options(args),
            token=token,
            local_only=local,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            max_pixels=args.max_pixels,
            queue_size=args.max_queue,
            keep_seconds=args.keep_hours * 3600,
        )
        engines = Engines(config.model, config.engine)
        engine = engines.get(engines.default)  # a bad --model or device stops us here, not at the first job
        app = create_app(config, engines=engines)
    except SoccersrError as error:
        return _error(str(error))
    except (ValueError, RuntimeError, OSError) as error:  # WeightsError is a ValueError
        return _error(str(error).strip().splitlines()[0])

    shown_host = args.host if local else "<this machine's address>"
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{args.port}/" + (f"#token={token}" if token else "")
    print(f"soccersr serve: model {engines.default} (x{engine.scale:g}) on {engine.device}; jobs in {config.jobs_dir}")
    print(f"open {url}  (API docs: /docs; Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0

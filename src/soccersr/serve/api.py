"""The JSON API under ``/api``: submit a job, follow it, fetch its result, list the models.

    POST /api/jobs                  multipart: file (one or more), model, outscale, format -> 202 {"id": ...}
    GET  /api/jobs/{id}             {"status": queued|running|done|failed, "progress": 0..1, "files": [...], "error": ...}
    GET  /api/jobs/{id}/result      the image of a one-file job, a zip for several; ?file=N for one of them
    GET  /api/models                the models, formats and limits of this server

Every error is ``{"error": "<one line>"}`` with a 4xx or 5xx status (``app`` installs the handlers).
The upload is read by hand rather than through FastAPI's form parameters, so a full queue (429)
and a too-big body (413) are refused before the body is read, and the form parser gets the
server's file-count limit.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from soccersr.options import OUTPUT_FORMATS, normalize_format
from soccersr.serve.config import MAX_OUTSCALE, ServeConfig
from soccersr.serve.engines import Engines
from soccersr.serve.security import is_job_id, safe_name, token_matches
from soccersr.serve.store import FINISHED, Job, JobStore, Upload
from soccersr.serve.uploads import UploadRejected, check_image
from soccersr.serve.worker import Worker

MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".tif": "image/tiff"}
RETRY_AFTER_SECONDS = 10


# --- response shapes (they are also the OpenAPI schema at /docs) --------------------------------


class ErrorBody(BaseModel):
    error: str


class JobCreated(BaseModel):
    id: str


class FileView(BaseModel):
    name: str
    status: str
    progress: float
    error: str | None
    width: int
    height: int
    output_name: str | None
    output_width: int | None
    output_height: int | None


class JobView(BaseModel):
    id: str
    status: str
    progress: float
    error: str | None
    model: str
    outscale: float | None
    format: str
    created: float
    finished: float | None
    files: list[FileView]


class ModelView(BaseModel):
    name: str
    scale: float | None
    description: str


class ModelsView(BaseModel):
    default: str
    models: list[ModelView]
    formats: list[str]
    max_upload_bytes: int
    max_pixels: int | None
    max_files: int


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more photos (JPEG, PNG, WebP, TIFF, BMP; recognised by content)",
                        },
                        "model": {
                            "type": "string",
                            "description": "a name from GET /api/models (default: the server's)",
                        },
                        "outscale": {
                            "type": "number",
                            "description": f"output size / input size, up to {MAX_OUTSCALE:g} (default: the model's scale)",
                        },
                        "format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "auto"},
                    },
                }
            }
        },
    }
}


def _view(job: Job) -> JobView:
    files = [
        FileView(
            name=f.name,
            status=f.status,
            progress=round(1.0 if f.status in FINISHED else f.progress, 4),
            error=f.error,
            width=f.width,
            height=f.height,
            output_name=f.output_name,
            output_width=f.output_width,
            output_height=f.output_height,
        )
        for f in job.files
    ]
    return JobView(
        id=job.id,
        status=job.status,
        progress=round(job.progress, 4),
        error=job.error,
        model=job.model,
        outscale=job.outscale,
        format=job.format,
        created=job.created,
        finished=job.finished,
        files=files,
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a body growing past ``limit`` bytes (a body sent without a length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_big(limit))
        return message

    return wrapped


def _too_big(limit: int) -> str:
    return f"the upload is larger than this server's limit of {limit / 2**20:g} MiB"


def _parse_outscale(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise HTTPException(400, f"outscale must be a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_OUTSCALE):
        raise HTTPException(400, f"outscale must be above 0 and at most {MAX_OUTSCALE:g}, got {text}")
    return value


def _field(form: Any, key: str) -> str | None:
    value = form.get(key)
    if value is not None and not isinstance(value, str):
        raise HTTPException(400, f"{key} must be a text field, not a file")
    return value


def _queue_full() -> HTTPException:
    return HTTPException(429, "the queue is full; try again shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class _Routes:
    """The handlers of one server's ``/api`` routes, sharing its config, job store, worker and engines."""

    def __init__(self, config: ServeConfig, store: JobStore, worker: Worker, engines: Engines) -> None:
        self.config = config
        self.store = store
        self.worker = worker
        self.engines = engines

    def require_token(self, request: Request) -> None:
        """The dependency of every route: the bearer token, when the server has one."""
        if self.config.token is not None and not token_matches(request.headers.get("authorization"), self.config.token):
            raise HTTPException(
                401,
                "this server needs its token: send the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def find_job(self, job_id: str) -> Job:
        job = self.store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise HTTPException(404, "no such job (finished jobs are deleted after a while)")
        return job

    async def create_job(self, request: Request) -> JSONResponse:
        """Queue one job for the uploaded photos; follow it with GET /api/jobs/{id}."""
        if self.worker.full():
            raise _queue_full()
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(400, "send the photos as multipart/form-data, in fields named 'file'")
        limit = self.config.max_upload_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise HTTPException(413, _too_big(limit))
        limited = Request(request.scope, _limited(request.receive, limit))
        try:
            form = await limited.form(max_files=self.config.max_files, max_fields=16)
        except ClientDisconnect:
            raise HTTPException(400, "the upload was interrupted") from None
        try:
            return await self._create(form)
        finally:
            await form.close()

    async def _create(self, form: Any) -> JSONResponse:
        files = form.getlist("file")
        if not files:
            raise HTTPException(400, "no photo: send one or more files in fields named 'file'")
        if not all(isinstance(f, UploadFile) for f in files):
            raise HTTPException(400, "'file' fields must be files, not text")
        model = self._model_choice(_field(form, "model") or self.engines.default)
        outscale = _parse_outscale(_field(form, "outscale"))
        try:
            fmt = normalize_format(_field(form, "format") or "auto")
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        uploads = [await self._checked_upload(upload) for upload in files]
        job = await run_in_threadpool(self.store.create, uploads, model=model, outscale=outscale, format=fmt)
        if not self.worker.submit(job.id):  # filled up while this upload was read
            await run_in_threadpool(self.store.remove, job.id)
            raise _queue_full()
        return JSONResponse({"id": job.id}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    def _model_choice(self, model: str) -> str:
        choice = self.engines.find(model)
        if choice is None:
            names = ", ".join(c.name for c in self.engines.choices)
            raise HTTPException(400, f"unknown model {model!r}: choose one of {names}")
        return choice.name

    async def _checked_upload(self, upload: UploadFile) -> Upload:
        name = safe_name(upload.filename)
        data = await upload.read()
        try:
            info = await run_in_threadpool(check_image, name, data, max_pixels=self.config.max_pixels)
        except UploadRejected as rejected:
            raise HTTPException(rejected.status, rejected.message) from None
        return Upload(name=name, data=data, format=info.format, width=info.width, height=info.height)

    def get_job(self, job_id: str) -> JobView:
        """Status, progress (0..1) and one entry per file; a failed file carries its error line."""
        return _view(self.find_job(job_id))

    def get_result(
        self,
        job_id: str,
        file: Annotated[int | None, Query(ge=0, description="index of one file of the job")] = None,
    ) -> FileResponse:
        """The upscaled image of a one-file job, or a zip of every result of a several-file job;
        ``?file=N`` gives the image of file N."""
        job = self.find_job(job_id)
        if job.status not in FINISHED and file is None:
            raise HTTPException(409, f"the job is {job.status}; its result is ready when its status is done")
        if file is None and len(job.files) > 1:
            return self._results_zip(job)
        index = 0 if file is None else file
        if index >= len(job.files):
            raise HTTPException(404, f"the job has {len(job.files)} file(s); there is no file {index}")
        entry = job.files[index]
        if entry.status != "done" or entry.output_name is None:
            reason = entry.error if entry.status == "failed" else f"it is {entry.status}"
            raise HTTPException(409, f"{entry.name}: no result ({reason})")
        path = self.store.output_path(job.id, index, entry.output_name)
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix), filename=entry.output_name)

    def _results_zip(self, job: Job) -> FileResponse:
        if not any(f.status == "done" for f in job.files):
            raise HTTPException(409, f"no result: {job.error}")
        path = self.store.results_zip(job)
        return FileResponse(path, media_type="application/zip", filename=f"soccersr-{job.id[:8]}.zip")

    def get_models(self) -> ModelsView:
        engines = self.engines
        models = [
            ModelView(name=c.name, scale=engines.scale_of(c.name), description=c.description) for c in engines.choices
        ]
        return ModelsView(
            default=engines.default,
            models=models,
            formats=list(OUTPUT_FORMATS),
            max_upload_bytes=self.config.max_upload_bytes,
            max_pixels=self.config.max_pixels,
            max_files=self.config.max_files,
        )


def build_router(config: ServeConfig, store: JobStore, worker: Worker, engines: Engines) -> APIRouter:
    """The ``/api`` routes of one server."""
    routes = _Routes(config, store, worker, engines)
    router = APIRouter(prefix="/api", dependencies=[Depends(routes.require_token)], responses=_errors(401))
    router.add_api_route(
        "/jobs",
        routes.create_job,
        methods=["POST"],
        status_code=202,
        response_model=JobCreated,
        responses=_errors(400, 413, 415, 422, 429),
        openapi_extra=_UPLOAD_SCHEMA,
        summary="Upload photos to upscale",
    )
    router.add_api_route(
        "/jobs/{job_id}",
        routes.get_job,
        methods=["GET"],
        response_model=JobView,
        responses=_errors(404),
        summary="A job's status",
    )
    router.add_api_route(
        "/jobs/{job_id}/result",
        routes.get_result,
        methods=["GET"],
        responses=_errors(404, 409),
        summary="A job's result",
    )
    router.add_api_route(
        "/models", routes.get_models, methods=["GET"], response_model=ModelsView, summary="Models, formats and limits"
    )
    return router

"""Import routes: analyze an upload, start an import, follow its progress."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import FormData, UploadFile

from dnc.api.auth import Principal
from dnc.api.deps import ctx, principal
from dnc.api.imports.jobs import ImportJobs, limits_of
from dnc.api.limits import upload_name
from dnc.domain.events import validation_to_poison
from dnc.domain.timestamps import now_ms
from dnc.errors import InvalidValue
from dnc.files.analysis import analyze
from dnc.files.imports import ImportOptions, parse_mapping, resolve_expiry
from dnc.files.read import FileTooLarge, Limits, megabytes, open_upload

router = APIRouter(prefix="/v1/imports", tags=["imports"])

Who = Annotated[Principal, Depends(principal)]

_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
# Room for the multipart envelope and the option fields around the file.
_ENVELOPE = 64 * 1024

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".txt, .csv, .xlsx, or a .zip holding one of them; "
                            "at most 15 MB",
                        },
                        "options": {
                            "type": "string",
                            "description": "ImportOptions as JSON; or the separate fields below",
                        },
                        "skip_rows": {"type": "integer", "minimum": 0},
                        "mapping": {
                            "type": "string",
                            "description": "JSON object or 0=contact,1=sender,2=channel",
                        },
                        "default_country": {"type": "string", "example": "US"},
                        "upload_id": {
                            "type": "string",
                            "description": "instead of file: analyze a kept upload again",
                        },
                    },
                }
            }
        },
    }
}


class StartImport(BaseModel):
    upload_id: str = Field(max_length=64, description="from POST /v1/imports/analyze")
    accounts: list[str] = Field(min_length=1, max_length=100)
    options: ImportOptions | None = Field(
        default=None, description="default: the options the file was analysed with"
    )


class ImportStarted(BaseModel):
    import_id: str
    status_url: str


def jobs(request: Request) -> ImportJobs:
    """The instance's import jobs, made on first use (nothing is built at import time)."""
    found: ImportJobs | None = getattr(request.app.state, "import_jobs", None)
    if found is None:
        metrics = request.app.state.metrics.imports
        found = request.app.state.import_jobs = ImportJobs(ctx(request), metrics)
    return found


@router.post(
    "/analyze",
    openapi_extra=_UPLOAD_BODY,
    summary="Analyze an import file (nothing is written)",
    responses={413: {"description": "the file is over the size limit"}},
)
async def analyze_upload(
    request: Request,
    who: Who,
    invalid_limit: Annotated[
        int, Query(ge=0, le=1000, description="how many invalid rows to list")
    ] = 100,
) -> Any:
    """Row count, valid, duplicate and invalid rows (row number, value, reason), and an
    ``upload_id`` to start the import with (kept for one hour). To try other options on
    the same file, send its ``upload_id`` instead of the file."""
    limits = limits_of(ctx(request))
    found = jobs(request)
    try:
        name, data, options, upload_id = await _read_upload(request, limits, found, who)
        resolve_expiry(options.expires_at, options.ttl_days, now_ms())  # said now, not later
        f = await asyncio.to_thread(open_upload, name, data, limits)
        result = await asyncio.to_thread(analyze, f, options, invalid_limit)
    except FileTooLarge as exc:
        return _too_large(exc)
    if upload_id is None:
        upload_id, expires = await found.keep_upload(
            name=name, data=data, owner=who.name, options=options, rows=result["rows"]
        )
    else:
        expires = await found.reanalysed(upload_id, options, result["rows"])
    return {"upload_id": upload_id, "upload_expires_at": expires, **result}


def _no_upload(upload_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"upload {upload_id!r} does not exist or has expired (uploads are kept for one "
        "hour): analyze the file again",
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ImportStarted)
async def start_import(body: StartImport, request: Request, who: Who) -> ImportStarted:
    """Import an analysed upload into one or more accounts, in the background."""
    who.authorize(body.accounts)
    accounts = list(dict.fromkeys(body.accounts))
    found = jobs(request)
    upload = await found.upload(body.upload_id, who.name)
    if upload is None:
        raise _no_upload(body.upload_id)
    import_id = await found.start(upload, accounts, body.options)
    return ImportStarted(import_id=import_id, status_url=f"/v1/imports/{import_id}")


@router.get("/{import_id}")
async def import_status(import_id: str, request: Request, who: Who) -> dict[str, Any]:
    """State (running / finished / failed) and progress: rows done of the total, added,
    already present and rejected. Contract addition: ``listed``, once finished, says
    whether the list (``GET /v1/entries`` of this instance) shows the imported entries yet;
    a page reloads its list when it is true."""
    found = await jobs(request).status(import_id, who.accounts)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id!r} not found")
    target = found.pop("list_changes")
    if found["state"] == "finished":
        found["listed"] = await ctx(request).view.wait_for(target, LISTED_WAIT_S)
    return found


# How long a status request waits for the list view to show a finished import; the page
# asks again when it is not yet listed.
LISTED_WAIT_S = 2.0


def _too_large(exc: FileTooLarge) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        content={"error": str(exc), "field": exc.field, "value": exc.value, "reason": exc.reason},
    )


async def _read_upload(
    request: Request, limits: Limits, found: ImportJobs, who: Principal
) -> tuple[str, bytes, ImportOptions, str | None]:
    """(file name, bytes, options, upload_id when it is a kept upload)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_bytes + _ENVELOPE:
        # Refused before the body is read and spooled.
        raise FileTooLarge(
            await upload_name(request),
            f"is {megabytes(int(length))}, more than the {megabytes(limits.max_bytes)} limit: "
            "compress the file into a .zip (with the one file inside) and upload the .zip",
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(_FORMS):
        raise InvalidValue(
            "body", content_type, "must be multipart/form-data with a file (or an upload_id)"
        )
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        upload_id = form.get("upload_id")
        if isinstance(upload, UploadFile):
            data = await upload.read(limits.max_bytes + 1)
            return upload.filename or "upload", data, form_options(form), None
        if isinstance(upload_id, str) and upload_id:
            kept = await found.upload(upload_id, who.name)
            if kept is None:
                raise _no_upload(upload_id)
            return kept.name, kept.data, form_options(form), upload_id
        raise InvalidValue("file", None, "is required (a multipart part named 'file')")


def form_options(form: FormData) -> ImportOptions:
    raw = form.get("options")
    try:
        if isinstance(raw, str) and raw.strip():
            return ImportOptions.model_validate_json(raw)
        fields: dict[str, Any] = {}
        for name in ("skip_rows", "default_country", "expires_at", "ttl_days"):
            value = form.get(name)
            if isinstance(value, str) and value.strip():
                fields[name] = value.strip()
        mapping = form.get("mapping")
        if isinstance(mapping, str) and mapping.strip():
            text = mapping.strip()
            fields["mapping"] = orjson.loads(text) if text.startswith("{") else parse_mapping(text)
        return ImportOptions.model_validate(fields)
    except orjson.JSONDecodeError as exc:
        raise InvalidValue("options", raw, f"is not valid JSON ({exc})") from None
    except ValidationError as exc:
        err = validation_to_poison(exc)
        if isinstance(err, InvalidValue):
            raise InvalidValue(f"options.{err.field}", err.value, err.reason) from None
        raise InvalidValue("options", raw, str(err)) from None

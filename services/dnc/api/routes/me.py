"""Two small JSON endpoints the web page needs: who a key is (``GET /v1/me``) and the
first rows of an import file as they are read (``POST /v1/imports/preview``), so the
import wizard can show columns to map before anything is analysed or kept."""

from __future__ import annotations

import asyncio
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from dnc.api.auth import Principal
from dnc.api.deps import ctx, principal
from dnc.api.imports.jobs import limits_of
from dnc.api.limits import upload_name
from dnc.errors import InvalidValue
from dnc.files.read import FileTooLarge, ImportFile, megabytes, open_upload, read_table

router = APIRouter(prefix="/v1", tags=["page"])

Who = Annotated[Principal, Depends(principal)]

MAX_PREVIEW_ROWS = 50
MAX_PREVIEW_COLUMNS = 50
MAX_CELL = 200  # characters of a cell shown back
_ENVELOPE = 64 * 1024  # the multipart envelope around the file

_PREVIEW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}


@router.get("/me", summary="The key's name and the accounts it grants")
async def me(who: Who) -> dict[str, Any]:
    return {"name": who.name, "accounts": sorted(who.accounts)}


@router.post(
    "/imports/preview",
    openapi_extra=_PREVIEW_BODY,
    summary="The first rows of an import file, cell by cell (nothing is kept)",
    responses={413: {"description": "the file is over the size limit"}},
)
async def preview(
    request: Request,
    _who: Who,
    rows: Annotated[int, Query(ge=1, le=MAX_PREVIEW_ROWS)] = 20,
) -> Any:
    """The file as the import reads it (the file inside a .zip, encoding, delimiter) and
    its first ``rows`` rows, numbered as a spreadsheet shows them. Cells are cut at
    200 characters and rows at 50 columns."""
    limits = limits_of(ctx(request))
    length = request.headers.get("content-length", "")
    try:
        if length.isdigit() and int(length) > limits.max_bytes + _ENVELOPE:
            raise FileTooLarge(
                await upload_name(request),
                f"is {megabytes(int(length))}, more than the {megabytes(limits.max_bytes)} "
                "limit: compress the file into a .zip and upload the .zip",
            )
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InvalidValue("body", None, "must be multipart/form-data with a file")
        async with request.form(max_files=1, max_fields=2) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidValue("file", None, "is required (a multipart part named 'file')")
            data = await upload.read(limits.max_bytes + 1)
            name = upload.filename or "upload"
        f = await asyncio.to_thread(open_upload, name, data, limits)
        return await asyncio.to_thread(_first_rows, f, rows)
    except FileTooLarge as exc:
        return JSONResponse(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            content={
                "error": str(exc),
                "field": exc.field,
                "value": exc.value,
                "reason": exc.reason,
            },
        )


def _first_rows(f: ImportFile, n: int) -> dict[str, Any]:
    table = read_table(f)
    shown: list[dict[str, Any]] = []
    width = 0
    try:
        for number, cells in islice(table.rows, n):
            cut = [c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in cells]
            while cut and not cut[-1].strip():  # trailing empty cells are not columns
                cut.pop()
            cut = cut[:MAX_PREVIEW_COLUMNS]
            width = max(width, len(cut))
            shown.append({"row": number, "cells": cut})
    finally:
        close = getattr(table.rows, "close", None)  # a generator holding the open file
        if close is not None:
            close()
    return {
        "file": f.describe(),
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "columns": width,
        "rows": shown,
    }

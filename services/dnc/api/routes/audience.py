"""``/v1/audience/dry-run``: how much of a planned send the list suppresses, and why,
writing nothing (``dnc.api.audience``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from dnc.api import audience
from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal
from dnc.api.imports.jobs import limits_of
from dnc.api.limits import upload_name
from dnc.api.routes.imports import form_options
from dnc.domain.channels import parse_channel
from dnc.domain.contacts import normalise_sender
from dnc.domain.events import validation_to_poison
from dnc.errors import InvalidValue
from dnc.files.read import FileTooLarge, megabytes, open_upload

router = APIRouter(prefix="/v1/audience", tags=["audience"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]

MAX_CONTACTS = 1_000_000
_ENVELOPE = 64 * 1024


class DryRunJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    channel: str = Field(description="the send's channel")
    sender: str | None = Field(None, description="the send's sender; omitted = any sender")
    contacts: list[Any] = Field(min_length=1, max_length=MAX_CONTACTS)


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DryRunJson.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "account", "channel"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".txt, .csv, .xlsx or a .zip holding one (as an "
                            "import); only the contact column is read",
                        },
                        "account": {"type": "string"},
                        "channel": {"type": "string"},
                        "sender": {"type": "string"},
                        "options": {"type": "string", "description": "ImportOptions as JSON"},
                        "skip_rows": {"type": "integer", "minimum": 0},
                        "mapping": {"type": "string", "example": "2=contact"},
                        "default_country": {"type": "string", "example": "US"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/dry-run",
    openapi_extra=_BODY,
    summary="Which contacts of an audience the list would suppress (nothing is written)",
    responses={413: {"description": "the file is over the size limit"}},
)
async def dry_run(
    c: Ctx,
    who: Who,
    request: Request,
    suppressed_limit: Annotated[
        int, Query(ge=0, le=MAX_CONTACTS, description="how many suppressed contacts to list")
    ] = 10_000,
) -> Response:
    """JSON ``{account, channel, sender?, contacts: [...]}``, or a multipart form with a
    file (as an import: skip_rows, mapping of the contact column, default_country) and
    account, channel, sender. Answers the counts (rows, valid, invalid, duplicate,
    suppressed, deliverable), the suppressed contacts with their row and the most specific
    entry that blocks them (the gate's rule; without a sender, an entry for any sender
    counts), and the first 100 invalid rows."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            fields, found = await _from_form(c, who, request)
        elif content_type.startswith("application/json"):
            fields, found = await _from_json(c, who, request)
        else:
            raise InvalidValue(
                "body", content_type, "must be application/json or multipart/form-data"
            )
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
    account, channel, sender = fields
    result = await audience.dry_run(
        c.index,
        account=account,
        channel=channel,
        sender=sender,
        audience=found,
        suppressed_limit=suppressed_limit,
    )
    return Response(orjson.dumps(result), media_type="application/json")


def _dimensions(
    who: Principal, account: object, channel: object, sender: object
) -> tuple[str, str, str | None]:
    if not isinstance(account, str) or not account:
        raise InvalidValue("account", account, "is required")
    who.authorize((account,))
    parsed = parse_channel(channel, allow_all=False)
    assert parsed is not None
    return account, parsed.value, normalise_sender(sender)


async def _from_json(
    c: ApiContext, who: Principal, request: Request
) -> tuple[tuple[str, str, str | None], audience.Audience]:
    try:
        body = DryRunJson.model_validate(orjson.loads(await request.body()))
    except orjson.JSONDecodeError as exc:
        raise InvalidValue("body", None, f"is not valid JSON ({exc})") from None
    except ValidationError as exc:
        raise validation_to_poison(exc) from None
    fields = _dimensions(who, body.account, body.channel, body.sender)
    found = await asyncio.to_thread(audience.from_values, body.contacts, c.contacts)
    return fields, found


async def _from_form(
    c: ApiContext, who: Principal, request: Request
) -> tuple[tuple[str, str, str | None], audience.Audience]:
    limits = limits_of(c)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_bytes + _ENVELOPE:
        raise FileTooLarge(
            await upload_name(request),
            f"is {megabytes(int(length))}, more than the {megabytes(limits.max_bytes)} limit: "
            "compress the file into a .zip and upload the .zip",
        )
    async with request.form(max_files=1, max_fields=10) as form:
        fields = _dimensions(who, form.get("account"), form.get("channel"), form.get("sender"))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidValue("file", None, "is required (a multipart part named 'file')")
        data = await upload.read(limits.max_bytes + 1)
        name = upload.filename or "upload"
        options = form_options(form)
    f = await asyncio.to_thread(open_upload, name, data, limits)
    return fields, await asyncio.to_thread(audience.from_file, f, options)

"""Export routes: everything a filter matches, or selected entries, as CSV or XLSX; with
``history=true`` also the history of the exported entries' people (XLSX: a second sheet;
CSV: a .zip of entries.csv and history.csv)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import StreamingResponse

from dnc.api import writes
from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, entry_query, principal
from dnc.api.routes.entries import MAX_KEYS, EntryKeyIn
from dnc.api.view.query import EntryQuery
from dnc.api.view.sorting import DEFAULT_SORT, parse_sort, position
from dnc.domain.entries import Entry
from dnc.domain.timestamps import format_ms, now_ms
from dnc.errors import IndexNotReady, ViewUnavailable
from dnc.files import exports

router = APIRouter(prefix="/v1/entries", tags=["export"])

Format = Literal["csv", "xlsx"]
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}
_FORMAT = Query(description="csv (UTF-8 with a BOM, for Excel) or xlsx")
_BOM = Query(description="csv only: start with a UTF-8 BOM (Excel needs it for accents)")
_SORT = Query(
    description="the listing's order (GET /v1/entries' sort): added, contact, sender or "
    "source, a leading - for descending; -added (newest first) by default"
)
_HISTORY = Query(
    description="also the history of the exported entries' people: a History sheet (xlsx), "
    "or a .zip of entries.csv and history.csv (csv)"
)
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the file, streamed",
        "content": {"text/csv": {}, _MEDIA["xlsx"]: {}, _MEDIA["zip"]: {}},
    }
}


@router.get(
    "/export",
    summary="Export everything the filters match (the listing's filters)",
    response_class=StreamingResponse,
    responses=_RESPONSES,
)
async def export_matching(
    c: Annotated[ApiContext, Depends(api_context)],
    q: Annotated[EntryQuery, Depends(entry_query)],
    *,
    format: Annotated[Format, _FORMAT] = "csv",
    bom: Annotated[bool, _BOM] = True,
    history: Annotated[bool, _HISTORY] = False,
    sort: Annotated[str, _SORT] = DEFAULT_SORT,
) -> StreamingResponse:
    parse_sort(sort)  # a wrong order is a 422 before the download starts
    _complete(c)
    await c.view.ensure_readable()  # a 503 now, not a stream that breaks after its headers
    return await _respond(
        c.view.stream(q, chunk=1000, sort=sort),
        format,
        bom=bom,
        history=c.view.history_stream(q) if history else None,
    )


@router.post(
    "/export",
    summary="Export selected entries",
    response_class=StreamingResponse,
    responses=_RESPONSES,
)
async def export_selected(
    c: Annotated[ApiContext, Depends(api_context)],
    who: Annotated[Principal, Depends(principal)],
    keys: Annotated[list[EntryKeyIn], Body(min_length=1, max_length=MAX_KEYS, embed=True)],
    *,
    format: Annotated[Format, _FORMAT] = "csv",
    bom: Annotated[bool, _BOM] = True,
    history: Annotated[bool, _HISTORY] = False,
    sort: Annotated[str, _SORT] = DEFAULT_SORT,
) -> StreamingResponse:
    """``{"keys": [{account, contact, channel, sender}, …]}``, e.g. entries as listed,
    written in the listing's order ``sort``. Keys that are no longer on the list are left
    out and counted in ``X-DNC-Missing``."""
    order = parse_sort(sort)
    who.authorize(dict.fromkeys(k.account for k in keys))
    _complete(c)
    wanted = list(
        dict.fromkeys(
            writes.manual_key(
                k.account, k.stored, k.channel, k.sender, adding=False, forms=c.contacts
            )
            for k in keys
        )
    )
    found = await c.view.listed(wanted)
    ordered = sorted(found.values(), key=lambda e: position(e, order), reverse=order[1])
    entries = [e for e, _ in ordered]
    missing = len(wanted) - len(entries)
    people = [(e.key.account, e.key.contact) for e in entries]
    return await _respond(
        exports.batches_of(entries),
        format,
        bom=bom,
        headers={"X-DNC-Missing": str(missing)},
        history=exports.batches_of(await c.view.history_of(people)) if history else None,
    )


def _complete(c: ApiContext) -> None:
    """An export must not silently miss entries the view has not read yet."""
    if c.view.error is not None:
        raise ViewUnavailable(c.view.error)
    if not c.view.caught_up:
        raise IndexNotReady("the list view is still reading the changelog; try again shortly")


async def _respond(
    batches: AsyncIterator[list[Entry]],
    format: Format,
    *,
    bom: bool,
    headers: dict[str, str] | None = None,
    history: AsyncIterator[list[Any]] | None = None,
) -> StreamingResponse:
    stamp = format_ms(now_ms()).replace(":", "").replace("-", "").split(".")[0]
    suffix = "zip" if format == "csv" and history is not None else format
    out = {
        "Content-Disposition": f'attachment; filename="dnc-export-{stamp}Z.{suffix}"',
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    if format == "xlsx":
        handle = await exports.xlsx_file(batches, history=history)
        return StreamingResponse(
            exports.file_stream(handle), media_type=_MEDIA["xlsx"], headers=out
        )
    if history is not None:
        handle = await exports.csv_zip_file(batches, history, bom=bom)
        return StreamingResponse(exports.file_stream(handle), media_type=_MEDIA["zip"], headers=out)
    return StreamingResponse(
        exports.csv_stream(batches, bom=bom), media_type=_MEDIA["csv"], headers=out
    )

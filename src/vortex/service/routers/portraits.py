"""Portraits: an uploaded image, checked and kept under its content hash, that recipes sent over
HTTP name as `portrait:<sha256>` (security.py: a recipe from the network names no server file).

    POST /v1/portraits    multipart, field `file`: 201 {"ref", "sha256", "width", "height", "format"}
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile  # what request.form() holds (fastapi.UploadFile subclasses it)

from ...errors import RecipeError
from ...inputs import open_image
from ..api_models import PORTRAIT_BODY, Portrait, errors, ok
from ..deps import ServiceState, error, get_state, require_token
from ..security import UPLOAD_MAX_BYTES, portrait_path

router = APIRouter()


@router.post("/v1/portraits", status_code=201, dependencies=[Depends(require_token)],
             responses={**ok(Portrait, 201, "the stored portrait"), **errors(400, 401, 413, 422)},
             openapi_extra=PORTRAIT_BODY)
async def upload_portrait(request: Request, state: ServiceState = Depends(get_state)):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > UPLOAD_MAX_BYTES + 64 * 1024:
        raise HTTPException(status_code=413, detail=f"the upload is {declared} bytes; the limit is {UPLOAD_MAX_BYTES}")
    form = await request.form(max_files=1, max_fields=4)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        return error(422, "send the image as a multipart form field named 'file'", field="file")
    data = await file.read(UPLOAD_MAX_BYTES + 1)
    await form.close()
    if len(data) > UPLOAD_MAX_BYTES:
        raise HTTPException(status_code=413, detail=f"the image is over the limit of {UPLOAD_MAX_BYTES} bytes")
    return await asyncio.to_thread(_store_portrait, data, file.filename or "upload", state)


def _store_portrait(data: bytes, filename: str, state: ServiceState) -> JSONResponse:
    """Check the bytes with the CLI's image gate, then keep them as PNG under their content hash."""
    state.portraits.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=state.portraits, prefix=".upload-", delete=False) as tmp:
        tmp.write(data)
    tmp_path = Path(tmp.name)
    try:
        try:
            im = open_image(tmp_path, "file", ref=filename)
        except RecipeError as exc:
            return error(422, str(exc), field="file")
        digest = hashlib.sha256(data).hexdigest()
        final = portrait_path(state.portraits, digest)
        if not final.exists():
            staged = tmp_path.with_suffix(".png")
            im.convert("RGB").save(staged, format="PNG")
            with open(staged, "rb+") as f:  # on a shared --media, the bytes reach the server before the name
                os.fsync(f.fileno())
            staged.replace(final)  # atomic: a recipe never sees half a portrait, on any node
        return JSONResponse({"ref": f"portrait:{digest}", "sha256": digest, "width": im.width, "height": im.height,
                             "format": im.format}, status_code=201)
    finally:
        tmp_path.unlink(missing_ok=True)

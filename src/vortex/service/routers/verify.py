"""POST /v1/verify: the node's verifier (vortex.provenance.verify, the same as `vortex verify`).

    multipart fields: `file` (an MP4 upload) or `job` (a job id of this node); optional `trust` (a PEM of
    trusted CAs; default: this node's own CA). 200 {verdict, credentials, integrity, watermark, checks,
    reasons}: a file that fails verification is still a 200 with verdict "not verified".
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from ...errors import VortexError
from ..api_models import VERIFY_BODY, Verification, errors, ok
from ..deps import ServiceState, error, get_state, require_token

router = APIRouter()
VERIFY_MAX_BYTES = 256 * 1024 * 1024  # a 60 s 1080p slot at CRF 20 is ~40 MB


@router.post("/v1/verify", dependencies=[Depends(require_token)],
             responses={**ok(Verification, 200, "the verdict and its reasons"), **errors(401, 404, 413, 422)},
             openapi_extra=VERIFY_BODY)
async def verify(request: Request, state: ServiceState = Depends(get_state)):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > VERIFY_MAX_BYTES + 64 * 1024:
        raise HTTPException(status_code=413, detail=f"the upload is {declared} bytes; the limit is {VERIFY_MAX_BYTES}")
    try:
        form = await request.form(max_files=2, max_fields=4, max_part_size=VERIFY_MAX_BYTES)
    except Exception:  # noqa: BLE001 - not a multipart form (Starlette raises its own parse errors)
        return error(422, "send a multipart form: `file` (an MP4) or `job` (a job id), and optionally `trust`", field="file")
    try:
        file, job, trust = form.get("file"), form.get("job"), form.get("trust")
        trust_pem: Optional[str] = None
        if isinstance(trust, UploadFile):
            raw = await trust.read(1024 * 1024)
            trust_pem = raw.decode("ascii", "replace")
            if "-----BEGIN CERTIFICATE-----" not in trust_pem:
                return error(422, "`trust` holds no PEM certificate (give a CA's ca.pem)", field="trust")
        elif trust is not None:
            return error(422, "`trust` must be a file part (a PEM of CA certificates)", field="trust")
        if isinstance(file, UploadFile):
            data = await file.read(VERIFY_MAX_BYTES + 1)
            if len(data) > VERIFY_MAX_BYTES:
                raise HTTPException(status_code=413, detail=f"the MP4 is over the limit of {VERIFY_MAX_BYTES} bytes")
            return await asyncio.to_thread(_verify_bytes, data, trust_pem, state)
        if isinstance(job, str) and job:
            found = state.store.get(job) if len(job) <= 128 else None
            path = None if found is None else state.media.job_file(job, found.attempts, "video.mp4")
            if path is None:
                return error(404, f"no finished job '{job[:64]}' with a video on this node", field="job")
            return await asyncio.to_thread(_verify_path, path, trust_pem, state)
        return error(422, "give `file` (an MP4 upload) or `job` (a job id of this node)", field="file")
    finally:
        await form.close()


def _verify_bytes(data: bytes, trust_pem: Optional[str], state: ServiceState) -> JSONResponse:
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        path = Path(tmp) / "upload.mp4"
        path.write_bytes(data)
        return _verify_path(path, trust_pem, state, shown="upload")


def _verify_path(path: Path, trust_pem: Optional[str], state: ServiceState, shown: Optional[str] = None) -> JSONResponse:
    from ...provenance.signing import own_trust_anchor
    from ...provenance.verify import kind_of, verify_mp4

    try:
        if kind_of(path) != "mp4":
            return error(422, "`file` is not an MP4 (a playlist is verified with `vortex verify URL`)", field="file")
        if trust_pem is None:
            trust_pem = own_trust_anchor(state.config)
        report = verify_mp4(path, trust_pem)
    except VortexError as exc:
        return error(422, str(exc).replace(str(path), shown or path.name), field="file")
    report["target"] = shown or report["target"]
    return JSONResponse(report)

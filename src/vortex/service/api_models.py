"""The OpenAPI description of what the routes take and answer (GET /openapi.json), so that a client
generator, or Schemathesis (tests/test_fuzz_api.py), knows every body, query parameter, status and
response shape. Documentation only: the routes build their JSON themselves, and these models are
attached with `responses=` (never `response_model=`, which would re-validate each answer); the
fuzz test checks that every answer conforms, so a route that drifts from its schema fails CI.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    message: str
    field: Optional[str] = None


class Error(BaseModel):
    """Every refusal: {"error": {"message", "field"?}}."""

    error: ErrorDetail


class Links(_Open):
    self: str
    events: str
    video: str
    captions: str  # WebVTT
    result: str


class Slot(_Open):
    id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    phase: Optional[str]
    attempts: int
    created: float
    started: Optional[float]
    finished: Optional[float]
    timings: Optional[dict[str, Any]]
    verification: Optional[dict[str, Any]]
    error: Optional[Any]
    seed: Optional[int]
    slot_id: Optional[int]
    actor_image: Optional[str]
    replica: Optional[dict[str, Any]]
    node: Optional[str]
    proof: Optional[Any]
    progress: Optional[dict[str, Any]]
    links: Links


class SlotList(BaseModel):
    slots: list[Slot]


class Portrait(BaseModel):
    ref: str
    sha256: str
    width: int
    height: int
    format: Optional[str]


class Channel(_Open):
    name: str
    status: Literal["starting", "on_air", "stopped", "ended", "failed"]
    error: Optional[str]
    pace: str
    max_slots: Optional[int]
    playlist: str
    master: str  # the multivariant playlist: the stream and its captions (WebVTT rendition)
    page: str
    owner: Optional[dict[str, Any]]
    takeovers: list[dict[str, Any]]
    definition: Optional[dict[str, Any]]
    inserts: list[dict[str, Any]]
    program: Optional[dict[str, Any]] = None  # the PATCHed ticker / lower third in force, with from_frame
    on_air: Optional[dict[str, Any]]
    next: list[dict[str, Any]]
    recent: list[dict[str, Any]]
    counts: dict[str, Any]
    lead_time_sec: dict[str, Optional[float]]
    ended: bool


class ChannelList(BaseModel):
    channels: list[Channel]


class InsertAccepted(BaseModel):
    id: str
    air_time: Optional[str]
    duration_sec: float
    state: str
    at: Literal["now", "next"]
    channel: str


class ProgramText(BaseModel):
    """A running channel's program text (PATCH /v1/channels/{name}/program)."""

    channel: str
    ticker: list[str]
    lower_third: Optional[dict[str, str]]
    from_frame: Optional[int]  # the stream's frame index from which the picture shows it


class Verification(_Open):
    """POST /v1/verify (vortex.provenance.verify): the verdict and one reason a line."""

    verdict: Literal["verified", "not verified"]
    credentials: dict[str, Any]
    integrity: dict[str, Any]
    watermark: dict[str, Any]
    checks: dict[str, Any]
    reasons: list[str]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    profile: str
    engine_load_s: Optional[float]
    load_error: Optional[str]
    dead: Optional[Any]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route may give, each in the one error shape."""
    what = {400: "a malformed request (HLS delivery directives)", 401: "no or a wrong bearer token",
            404: "no such job, channel or file", 409: "a conflict with the resource's state",
            413: "the body is over its size limit", 422: "a bad body or parameter, naming the field",
            503: "not ready, runs no channels, or a blocking reload that timed out"}
    return {code: {"model": Error, "description": what[code]} for code in codes}


def ok(model: type[BaseModel], code: int = 200, description: str = "") -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model, "description": description or model.__doc__ or model.__name__}}


_TEXT_SCHEMA = {"type": "string", "maxLength": 4096}


def text_body(description: str, schema: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself (JSON or YAML text, see read_limited)."""
    return {"requestBody": {"required": True, "description": description, "content": {
        "application/json": {"schema": schema or {"type": "object"}},
        "application/yaml": {"schema": _TEXT_SCHEMA},
        "text/plain": {"schema": _TEXT_SCHEMA}}}}


RECIPE_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "a recipe (README: The recipe), bare or wrapped {recipe, slot_id, seed}",
    "properties": {
        "slot_params": {"type": "object", "properties": {
            "slot_id": {"type": "integer"}, "duration_sec": {"type": "number"}, "fps": {"type": "integer"},
            "seed": {"type": "integer"}}},
        "audio_track": {"type": "object", "properties": {
            "script": {"type": "string"}, "voice_id": {"type": "string"}, "speed": {"type": "number"},
            "emotion": {"type": "string"}}},
        "visual_track": {"type": "object", "properties": {
            "prompt": {"type": "string"}, "actor_image": {"type": "string"},
            "expression_preset": {"type": "string"}}},
    }}

CHANNEL_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "a channel definition (channel/definition.py)",
    "properties": {"name": {"type": "string"}, "loop": {"type": "boolean"}, "lookahead": {"type": "integer"},
                   "slots_in_flight": {"type": "integer"}, "start": {"type": "string"}, "margin_sec": {"type": "number"},
                   "max_attempts": {"type": "integer"}, "live_delay_sec": {"type": "number"},
                   "filler": {"type": "object", "properties": {"policy": {"type": "string"}}},
                   "slots": {"type": "array", "items": {"type": "object", "properties": {
                       "recipe": {"oneOf": [RECIPE_SCHEMA, {"type": "string"}]}}}}}}

INSERT_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "a live insert: {recipe, at}",
    "properties": {"recipe": RECIPE_SCHEMA, "at": {"type": "string", "enum": ["now", "next"]}}}

PORTRAIT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


VERIFY_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}, "job": {"type": "string"},
                   "trust": {"type": "string", "format": "binary"}}}}}}}


def media(kind: str, description: str, schema: Optional[dict[str, Any]] = None) -> dict[int | str, dict[str, Any]]:
    """A 200 that is not a model: a playlist, a segment, an MP4, metrics text, an event stream, a file."""
    return {200: {"description": description, "content": {kind: {"schema": schema or {"type": "string"}}}}}


# One server-sent event, as a client parses it (slots.py `_frame`: id, event, data as JSON text).
SSE_EVENT: dict[str, Any] = {"type": "object", "required": ["event", "data"], "properties": {
    "id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string"}}}
RESULT_SCHEMA: dict[str, Any] = {"type": "object", "description": "the slot's result sidecar (result.py)"}

_LOWER_THIRD = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 200},
                                                 "title": {"type": "string", "maxLength": 200}},
                "required": ["name"]}
PROGRAM_PATCH_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "a running program's text: {ticker?, lower_third?} (null: no lower third)",
    "properties": {"ticker": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 200}},
                   "lower_third": {"oneOf": [_LOWER_THIRD, {"type": "null"}]}}}

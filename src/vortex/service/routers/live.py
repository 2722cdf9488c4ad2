"""Live inserts into a running channel (issue 16): `POST /v1/channels/{name}/live` will land here.

A placeholder router with no routes yet, included by the app in its place (after the channels,
before the web pages); channel/policy.py already plans where an insert airs and how the slots made
ahead move (`plan_insert`).
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

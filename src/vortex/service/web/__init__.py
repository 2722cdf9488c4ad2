"""The web view's files: `static/` holds the pages, their scripts and styles (package data).

Their routes are `vortex.service.routers.web.router`, included by the service app.
"""

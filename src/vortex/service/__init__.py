"""`vortex serve`: the node as a service (HTTP API, durable job queue, SSE, metrics).

Importing this package imports no FastAPI: `vortex.service.cli.add_serve_parser` registers the
command cheaply; `vortex.service.app.create_app` builds the application.
"""

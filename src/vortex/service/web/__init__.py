"""The web view of `vortex serve`: a jobs page, a job page and a submit form over the JSON API.

`vortex.service.web.routes.router` is included by the service app; the pages need nothing else.
"""

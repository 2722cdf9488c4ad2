"""The routes of `vortex serve`, one `APIRouter` per resource: slots, portraits, health (and
metrics), channels, live (inserts, to come) and web (the pages). Each takes what it needs from
`..deps` by dependency injection; none imports the app.
"""

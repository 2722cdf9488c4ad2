"""Accountable media (issue 22): the node's signing identity (keys), the Content Credentials on each
MP4 (credentials, signing), the watermark under them (watermark), and the one verifier that
`vortex verify` and `POST /v1/verify` call (verify). Nothing here imports the service or the channel."""

"""The wiring: the ASGI app and its lifespan, the command line, app state, logging,
metrics, the server protocol and the access-log writer."""

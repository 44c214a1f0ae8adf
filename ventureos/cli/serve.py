"""``ventureos serve``: the read API (and pages) on this machine, reading ``$VENTUREOS_HOME``."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes sharing the port (about one per core): each keeps its own caches.",
        ),
    ] = 1,
) -> None:
    """Serve the API at http://HOST:PORT/api/v2 (docs at /api/v2/docs) with uvicorn.

    Reads the serving store and the lake of the current settings; stop it with Ctrl-C.
    """
    import uvicorn

    from ventureos.api.app import create_app

    # The app is built here, so a bad setting fails before the server binds the port.
    app = create_app()
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        return
    # Each worker process builds its own app from the same environment.
    uvicorn.run(
        "ventureos.api.app:create_app", factory=True, workers=workers, host=host, port=port,
        log_level="info", access_log=False,
    )  # fmt: skip

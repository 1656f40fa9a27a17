"""``soccersr serve``: a small web app for a photo desk (the page at ``/``, a JSON API under ``/api``).

How the parts fit:

- ``config``: ``ServeConfig``, every limit and choice of one server, validated at the edge;
- ``security``: host, token and origin checks, upload names made safe, unguessable job ids;
- ``uploads``: an upload is recognised by its content and checked against the limits;
- ``store``: jobs on disk (one folder each), so a restart keeps finished results;
- ``engines``: one engine per model, loaded once and shared by every job;
- ``worker``: the background thread that upscales queued jobs, as ``soccersr upscale`` does;
- ``api`` / ``app``: the routes, and the FastAPI application around them (page, docs, errors).

FastAPI and uvicorn are an optional extra (``pip install 'soccersr[serve]'``); only ``api``,
``app`` and the command import them.
"""

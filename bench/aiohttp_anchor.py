"""The anchor: the same JSON-RPC `status` answer served by aiohttp, as a user would write it."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from aiohttp import web

STARTED = time.time()


async def rpc(request: web.Request) -> web.Response:
    call = json.loads(await request.read())
    result: dict[str, Any] = {
        "server": {"version": "anchor", "uptime": time.time() - STARTED, "users": 0,
                   "online": 0},
        "server_time": time.time(),
    }
    return web.json_response({"jsonrpc": "2.0", "id": call.get("id"), "result": result})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/rpc", rpc)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

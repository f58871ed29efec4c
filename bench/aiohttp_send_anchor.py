"""A second anchor: rpcchat's own JSON-RPC dispatcher, chat service and storage served by
aiohttp instead of rpcchat's transport: "the same thing built on a framework".

    python bench/aiohttp_send_anchor.py --port N --data-dir DIR
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from rpcchat.app import ChatServer
from rpcchat.config import ServerConfig


def build(data_dir: Path) -> tuple[web.Application, ChatServer]:
    chat = ChatServer(ServerConfig(data_dir=data_dir, rate_limit=0))

    async def rpc(request: web.Request) -> web.Response:
        result = await chat.dispatcher.dispatch(await request.read(),
                                                request.headers.get("Authorization"),
                                                record=False)
        if result.body is None:
            return web.Response(status=204)
        return web.Response(body=result.body, content_type="application/json")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await chat.service.start()
        yield
        chat.service.stop_waiting()
        await chat.service.close()

    app = web.Application()
    app.router.add_post("/rpc", rpc)
    app.cleanup_ctx.append(lifecycle)
    return app, chat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    app, _ = build(args.data_dir)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

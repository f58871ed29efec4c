"""rpcchat: a small chat server speaking JSON-RPC 2.0 over HTTP/1.1."""

__version__ = "0.1.0"

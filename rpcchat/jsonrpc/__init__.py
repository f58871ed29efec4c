"""JSON-RPC 2.0: request dispatch, typed method declarations and OpenRPC discovery."""

from rpcchat.jsonrpc.constraints import Doc, Length, Pattern, Range
from rpcchat.jsonrpc.context import Authenticator, CallContext, Principal
from rpcchat.jsonrpc.dispatcher import CallRecord, DispatchResult, Dispatcher
from rpcchat.jsonrpc.registry import Registry
from rpcchat.jsonrpc.spec import Auth, Example, MethodSpec, ParamSpec, rpc_method

__all__ = [
    "Auth", "Authenticator", "CallContext", "CallRecord", "DispatchResult", "Dispatcher",
    "Doc", "Example", "Length", "MethodSpec", "ParamSpec", "Pattern", "Principal", "Range",
    "Registry", "rpc_method",
]

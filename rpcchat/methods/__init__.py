"""JSON-RPC handler classes, one per area: params in, domain call, result out."""

from __future__ import annotations

from rpcchat.config import ServerConfig
from rpcchat.domain.service import ChatService
from rpcchat.jsonrpc.registry import Registry
from rpcchat.methods.accounts import AccountMethods
from rpcchat.methods.events import EventMethods
from rpcchat.methods.files import FileMethods
from rpcchat.methods.groups import GroupMethods
from rpcchat.methods.messages import MessageMethods
from rpcchat.methods.moderation import ModerationMethods
from rpcchat.methods.scheduled import ScheduledMethods


def register_all(registry: Registry, service: ChatService, config: ServerConfig) -> None:
    registry.add(AccountMethods(service, config))
    registry.add(MessageMethods(service, config))
    registry.add(EventMethods(service))
    registry.add(ScheduledMethods(service))
    registry.add(ModerationMethods(service))
    registry.add(GroupMethods(service))
    registry.add(FileMethods(service, config))

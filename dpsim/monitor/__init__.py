"""`dpsim monitor` and `dpsim status`: the running and recent shred and process sessions of a lake, read
from their run manifests only (`state`), served as one live page over server-sent events (`server`)."""

from dpsim.monitor.server import serve
from dpsim.monitor.state import lake_state

__all__ = ["lake_state", "serve"]

"""What generated code, the runtime shim and hosts agree on about memory."""

from __future__ import annotations

# Arena, weights and tensor offsets: cache-line and v128 friendly; hosts align weights they pass too.
ALIGNMENT = 64

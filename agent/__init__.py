"""Cascade: one stream from OBS, relayed to every platform at once.

The import package is split by concern so the tree reads like the architecture:

- ``agent.core``: the model, process state machines, the supervisor and the event bus
  (no aiohttp, no pystray);
- ``agent.media``: FFmpeg discovery and probing, argument building, progress parsing;
- ``agent.platform``: what differs per operating system (child containment, ...);
- ``agent.cli``: the ``cascade`` command line.
"""

__version__ = "0.1.0"

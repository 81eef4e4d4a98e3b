"""The core: process state machines, the supervisor and the in-process event bus.

Nothing here imports aiohttp or pystray: the API and the tray are thin clients of this package.
"""

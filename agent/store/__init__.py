"""Durable storage: profiles, settings, stream keys and exported bundles.

- :mod:`agent.store.atomic` — crash-safe JSON files: atomic writes with a backup, reads that
  fall back to the backup or the defaults and keep a damaged file aside;
- :mod:`agent.store.codec` — a :class:`~agent.core.model.Profile` to and from JSON, with the
  schema version and the migrations from older layouts;
- :mod:`agent.store.profiles` — :class:`~agent.store.profiles.ProfileStore`: the profiles of
  one config directory, which one is active, and the agent-wide settings file.

This package's ``__init__`` imports nothing on purpose: :mod:`agent.core.settings` reads its
file through :mod:`agent.store.atomic`, and :mod:`agent.store.profiles` imports
:mod:`agent.core.settings`; importing the submodules here would make that a cycle.
"""

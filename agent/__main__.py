"""``python -m agent`` runs the ``cascade`` command line."""

from agent.cli import main

raise SystemExit(main())

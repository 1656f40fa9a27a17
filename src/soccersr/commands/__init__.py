"""Subcommands of the ``soccersr`` CLI, one module each (see ``soccersr.cli``)."""

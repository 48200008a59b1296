"""The ``finops`` command's subcommands, one module per command or group: each parses its
options, calls the stack or the platform, and prints (``finops.cli.main`` registers them)."""

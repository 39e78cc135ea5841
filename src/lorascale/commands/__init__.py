"""CLI commands: each module has ``register(subparsers)`` and ``run(args) -> int``; no heavy imports at module level."""

"""One module per `rlvr` command, each with `add_arguments(parser)` and `run(args) -> int`."""

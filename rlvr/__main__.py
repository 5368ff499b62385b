"""`python -m rlvr ...` (and `torchrun -m rlvr ...`): the same as the `rlvr` command."""

import sys

from rlvr.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m streamgru.cluster``: run one worker (see :mod:`streamgru.cluster.command`)."""

import sys

from .command import main

sys.exit(main())

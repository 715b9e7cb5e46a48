"""``python -m tomoclass.cli``: the same as the ``tomoclass`` command."""

import sys

from tomoclass.cli import main

sys.exit(main())

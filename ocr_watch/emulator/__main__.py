"""``python -m ocr_watch.emulator``: run the emulator from the command line."""

import sys

from .cli import main

sys.exit(main())

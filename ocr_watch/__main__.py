"""`python -m ocr_watch` is the `ocr-watch` command."""

import sys

from ocr_watch.cli import main

sys.exit(main())

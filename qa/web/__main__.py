"""Entry point for `python -m qa.web`: the web chat, as `python app.py` starts it."""

import sys

from qa.web.chat import main

sys.exit(main())

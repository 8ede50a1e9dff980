"""The web chat over the seeds: `python app.py [--host H] [--port N] [--allow-rebuild] [--allow-upload] [--examples FILE] [--mcp]`.

The app is qa/web/chat.py, installed with the package (also `python -m qa.web`);
this file starts it from a checkout.
"""

import sys

from qa.web.chat import main

if __name__ == "__main__":
    sys.exit(main())

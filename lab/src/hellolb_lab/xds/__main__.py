"""``python -m hellolb_lab.xds``: run the lab's xDS control plane until SIGTERM."""

import sys

from hellolb_lab.xds.server import main

if __name__ == "__main__":
    sys.exit(main())

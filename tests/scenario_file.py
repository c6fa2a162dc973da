"""``k8s/scenarios.json``: every scenario's name (in tour order) and the meshed ones, written
from the lab's catalogue for the Tiltfile. Starlark cannot import the catalogue; Tilt reads this
file with its ``read_json`` builtin. ``make scenarios`` writes it, and ``tests/test_tiltfile.py``
fails while it differs from what the catalogue says. Test modules load this file by path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hellolb_lab import catalogue

PATH = Path(__file__).resolve().parent.parent / "k8s" / "scenarios.json"
#: The command that writes the file, for the stale-file message.
COMMAND = "make scenarios"


def render() -> str:
    """The file's text, from the catalogue."""
    data = {
        "names": list(catalogue.names()),
        "meshed": [s.name for s in catalogue.SCENARIOS if s.meshed],
    }
    return json.dumps(data, indent=2) + "\n"


def main() -> int:
    PATH.write_text(render())
    print(f"wrote {PATH.relative_to(PATH.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

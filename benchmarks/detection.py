"""Detection benchmarks (JSON lines): known images (PDQ hashing and matching, against
python-threatexchange's PDQIndex) and grooming, whichever parts are present.

    python benchmarks/detection.py [--only images|grooming] [--sizes 10k,100k,1M,10M]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS = {"images": "_images_bench", "grooming": "_grooming_bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(PARTS), help="run one part")
    modules = {}
    for part, name in PARTS.items():
        try:
            modules[part] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        add_arguments = getattr(modules[part], "add_arguments", None)
        if add_arguments is not None:
            add_arguments(parser)
    args = parser.parse_args()
    for part, module in modules.items():
        if args.only in (None, part):
            for row in module.run(args):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

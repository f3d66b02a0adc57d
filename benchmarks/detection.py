"""Detection benchmarks, JSON lines: grooming scorer quality and speed
(`_grooming_bench.py`), and image matching (`_images_bench.py`) where present.

    python benchmarks/detection.py [--only grooming|grooming_server|images] [part options]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARTS = {"grooming": "_grooming_bench", "grooming_server": "_grooming_server_bench",
         "images": "_images_bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(PARTS))
    modules = {}
    for name, module_name in PARTS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if hasattr(modules[name], "add_arguments"):
            modules[name].add_arguments(parser)
    args = parser.parse_args()
    for name, module in modules.items():
        if args.only in (None, name):
            for line in module.run(args):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

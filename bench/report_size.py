"""The size of a device report for a day of 60-s windows: 1440 windows made from the
documented example (tests/data/summary-example.json), varied -- brightness drifting in the
afternoon, latency and CPU wandering, a few faults -- rendered with a reference built from
the example's own histograms. Prints the byte size; it must stay at most 1 MB.

    python bench/report_size.py [--out report.html]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edgewatch.report import data, html
from support.windows import WINDOWS, day_of_windows, reference_of

LIMIT = 1_000_000


def day_report() -> str:
    windows = day_of_windows()
    device = data.DeviceData("bench-cam", windows, reference_of(windows[0]),
                             manifest={"model_name": "ssdlite"}, source="bench")
    return html.device_html(device)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the report here")
    args = p.parse_args()
    page = day_report()
    size = len(page.encode())
    if args.out:
        Path(args.out).write_text(page, encoding="utf-8")
    print(f"report of {WINDOWS} windows of 60 s: {size} bytes "
          f"({'within' if size <= LIMIT else 'OVER'} the {LIMIT}-byte limit)")
    return 0 if size <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())

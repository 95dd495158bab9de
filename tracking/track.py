"""Propose each shopper's cart from a scene folder.

    python -m tracking.track SCENE_DIR --out result.json

reads SCENE_DIR/footage.mp4, planogram.json, visits.json, products/ and gate/
(never truth.json) and writes the carts, their confidence and whether each would
go to a human at the default threshold. Exit status 2 on bad input, with the
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tracking.tracker import DEFAULT_THRESHOLD, TrackingError, track_footage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.track", description=__doc__.split("\n\n")[0])
    parser.add_argument("scene", type=Path, help="scene folder (footage.mp4, planogram.json, visits.json)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (default: stdout)")
    parser.add_argument("--footage", type=Path, default=None, help="footage file (default SCENE/footage.mp4)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cart confidence under which a cart is flagged for review (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--no-tracks", action="store_true", help="leave the shoppers' boxes out of the JSON")
    args = parser.parse_args(argv)
    scene: Path = args.scene
    footage = args.footage or scene / "footage.mp4"
    try:
        result = track_footage(
            footage, scene / "planogram.json", scene / "visits.json", threshold=args.threshold
        )
    except TrackingError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    data = result.to_json()
    if args.no_tracks:
        data.pop("tracks", None)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        flagged = sum(c["flagged"] for c in data["carts"].values())
        print(
            f"{args.out}: {len(data['carts'])} carts, {flagged} flagged, "
            f"{len(data['unattributed'])} unattributed events"
            + "".join(f", {caveat}" for caveat in result.caveats()),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the ffmpeg binary comes from.

The imageio-ffmpeg wheel carries a static ffmpeg (with libx264 and libvpx-vp9), so
`pip install -r requirements.txt` is all a machine needs. `FFMPEG_BINARY` names
another one. There is no ffprobe: video facts are read with OpenCV or from
ffmpeg's own output.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache


class FFmpegNotFound(RuntimeError):
    pass


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    named = os.environ.get("FFMPEG_BINARY", "").strip()
    if named:
        found = shutil.which(named) or (named if os.path.isfile(named) else None)
        if not found:
            raise FFmpegNotFound(f"FFMPEG_BINARY={named!r} is not an executable file")
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise FFmpegNotFound("imageio-ffmpeg is not installed and FFMPEG_BINARY is not set") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())

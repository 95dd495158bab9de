"""Cutting review clips from store footage (tracking.clips)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracking.clips import ClipError, cut_clip
from tracking.decode import probe_stream


def test_a_clip_is_cut_by_copying_the_stream_from_the_keyframe_before_its_start(
    small_scene: Path, tmp_path: Path
) -> None:
    clip = cut_clip(small_scene / "footage.mp4", tmp_path / "clip.mp4", start=5.5, end=12.0)
    info = probe_stream(clip)
    assert (info.width, info.height) == (640, 360)
    # store footage has a keyframe every second: at most one second of context more than asked
    assert 6.3 <= info.duration <= 7.6


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "No such file"),
        (b"", "Invalid data"),
        (b"not a video at all", "Invalid data"),
    ],
)
def test_footage_that_cannot_be_read_is_a_clip_error_naming_the_file(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    source = tmp_path / "footage.mp4"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(ClipError, match=f"cannot read footage.mp4: .*{says}"):
        cut_clip(source, tmp_path / "clip.mp4", start=0.0, end=5.0)
    assert not (tmp_path / "clip.mp4").exists()


def test_a_truncated_file_is_a_clip_error(small_scene: Path, tmp_path: Path) -> None:
    source = tmp_path / "footage.mp4"
    source.write_bytes((small_scene / "footage.mp4").read_bytes()[:3000])  # no whole index, no picture
    with pytest.raises(ClipError, match="cannot read footage.mp4"):
        cut_clip(source, tmp_path / "clip.mp4", start=0.0, end=5.0)


def test_an_empty_span_is_a_clip_error(small_scene: Path, tmp_path: Path) -> None:
    with pytest.raises(ClipError, match="empty clip span"):
        cut_clip(small_scene / "footage.mp4", tmp_path / "clip.mp4", start=4.0, end=4.0)


def test_a_file_with_no_picture_is_a_clip_error_saying_so(tmp_path: Path) -> None:
    import subprocess

    from tracking.ffmpeg import ffmpeg_binary

    sound = tmp_path / "sound.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-y", str(sound)], check=True
    )
    with pytest.raises(ClipError, match="sound.mp4 has no video stream"):
        cut_clip(sound, tmp_path / "clip.mp4", start=0.0, end=1.0)

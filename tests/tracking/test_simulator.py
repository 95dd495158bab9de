"""The store simulator: same seed, same answers; answers that add up; footage as promised."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracking.ffmpeg import ffmpeg_binary
from tracking.scene import (
    PlanogramError,
    VisitsError,
    load_planogram,
    load_truth,
    load_visits,
    planogram_from_dict,
    visits_from_list,
)
from tracking.simulator import PRESETS, Scene, SimulatorError, main, plan_scene, simulate, write_scene
from tracking.video import iter_frames, probe

SMALL = {"width": 640, "height": 360, "fps": 15}
SEEDS = range(6)


def scenes(preset: str) -> list[Scene]:
    return [plan_scene(seed=seed, preset=preset, **SMALL) for seed in SEEDS]


def test_the_same_seed_gives_identical_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        write_scene(plan_scene(seed=11, preset="hard", **SMALL), tmp_path / run, video=False)
    for name in ("planogram.json", "visits.json", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    gates = sorted(p.name for p in (tmp_path / "a" / "gate").iterdir())
    assert gates == sorted(p.name for p in (tmp_path / "b" / "gate").iterdir())
    for name in gates:
        assert (tmp_path / "a" / "gate" / name).read_bytes() == (tmp_path / "b" / "gate" / name).read_bytes()


def test_a_different_seed_gives_a_different_scene() -> None:
    a, b = plan_scene(seed=1, preset="mixed"), plan_scene(seed=2, preset="mixed")
    assert a.truth.events != b.truth.events
    assert [v.token for v in a.visits] != [v.token for v in b.visits]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_stock_never_goes_below_zero(preset: str) -> None:
    for scene in scenes(preset):
        stock = {s.id: s.facings for s in scene.planogram.slots}
        capacity = {s.id: s.w for s in scene.planogram.slots}
        for e in sorted(scene.truth.events, key=lambda e: e.t_start):
            stock[e.slot] += e.qty if e.kind == "return" else -e.qty
            assert stock[e.slot] >= 0, (scene.seed, e)
            assert capacity[e.slot] > 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_cart_is_its_picks_minus_its_returns(preset: str) -> None:
    for scene in scenes(preset):
        expected: dict[str, dict[str, int]] = {v.token: defaultdict(int) for v in scene.visits}
        for e in scene.truth.events:
            expected[e.token][e.sku] += e.qty if e.kind == "pick" else -e.qty
        for token, cart in expected.items():
            assert all(q >= 0 for q in cart.values()), "a shopper returned more than they took"
            assert scene.truth.carts[token] == {sku: q for sku, q in cart.items() if q}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_event_lies_inside_its_visit_and_the_footage(preset: str) -> None:
    for scene in scenes(preset):
        visits = {v.token: v for v in scene.visits}
        slots = {s.id for s in scene.planogram.slots}
        skus = {p.sku for p in scene.planogram.products}
        for e in scene.truth.events:
            v = visits[e.token]
            assert v.entered_at < e.t_start < e.t_end < v.exited_at
            assert 0.5 <= e.t_end - e.t_start <= 1.6
            assert e.slot in slots and e.sku in skus and e.qty >= 1
        assert max(v.exited_at for v in scene.visits) <= scene.duration
        assert scene.frame_count == round(scene.duration * scene.fps)


def _max_in_store(scene: Scene) -> int:
    points = sorted([(v.entered_at, 1) for v in scene.visits] + [(v.exited_at, -1) for v in scene.visits])
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def test_easy_scenes_are_one_shopper_at_a_time_with_picks_only() -> None:
    for scene in scenes("easy"):
        assert _max_in_store(scene) == 1
        assert all(e.kind == "pick" and e.qty == 1 for e in scene.truth.events)
        assert not any(e.occluded or e.ambiguous for e in scene.truth.events)
        assert not scene.truth.touches
        assert scene.truth.scene["lookalikes"] == []
        per_shopper = defaultdict(int)
        for e in scene.truth.events:
            per_shopper[e.token] += 1
        assert all(1 <= n <= 4 for n in per_shopper.values())


def test_mixed_and_hard_scenes_have_what_their_preset_promises() -> None:
    for name in ("mixed", "hard"):
        p = PRESETS[name]
        events = [e for scene in scenes(name) for e in scene.truth.events]
        touches = sum(len(scene.truth.touches) for scene in scenes(name))
        total = len(events) + touches
        returns = [e for e in events if e.kind == "return"]
        assert abs(len(returns) / total - p.return_rate) < 0.08, name
        assert sum(e.occluded for e in events) / total == pytest.approx(p.occluded_rate + 0.05, abs=0.1)
        assert touches > 0
        assert max(_max_in_store(scene) for scene in scenes(name)) <= p.concurrent[1]
        assert max(_max_in_store(scene) for scene in scenes(name)) >= p.concurrent[0] + 1
        for scene in scenes(name):
            slot_sku = {s.id: s.sku for s in scene.planogram.slots}
            wrong = [e for e in scene.truth.events if e.kind == "return" and slot_sku[e.slot] != e.sku]
            assert len(scene.truth.scene["lookalikes"]) == p.lookalike_pairs
            assert wrong or name == "mixed"
    hard_picks = [e for s in scenes("hard") for e in s.truth.events if e.kind == "pick"]
    assert 0.1 < sum(e.qty > 1 for e in hard_picks) / len(hard_picks) < 0.35


def test_the_files_load_back_with_the_scene_loaders(tmp_path: Path) -> None:
    scene = simulate(tmp_path, seed=5, preset="mixed", video=False, **SMALL)
    assert load_planogram(tmp_path / "planogram.json") == scene.planogram
    assert load_visits(tmp_path / "visits.json") == scene.visits
    truth = load_truth(tmp_path / "truth.json")
    assert truth.carts == scene.truth.carts and truth.events == scene.truth.events
    data = json.loads((tmp_path / "planogram.json").read_text())
    assert data["camera"] == {"name": "shelf-1", "width": 640, "height": 360, "fps": 15}
    assert set(data["slots"][0]) == {"id", "sku", "x", "y", "w", "h", "facings"}
    assert set(data["products"][0]) == {"sku", "name", "price", "currency", "image"}
    event = json.loads((tmp_path / "truth.json").read_text())["events"][0]
    assert {"t_start", "t_end", "token", "slot", "sku", "kind", "qty", "ambiguous", "occluded"} <= set(event)
    for product in scene.planogram.products:
        image = cv2.imread(str(tmp_path / product.image))
        assert image is not None and image.shape[0] == 240
    for visit in scene.visits:
        gate = cv2.imread(str(tmp_path / visit.gate_image))
        assert gate is not None and gate.shape == (320, 160, 3)


def test_payment_tokens_look_like_card_vault_tokens() -> None:
    tokens = [v.token for v in plan_scene(seed=3, preset="hard").visits]
    assert all(re.fullmatch(r"pm_[A-Za-z0-9]{24}", t) for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_visits_are_sorted_by_entry() -> None:
    visits = plan_scene(seed=4, preset="hard").visits
    assert [v.entered_at for v in visits] == sorted(v.entered_at for v in visits)


def test_a_slot_outside_the_frame_is_rejected_by_name() -> None:
    data = {
        "camera": {"name": "shelf-1", "width": 640, "height": 360, "fps": 15},
        "currency": "USD",
        "products": [{"sku": "A", "name": "A", "price": 100, "currency": "USD", "image": "products/A.png"}],
        "slots": [{"id": "S07", "sku": "A", "x": 600, "y": 10, "w": 80, "h": 50, "facings": 3}],
    }
    with pytest.raises(PlanogramError, match="S07"):
        planogram_from_dict(data)
    data["slots"][0].update(x=10, sku="B")
    with pytest.raises(PlanogramError, match="unknown sku B"):
        planogram_from_dict(data)
    del data["currency"]
    with pytest.raises(PlanogramError, match="currency"):
        planogram_from_dict(data)


def test_malformed_visits_are_rejected() -> None:
    good = {"token": "pm_x", "entered_at": 1.0, "exited_at": 5.0, "gate_image": "gate/pm_x.png"}
    assert visits_from_list([good])[0].token == "pm_x"
    with pytest.raises(VisitsError, match="exits before it enters"):
        visits_from_list([{**good, "exited_at": 0.5}])
    with pytest.raises(VisitsError, match="entered_at"):
        visits_from_list([{**good, "entered_at": "soon"}])
    with pytest.raises(VisitsError, match="list"):
        visits_from_list({"token": "pm_x"})


def test_bad_parameters_get_a_clear_error() -> None:
    with pytest.raises(SimulatorError, match="unknown preset"):
        plan_scene(seed=1, preset="impossible")
    with pytest.raises(SimulatorError, match="even"):
        plan_scene(seed=1, width=641, height=360)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "nope"], "invalid choice"),
        (["--shoppers", "0"], "must be positive"),
        (["--duration", "soon"], "number of seconds"),
        (["--width", "641"], "even"),
        (["--seed", "-3"], "must not be negative"),
    ],
)
def test_bad_options_on_the_command_line_get_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "scene")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_refuses_to_write_into_a_full_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--no-video"])
    assert "--force" in capsys.readouterr().err


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--seed",
        "--preset",
        "--shoppers",
        "--duration",
        "--out",
        "--width",
        "--height",
        "--fps",
        "--no-video",
    ):
        assert option in text


@pytest.mark.slow
def test_the_video_opens_with_the_promised_size_fps_and_frame_count(tmp_path: Path) -> None:
    scene = simulate(tmp_path, seed=2, preset="easy", shoppers=1, duration=8, width=320, height=180, fps=10)
    info = probe(tmp_path / "footage.mp4")
    assert (info.width, info.height, info.fps, info.frame_count) == (320, 180, 10.0, scene.frame_count)
    assert sum(1 for _ in iter_frames(tmp_path / "footage.mp4")) == scene.frame_count
    assert cv2.imread(str(tmp_path / "preview.png")) is not None
    # a keyframe at least every second, so clips can be cut anywhere
    run = subprocess.run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-skip_frame",
            "nokey",
            "-i",
            str(tmp_path / "footage.mp4"),
            "-vf",
            "showinfo",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    times = [float(t) for t in re.findall(r"pts_time:([0-9.]+)", run.stderr)]
    assert times and max(np.diff([*times, scene.duration])) <= 1.0 + 1e-6
    head = (tmp_path / "footage.mp4").read_bytes()[:64]
    assert (
        b"moov" in (tmp_path / "footage.mp4").read_bytes()[:4096] or b"ftyp" in head
    )  # faststart: moov up front


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_renders(tmp_path: Path, preset: str) -> None:
    scene = simulate(tmp_path, seed=7, preset=preset, shoppers=2, duration=10, width=320, height=180)
    assert probe(tmp_path / "footage.mp4").frame_count == scene.frame_count
    for name in ("planogram.json", "visits.json", "truth.json", "preview.png"):
        assert (tmp_path / name).is_file()


@pytest.mark.slow
def test_a_pick_shows_in_the_footage_as_one_facing_less(tmp_path: Path) -> None:
    scene = simulate(tmp_path, seed=4, preset="easy", shoppers=1, duration=12, width=640, height=360)
    pick = next(i for s in scene.plan.shoppers for i in s.interactions if i.kind == "pick")
    x, y, w, h = pick.region
    frames = list(iter_frames(tmp_path / "footage.mp4"))
    before = frames[int((pick.t_start - 0.2) * scene.fps)][y : y + h, x : x + w].astype(np.float32)
    after = frames[int((pick.t_end + 0.2) * scene.fps)][y : y + h, x : x + w].astype(np.float32)
    assert float(np.abs(before - after).mean()) > 20

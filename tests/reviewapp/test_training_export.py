"""Human decisions become training examples that read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from reviewapp.models import Decision, Footage, Transaction
from reviewapp.services import clips, pipeline
from reviewapp.services.audit import Actor
from reviewapp.services.ingest import scene_ingest
from reviewapp.services.review import FinalLine, claim_next_task, decision_submit
from reviewapp.services.training import training_read
from reviewapp.tokens import token_hash

pytestmark = pytest.mark.slow


def decide_from_truth(scene_dir: Path, store, reviewer) -> int:
    """A stand-in for reviewers: answer every task with the true cart."""
    truth = json.loads((scene_dir / "truth.json").read_text())["carts"]
    by_hash = {token_hash(token): cart for token, cart in truth.items()}
    decided = 0
    while (task := claim_next_task(reviewer=reviewer)) is not None:
        cart = by_hash[task.transaction.visit.token_hash]
        decision_submit(
            task=task,
            reviewer=reviewer,
            outcome="approved",
            lines=[FinalLine(sku, qty, "other") for sku, qty in cart.items() if qty > 0],
        )
        decided += 1
    return decided


def test_scripted_decisions_round_trip_through_the_training_export(
    db, small_scene, reviewer, tmp_path, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        result = scene_ingest(
            scene_dir=small_scene, store_name="Sim", actor=Actor(label="test"), process=False
        )
        store = result.store
        store.review_threshold = 1.0  # every cart to a human: all become labels
        store.second_opinion_percent = 0
        store.save()
        Footage.objects.filter(pk=result.footage.pk).update(status="queued")
        pipeline.footage_track(footage_id=result.footage.pk)
        for txn in Transaction.objects.filter(store=store, state="needs_review"):
            clips.review_prepare(txn_id=txn.pk)
        assert decide_from_truth(small_scene, store, reviewer) == len(result.visits)
    out = tmp_path / "train"
    call_command("export_training_data", "--out", str(out), "--store", "Sim")
    examples = training_read(out / "manifest.jsonl")
    schema = json.loads((out / "schema.json").read_text())
    assert examples and set(examples[0]) == set(schema["fields"])
    for example in examples:
        decision = Decision.objects.get(transaction__code=example["transaction"])
        final = {line["sku"]: line["qty"] for line in decision.lines}
        proposed = {
            p.product.sku: p.qty for p in decision.transaction.proposed_lines.select_related("product")
        }
        sku = example["tracker"]["sku"]
        assert example["human"]["sku_final_qty"] == final.get(sku, 0)
        assert example["agreed"] == (final.get(sku, 0) == proposed.get(sku, 0))
        for key in ("before_image", "after_image"):
            if example[key]:
                assert (out / example[key]).stat().st_size > 0
        assert example["redacted"] is True
        assert "pm_" not in json.dumps(example)

"""`manage.py generate_history`: a realistic, consistent history, written in bulk."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.db.models import Count

from reviewapp.models import AuditEvent, Charge, Decision, ProposedLine, ReviewTask, Transaction, Visit
from reviewapp.selectors import decisions_filtered, transactions_filtered
from reviewapp.services.audit import audit_verify_chain
from reviewapp.tokens import token_hash


def generate(*args: str) -> str:
    out = io.StringIO()
    call_command("generate_history", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_fills_every_table_consistently(db) -> None:
    output = generate("--transactions", "300", "--days", "5", "--stores", "2", "--reviewers", "4", "--batch", "120",
                      "--audit", "decisions")  # fmt: skip
    assert Transaction.objects.count() == Visit.objects.count() == 300
    assert ProposedLine.objects.count() >= 300
    primary = Decision.objects.filter(task__kind="primary")
    assert primary.count() == 300  # every generated transaction was reviewed once
    escalated = primary.filter(outcome="escalated").count()
    assert Decision.objects.filter(by_supervisor=True).count() == escalated
    outcomes = dict(primary.values_list("outcome").annotate(n=Count("id")))
    assert outcomes["approved"] > 240 and outcomes.get("adjusted", 0) > 5
    assert ReviewTask.objects.count() == Decision.objects.count()
    assert Charge.objects.count() == Transaction.objects.filter(state="settled").count()
    assert Transaction.objects.exclude(state__in=["settled", "voided"]).count() == 0
    assert AuditEvent.objects.count() == Decision.objects.count()
    # adjusted decisions carry their diff; approved ones charge the proposal
    assert all(d.diff for d in Decision.objects.filter(outcome="adjusted", task__kind="primary"))
    for d in Decision.objects.filter(outcome="approved", task__kind="primary").select_related("transaction")[
        :20
    ]:
        assert d.amount == d.transaction.proposed_amount and d.diff == []
    # the printed token finds its shopper's visits, by hash
    token = output.split("search by: ")[1].strip()
    assert transactions_filtered(token_hash=token_hash(token)).exists()
    assert decisions_filtered(token_hash=token_hash(token)).exists()


def test_a_second_run_appends_and_the_full_audit_seals_into_one_chain(db) -> None:
    generate("--transactions", "20", "--audit", "full", "--events")
    output = generate("--transactions", "20", "--audit", "full", "--seed", "2", "--seal")
    assert Transaction.objects.count() == 40
    assert "sealed" in output
    report = audit_verify_chain()
    assert report.ok and report.unsealed == 0 and report.checked == AuditEvent.objects.count() > 40 * 5
    # the ids continue: the ORM can still insert after the generator
    Visit.objects.create(store_id=Visit.objects.first().store_id, external_id="after", token_hash="x",
                         token_last4="x", entered_at=Visit.objects.first().entered_at)  # fmt: skip

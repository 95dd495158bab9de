from django.urls import path

from .views import api, auditor, reviewer, supervisor

reviewer_patterns = ([path("", reviewer.start, name="start")], "reviewer")
supervisor_patterns = ([path("", supervisor.dashboard, name="dashboard")], "supervisor")
auditor_patterns = ([path("", auditor.search, name="search")], "auditor")

api_patterns = (
    [
        path("visits", api.visits, name="visits"),
        path("footage", api.footage_upload, name="footage"),
        path("footage/<uuid:code>", api.footage_detail, name="footage-detail"),
        path("carts", api.carts, name="carts"),
        path("transactions/<uuid:code>", api.transaction_detail, name="transaction-detail"),
    ],
    "api",
)

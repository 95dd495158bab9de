from django.urls import path

from .views import api, auditor, media, reviewer, supervisor

reviewer_patterns = (
    [
        path("", reviewer.start, name="start"),
        path("next", reviewer.next_task, name="next"),
        path("t/<uuid:code>/", reviewer.task_page, name="task"),
        path("t/<uuid:code>/decide", reviewer.decide, name="decide"),
        path("d/<uuid:code>/undo", reviewer.undo, name="undo"),
        path("t/<uuid:code>/skip", reviewer.skip, name="skip"),
        path("t/<uuid:code>/renew", reviewer.renew, name="renew"),
        path("t/<uuid:code>/leave", reviewer.leave, name="leave"),
    ],
    "reviewer",
)
media_patterns = (
    [
        path("clip/<uuid:code>", media.clip, name="clip"),
        path("clip/<uuid:code>/poster", media.poster, name="clip-poster"),
        path("event/<uuid:code>/<str:which>", media.crop, name="crop"),
        path("product/<uuid:code>/image", media.product_image, name="product-image"),
    ],
    "media",
)
supervisor_patterns = (
    [
        path("", supervisor.dashboard, name="dashboard"),
        path("tasks/<uuid:code>/take", supervisor.take_task, name="take-task"),
        path("tasks/<uuid:code>/reassign", supervisor.reassign_task, name="reassign-task"),
        path("charges/<uuid:code>/retry", supervisor.retry_charge, name="retry-charge"),
        path("stores/<uuid:code>/policy", supervisor.store_policy, name="store-policy"),
        path("stores/<uuid:code>/calibration", supervisor.calibration, name="calibration"),
        path("transactions/<uuid:code>/gold", supervisor.mark_gold, name="mark-gold"),
        path("transactions/<uuid:code>/hold", supervisor.legal_hold, name="legal-hold"),
    ],
    "supervisor",
)
auditor_patterns = (
    [
        path("", auditor.search, name="search"),
        path("transactions/<uuid:code>", auditor.transaction_history, name="history"),
        path("export.csv", auditor.export, {"fmt": "csv"}, name="export-csv"),
        path("export.jsonl", auditor.export, {"fmt": "jsonl"}, name="export-jsonl"),
        path("verify", auditor.verify, name="verify"),
    ],
    "auditor",
)

api_patterns = (
    [
        path("visits", api.visits, name="visits"),
        path("footage", api.footage_upload, name="footage"),
        path("footage/<uuid:code>", api.footage_detail, name="footage-detail"),
        path("carts", api.carts, name="carts"),
        path("disputes", api.disputes, name="disputes"),
        path("transactions/<uuid:code>", api.transaction_detail, name="transaction-detail"),
    ],
    "api",
)

from django.urls import path

from .views import auditor, reviewer, supervisor

reviewer_patterns = ([path("", reviewer.start, name="start")], "reviewer")
supervisor_patterns = ([path("", supervisor.dashboard, name="dashboard")], "supervisor")
auditor_patterns = ([path("", auditor.search, name="search")], "auditor")

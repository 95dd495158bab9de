"""Who may do what. Every view asks here; nothing else decides access.

Roles are Django groups (created by a migration): reviewer, supervisor, auditor.
Object checks answer 404 for what a user may not even know exists (another
reviewer's task) and 403 for what they may see but not do (an auditor posting).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

REVIEWER = "reviewer"
SUPERVISOR = "supervisor"
AUDITOR = "auditor"
ROLES = (REVIEWER, SUPERVISOR, AUDITOR)


def roles_of(user: Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._role_cache = cached
    return cached


def is_reviewer(user: Any) -> bool:
    return REVIEWER in roles_of(user)


def is_supervisor(user: Any) -> bool:
    return SUPERVISOR in roles_of(user)


def is_auditor(user: Any) -> bool:
    return AUDITOR in roles_of(user)


def home_url_name(user: Any) -> str | None:
    """Where a user starts their day. Supervisors first: they may also review."""
    if is_supervisor(user):
        return "supervisor:dashboard"
    if is_auditor(user):
        return "auditor:search"
    if is_reviewer(user):
        return "reviewer:start"
    if getattr(user, "is_staff", False):
        return "admin:index"
    return None


def role_required(
    *roles: str, read_only: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Login plus one of `roles`. With read_only, any method but GET/HEAD is refused (auditors)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not roles_of(request.user) & set(roles):
                raise PermissionDenied("your role does not include this page")
            if read_only and request.method not in ("GET", "HEAD"):
                raise PermissionDenied("this page is read-only for your role")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def access_task_for_reviewer(user: Any, task_code: Any) -> Any:
    """The review task with this code if `user` holds it; otherwise 404 (no hint that it exists)."""
    from .models import ReviewTask

    if not is_code(str(task_code)):  # a malformed code (a page's stale or edited field) matches nothing
        raise Http404("no such task")
    try:
        task = ReviewTask.objects.select_related("transaction", "transaction__store").get(code=task_code)
    except ReviewTask.DoesNotExist:
        raise Http404("no such task")
    if task.assignee_id != user.pk and not is_supervisor(user):
        raise Http404("no such task")
    return task


def is_code(value: str) -> bool:
    """Whether `value` can be a URL code (a UUID); a malformed one matches nothing."""
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def roles_context(request: HttpRequest) -> dict[str, Any]:
    roles = roles_of(request.user)
    return {
        "user_roles": roles,
        "is_reviewer": REVIEWER in roles,
        "is_supervisor": SUPERVISOR in roles,
        "is_auditor": AUDITOR in roles,
    }

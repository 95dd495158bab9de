"""Pages are never served from the browser's cache.

A review task, a queue or a dashboard shows state that moves: a task page brought back by the
browser's Back button from its cache showed a decided task with its original cart and a live
Approve button. Every HTML page is therefore marked no-store, so Back asks the server again.
Media and exports set their own caching and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class NoStorePagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and not response.has_header(
            "Cache-Control"
        ):
            add_never_cache_headers(response)
        return response

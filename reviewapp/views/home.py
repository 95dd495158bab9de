from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ..access import home_url_name


@login_required
def home(request: HttpRequest) -> HttpResponse:
    target = home_url_name(request.user)
    if target is None:
        return render(request, "reviewapp/no_role.html", status=403)
    return redirect(target)

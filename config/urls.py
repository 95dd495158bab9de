from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from reviewapp.urls import (
    api_patterns,
    auditor_patterns,
    media_patterns,
    reviewer_patterns,
    supervisor_patterns,
)
from reviewapp.views.home import home

urlpatterns = [
    path("", home, name="home"),
    # browsers ask for /favicon.ico where a page names no icon (a clip opened on its own)
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include(reviewer_patterns)),
    path("supervise/", include(supervisor_patterns)),
    path("audit/", include(auditor_patterns)),
    path("api/v1/", include(api_patterns)),
    path("m/", include(media_patterns)),
    path("admin/", admin.site.urls),
]

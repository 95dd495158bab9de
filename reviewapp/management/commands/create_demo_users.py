from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

DEMO_USERS = [
    ("reviewer", ["reviewer"]),
    ("reviewer2", ["reviewer"]),
    ("supervisor", ["supervisor", "reviewer"]),
    ("auditor", ["auditor"]),
    ("admin", []),
]


class Command(BaseCommand):
    help = "Create one demo user per role (DEBUG only) and print their logins."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo users are for DEBUG (demo) installs only")
        User = get_user_model()
        for username, roles in DEMO_USERS:
            password = f"{username}-demo"
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = username == "admin"
            user.is_superuser = username == "admin"
            user.save()
            user.groups.set(Group.objects.filter(name__in=roles))
            self.stdout.write(
                f"  {username:<11} password {password:<16} {', '.join(roles) or 'staff (admin site)'}"
            )

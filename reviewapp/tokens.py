"""Payment tokens are never stored: only a keyed hash (to find a shopper's visits) and the last four."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def token_hash(token: str) -> str:
    return hmac.new(settings.TOKEN_HASH_KEY.encode(), token.strip().encode(), hashlib.sha256).hexdigest()


def token_last4(token: str) -> str:
    return token.strip()[-4:]

"""Celery's filesystem broker (the single-machine default), with each message written whole
before any worker can see it.

kombu's own filesystem transport creates a message's file under its final name and only then
writes it. A worker that lists the folder in between takes the empty file, fails to decode it,
and dies (`Unrecoverable error: JSONDecodeError`), and the message is lost with it: the demo's
worker did so after a few minutes, with beat writing a message every 5 s. Here a message is
written under a name no reader takes (it starts with a dot) and renamed into place: a rename
within a folder is atomic, so a reader sees the whole message or none of it.

Importing this module makes it the transport of every `filesystem://` broker URL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put `payload` on `queue`: written whole, then renamed to the name readers look for."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "<anything>.<queue>.msg"
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"

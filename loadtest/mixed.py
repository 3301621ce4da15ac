"""Locust: upload users and users that stream events, in one run.

    locust -f loadtest/mixed.py --headless -u 10 -t 60s --stream-users 2

`--stream-users` of the `-u` users stream events (loadtest/stream.py); the rest upload files
(loadtest/upload.py).
"""

from loadtest.stream import StreamUser
from loadtest.upload import UploadUser

__all__ = ["StreamUser", "UploadUser"]

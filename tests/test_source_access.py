"""How a source that cannot be read is reported: the error kind a driver's message is filed under."""

from __future__ import annotations

import pytest

from dashboard.sources.access import classify


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        # a refused connection on a port that happens to contain 401 / 403 is still a connection problem
        (
            'connection to server at "127.0.0.1", port 40123 failed: Connection refused '
            "Is the server running on that host and accepting TCP/IP connections?",
            "connection",
        ),
        ("Can't connect to MySQL server on '127.0.0.1:34031' ([Errno 111] Connection refused)", "connection"),
        ('FATAL: password authentication failed for user "cockpit"', "auth"),
        ("(1045, \"Access denied for user 'cockpit'@'localhost' (using password: YES)\")", "auth"),
        ("HTTP 401 Unauthorized from https://crm.example.com/api/leads", "auth"),
        ("HTTP 403 from https://crm.example.com/api/leads?page=2", "auth"),
        ("canceling statement due to statement timeout", "timeout"),
        ("timed out reading https://crm.example.com/api/leads", "timeout"),
    ],
)
def test_the_error_kind_comes_from_the_message_not_from_numbers_inside_it(message: str, kind: str) -> None:
    assert classify(message) == kind

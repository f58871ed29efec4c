"""Ids handed to users never look like command-line options."""

from __future__ import annotations

import pytest

from rpcchat.domain import ids


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["-starts-with-a-dash", "Abc-def_123"])
    monkeypatch.setattr(ids.secrets, "token_urlsafe", lambda nbytes: next(draws))
    assert ids.opaque_id(12) == "Abc-def_123"


def test_ids_are_url_safe_and_long_enough() -> None:
    drawn = {ids.opaque_id(16) for _ in range(2000)}
    assert len(drawn) == 2000
    for value in drawn:
        assert not value.startswith("-")
        assert len(value) >= 21 and all(c.isalnum() or c in "-_" for c in value)

"""Token files: the generated admin token (mode 0600, reused), configured tokens, and
refusals that say which file is wrong."""

import logging
import stat
from pathlib import Path

import pytest

from isns_server.api.auth import GENERATED_TOKEN_FILE, Principal, TokenError, load_tokens
from isns_server.config.schema import ApiSection, ApiToken


def test_first_start_writes_one_admin_token_and_later_starts_reuse_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tokens = load_tokens(ApiSection(), tmp_path)
    path = tmp_path / GENERATED_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in caplog.text
    token = path.read_text().strip()
    assert len(token) >= 32
    assert tokens.find(token) == Principal("admin", "admin")
    assert tokens.find(token + "x") is None and tokens.find("") is None
    assert load_tokens(ApiSection(), tmp_path).find(token) == Principal("admin", "admin")


def test_configured_tokens_have_their_roles(tmp_path: Path) -> None:
    (tmp_path / "ops").write_text("ops-secret-0123456789\n")
    (tmp_path / "ro").write_text("ro-secret-0123456789")
    settings = ApiSection(
        tokens=(
            ApiToken("ops", "admin", tmp_path / "ops"),
            ApiToken("grafana", "read", tmp_path / "ro"),
        )
    )
    tokens = load_tokens(settings, tmp_path)
    assert tokens.find("ops-secret-0123456789") == Principal("ops", "admin")
    assert tokens.find("ro-secret-0123456789") == Principal("grafana", "read")
    assert not (tmp_path / GENERATED_TOKEN_FILE).exists()


def test_missing_or_short_token_files_are_refused_by_name(tmp_path: Path) -> None:
    missing = ApiSection(tokens=(ApiToken("ops", "admin", tmp_path / "none"),))
    with pytest.raises(TokenError, match=r"api.tokens\[0\] \(ops\).*none"):
        load_tokens(missing, tmp_path)
    (tmp_path / "short").write_text("abc")
    short = ApiSection(tokens=(ApiToken("ops", "admin", tmp_path / "short"),))
    with pytest.raises(TokenError, match="at least 16"):
        load_tokens(short, tmp_path)

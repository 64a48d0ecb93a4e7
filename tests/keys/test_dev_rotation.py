"""Rotating a key in development, exactly as docs/operations.md tells a newcomer to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.config import Settings
from app.main import create_app
from tests.consent.helpers import jp, register

ROOT = Path(__file__).resolve().parents[2]
SMSREG = [sys.executable, "-c", "from app.cli import main; main()"]


def documented_snippet() -> str:
    """The shell lines of the development rotation in docs/operations.md."""
    text = (ROOT / "docs/operations.md").read_text()
    section = text[text.index("**In development** the rings come from") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMSREG_")}
    return subprocess.run(
        [*SMSREG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
async def test_the_documented_development_rotation_moves_every_number_to_the_new_key(tmp_path):
    # A newcomer's checkout: the embedded database and the generated keys in .smsreg/,
    # which `make serve` made (any other command refuses to make one).
    (tmp_path / ".smsreg").mkdir()
    assert run(["migrate"], tmp_path).returncode == 0
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path / ".smsreg",
        database_url=f"sqlite:///{tmp_path}/.smsreg/smsreg.db",
        console_print=False,
    ).with_dev_secrets()
    assert settings.phone_key_id == "dev1"
    app = create_app(settings)
    subscriber_id = await register(app, jp(5))
    await app.state.db.dispose()

    lines = documented_snippet().replace(".venv/bin/python", sys.executable)
    prepare, _, rest = lines.partition("# restart make serve, then:\n")
    made = subprocess.run(
        ["/bin/bash", "-c", prepare], cwd=tmp_path, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    commands = [line.split("#")[0].split()[1:] for line in rest.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [
        ["keys", "rotate"],
        ["credentials", "rotate"],  # staff TOTP secrets are under the phone key too
        ["keys", "status"],
    ]
    for command in commands[:2]:
        rotated = run(command, tmp_path)
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    status = run(commands[2], tmp_path)
    assert "can be removed from the ring: dev1" in status.stdout, status.stdout

    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        key_id = conn.execute(
            sa.text("SELECT phone_key_id FROM subscribers WHERE id = :id"), {"id": subscriber_id}
        ).scalar_one()
    engine.dispose()
    assert key_id == "dev2"

"""The README's policy example is the real default policy, so the documentation cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from triage.policy import Policy, load_policy

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_policy_block_is_the_default_policy(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README lost its policy example"
    path = tmp_path / "policy.toml"
    path.write_text(blocks[0])
    assert load_policy(path) == Policy()

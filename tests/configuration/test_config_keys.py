"""How an error line about the configuration shows a value (daemon/configuration/
config_keys.py): secrets masked, a long value cut."""

from __future__ import annotations

from pathlib import Path

from helpers import config_file, one_problem_with, problems_of


def test_a_long_list_where_text_belongs_is_shown_cut_with_its_count_and_each_item_masked(
        tmp_path: Path) -> None:
    """url = [200 urls with a password each] (a list where one url belongs): the error line
    shows the first few items, each with its password masked, then how many there are —
    not a line of 12 000 characters, nor a password in the log."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    items = ", ".join(f'"https://u:pw{i}@operator.example/api/bundles/{i}"' for i in range(200))
    text = f'[outbox]\npath = "{outbox}"\n\n[delivery]\nurl = [{items}]\n'
    line = one_problem_with(problems_of(config_file(tmp_path, text)), "[delivery] url = [")
    assert "'https://********@operator.example/api/bundles/0'" in line
    assert ", … (200 items)]: must be text in quotes" in line
    assert "pw" not in line and "bundles/199" not in line
    assert len(line) < 400

"""requirements.lock is generated from requirements.txt (nertools/lock.py) and must stay in step with it."""

from __future__ import annotations

import re

import pytest

from nertools.lock import Pin, pins_from_report, render, split_requirements
from tests.support.paths import ROOT


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    return {normalized(m[0]): m[1] for m in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.MULTILINE)}


def test_every_pin_of_requirements_txt_is_locked_at_its_version():
    with_deps, no_deps = split_requirements((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    locked = locked_versions()
    for requirement in with_deps + no_deps:
        name, version = requirement.split("==")
        # A local version label (torch 2.13.0+cpu) satisfies the pin 2.13.0, as pip reads it.
        assert locked.get(normalized(name), "").split("+")[0] == version, f"{requirement} is not in requirements.lock"


def test_every_locked_package_has_a_sha256():
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3].strip())
    assert len(entries) == len(locked_versions()) > 50
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", entry) for entry in entries)


def test_the_weights_wheel_is_locked_without_its_dependencies():
    with_deps, no_deps = split_requirements("a==1\nb==2  # lock: no-deps\n# c==3\n\n")
    assert (with_deps, no_deps) == (["a==1"], ["b==2"])
    assert "sentence-transformers" not in locked_versions()


def test_a_pip_report_becomes_pins_with_hashes_and_a_missing_hash_is_an_error():
    item = {
        "metadata": {"name": "Foo_Bar", "version": "1.2"},
        "download_info": {"url": "file:///x.whl", "archive_info": {"hash": "sha256=" + "a" * 64}},
    }
    assert pins_from_report({"install": [item]}) == [Pin("Foo_Bar", "1.2", ("sha256:" + "a" * 64,))]
    item["download_info"]["archive_info"] = {}
    with pytest.raises(ValueError, match="Foo_Bar"):
        pins_from_report({"install": [item]})


def test_render_sorts_by_normalized_name_and_keeps_one_entry_per_package():
    pins = [Pin("b", "1", ("sha256:1",)), Pin("A", "2", ("sha256:2",)), Pin("b", "1", ("sha256:1",))]
    text = render(pins, "linux-x86_64", "3.11")
    assert text.index("A==2") < text.index("b==1")
    assert text.count("b==1") == 1

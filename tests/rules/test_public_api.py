"""The public surface of `rules` is one `__all__`: a name exported by accident fails here."""

from __future__ import annotations

import rules


def test_public_names() -> None:
    assert rules.__all__ == [
        "Matcher",
        "QuerySyntaxError",
        "RuleSet",
        "compile_rules",
        "load_rules",
        "parse_query",
        "reference_match",
        "rule_file_schema",
    ]
    public = {name for name in vars(rules) if not name.startswith("_")}
    # Submodules appear as attributes once imported; they are not exports.
    modules = {name for name in public if type(getattr(rules, name)).__name__ == "module"}
    assert public - modules == set(rules.__all__)
    for name in rules.__all__:
        assert getattr(rules, name).__module__.startswith("rules.")

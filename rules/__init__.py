"""Rules: the YAML rule format and query strings (`load_rules`, `parse_query`), and the matchers
that run them (`compile_rules` -> `Matcher`, and the plain `reference_match` that checks them).

The rule tree itself is in `rules.ast`; every other module is private."""

from rules.loader import RuleSet, load_rules, rule_file_schema
from rules.matcher import Matcher, compile_rules
from rules.query import QuerySyntaxError, parse_query
from rules.reference import reference_match

__all__ = [
    "Matcher",
    "QuerySyntaxError",
    "RuleSet",
    "compile_rules",
    "load_rules",
    "parse_query",
    "reference_match",
    "rule_file_schema",
]

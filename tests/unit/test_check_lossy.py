"""`check`: `{truncate: N}` cuts text without a word, so its field needs `lossy: allow` like a silently lossy
cast (mapping/check/lossy.py); a source column that is never longer than N needs nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_mapping_check import CRM, ERP, INT, PK, C, Env, dec, one_field, vc


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_a_truncate_without_lossy_allow_is_refused_naming_file_line_and_key(env: Env) -> None:
    (msg,) = env.failures(one_field("{transform: [trim, {truncate: 40}]}"), {"id": PK, "v": vc(200)},
                          {"id": PK, "v": vc(40)})
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v.transform[1]: {truncate: 40} cuts "
                          "crm:public.customer.v VARCHAR(200) to 40 characters without a word (crm_to_erp)"), msg
    assert "fix: add `lossy: allow` to the field if the cut is wanted" in msg


def test_lossy_allow_accepts_it_with_an_ok_finding(env: Env) -> None:
    text = one_field("{transform: [{truncate: 40}], lossy: allow}")
    assert env.failures(text, {"id": PK, "v": vc(200)}, {"id": PK, "v": vc(40)}) == []
    oks = env.oks(text, {"id": PK, "v": vc(200)}, {"id": PK, "v": vc(40)})
    assert any("{truncate: 40} cuts" in o and "allowed by lossy: allow" in o for o in oks), oks


def test_a_per_direction_transform_names_its_direction(env: Env) -> None:
    text = one_field("{transform: {crm_to_erp: [{truncate: 5}]}}", direction="both")
    (msg,) = env.failures(text, {"id": PK, "v": vc(10)}, {"id": PK, "v": vc(5)})
    assert "mappings.customers.fields.v.transform.crm_to_erp[0]: {truncate: 5}" in msg and "(crm_to_erp)" in msg


@pytest.mark.parametrize("spec, cut", [
    ("{transform: [{truncate: 40}]}", False),  # varchar(30): never longer than 40
    ("{transform: [trim, upper, {truncate: 30}]}", False),  # nothing before it lengthens the value
    ("{transform: [{concat: {fields: [v, v]}}, {truncate: 40}]}", True),  # 60 characters may arrive
    ("{transform: [{truncate: 20}]}", True),
])
def test_a_source_never_longer_than_n_is_never_cut(env: Env, spec: str, cut: bool) -> None:
    failures = env.failures(one_field(spec), {"id": PK, "v": vc(30)}, {"id": PK, "v": vc(100)})
    assert (len(failures) == 1 and "cuts" in failures[0]) if cut else failures == [], failures


# `{round: N}` drops decimal places as silently as a cast into a smaller scale
def test_a_round_without_lossy_allow_is_refused(env: Env) -> None:
    (msg,) = env.failures(one_field("{transform: [{round: 2}]}"), {"id": PK, "v": dec(14, 4)},
                          {"id": PK, "v": dec(14, 4)})
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v.transform[0]: {round: 2} rounds "
                          "crm:public.customer.v NUMERIC(14,4) to 2 decimal places without a word (crm_to_erp)"), msg
    assert "fix: add `lossy: allow` to the field if the cut is wanted" in msg


def test_a_round_with_lossy_allow_is_an_ok_finding(env: Env) -> None:
    text = one_field("{transform: [{round: 2}], lossy: allow}")
    assert env.failures(text, {"id": PK, "v": C("float", bits=64)}, {"id": PK, "v": dec(12, 2)}) == []
    assert any("{round: 2} rounds" in o for o in env.oks(text, {"id": PK, "v": C("float", bits=64)},
                                                          {"id": PK, "v": dec(12, 2)}))


@pytest.mark.parametrize("src, cut", [
    (dec(10, 2), False),  # two places already: nothing to round
    (dec(10, 0), False),
    (INT, False),
    (dec(10, 3), True),
    (dec(None, None), True),  # an unbounded numeric may hold any number of places
    (C("float", bits=64), True),
])
def test_a_source_with_at_most_n_places_is_never_rounded(env: Env, src: object, cut: bool) -> None:
    failures = env.failures(one_field("{transform: [{round: 2}]}"), {"id": PK, "v": src},
                            {"id": PK, "v": dec(20, 6)})
    assert (len(failures) == 1 and "rounds" in failures[0]) if cut else failures == [], failures


# the applier's rounding allowance (MariaDB's Note 1265 on a column) and check's come from one accessor
def test_the_applier_allows_rounding_in_exactly_the_columns_check_allows(env: Env) -> None:
    text = one_field("{lossy: allow}", direction="both", extra="", name="v").replace(
        "      id: ~\n", "      id: ~\n      w: ~\n      x: {erp: ~, lossy: allow}\n")
    mset = env.load(text)
    assert mset.lossy_columns("erp") == {(ERP, "v")}  # not w; x is never written into erp
    assert mset.lossy_columns("crm") == {(CRM, "v")}  # x has no crm column: not written into crm either
    cols = {"id": PK, "v": dec(14, 4), "w": dec(14, 4), "x": dec(14, 4)}
    narrow = {"id": PK, "v": dec(12, 2), "w": dec(12, 2), "x": dec(12, 2)}
    oks = env.oks(text, cols, narrow)
    assert [o for o in oks if "allowed by lossy: allow" in o and "crm_to_erp" in o and ".v " in o], oks
    (refused,) = env.failures(text, cols, narrow)
    assert "fields.w" in refused and "lossy cast" in refused, refused
    assert env.load(one_field("~", direction="both")).lossy_columns("erp") == set()


def test_a_lossy_fold_allows_rounding_in_its_columns(env: Env) -> None:
    from tests.unit.test_folds import ADDRESS, CUSTOMERS, MAPS
    mset = env.load(MAPS.replace("value: value, into: email}", "value: value, into: email, lossy: allow}"))
    assert mset.lossy_columns("erp") == {(CUSTOMERS, "email"), (CUSTOMERS, "value")}
    assert mset.lossy_columns("crm") == {(ADDRESS, "email"), (ADDRESS, "value")}
    assert env.load(MAPS).lossy_columns("erp") == set()  # the other fold (contact_company) says nothing


# `{split: ...}` keeps one part of a text: lossless only with `parts:` and a field for every part
def _names(first: str, last: str | None) -> str:
    text = one_field("{crm: v, erp: first, transform: [{split: " + first + "}]}", name="first")
    if last is not None:
        text += "      last: {crm: v, transform: [{split: " + last + "}]}\n"
    return text


_SRC = {"id": PK, "v": vc(200)}
_DST = {"id": PK, "first": vc(200), "last": vc(200)}


def test_a_split_without_parts_is_refused_naming_file_line_key_and_what_is_lost(env: Env) -> None:
    failures = env.failures(_names("{sep: ' ', index: 0}", "{sep: ' ', index: -1}"), _SRC, _DST)
    assert len(failures) == 2, failures
    first = next(f for f in failures if "fields.first" in f)
    assert first.startswith("erp: m.yaml:8: mappings.customers.fields.first.transform[0]: {split: {sep: ' ', "
                            "index: 0}} of crm:public.customer.v keeps one part and drops the others: 'a b c' "
                            "gives 'a', 'b' and 'c' lost (crm_to_erp)"), first
    assert "fix: add `parts: N`" in first and "`lossy: allow`" in first


def test_a_split_whose_parts_all_have_a_field_is_lossless(env: Env) -> None:
    for last in ("{sep: ' ', index: 1, parts: 2}", "{sep: ' ', index: -1, parts: 2}"):
        assert env.failures(_names("{sep: ' ', index: 0, parts: 2}", last), _SRC, _DST) == [], last


@pytest.mark.parametrize("first, last, missing", [
    ("{sep: ' ', index: 0, parts: 2}", None, "part(s) 1 of 2: 'a b' loses 'b'"),
    ("{sep: ' ', index: 0, parts: 3}", "{sep: ' ', index: -1, parts: 3}", "part(s) 1 of 3: 'a b c' loses 'b'"),
    ("{sep: ' ', index: 0, parts: 2}", "{sep: ',', index: 1, parts: 2}", "part(s) 1 of 2"),  # another sep
    ("{sep: ' ', index: 0, parts: 2}", "{sep: ' ', index: 1, parts: 3}", "part(s) 1 of 2"),  # other parts
])
def test_a_split_with_a_part_no_field_takes_is_refused(env: Env, first: str, last: str | None, missing: str) -> None:
    failures = env.failures(_names(first, last), _SRC, _DST)
    assert any("fields.first.transform[0]" in f and missing in f and "fix: map part(s)" in f for f in failures), \
        failures


def test_a_lossy_split_with_lossy_allow_is_an_ok_finding(env: Env) -> None:
    text = _names("{sep: ' ', index: 0}", None).replace("transform: [{split: {sep: ' ', index: 0}}]}",
                                                        "transform: [{split: {sep: ' ', index: 0}}], lossy: allow}")
    assert env.failures(text, _SRC, _DST) == []
    assert any("keeps one part" in o and "allowed by lossy: allow" in o for o in env.oks(text, _SRC, _DST))

"""yamlfile: safe loading with file/line/key in every error, and typed Section access."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.errors import ConfigError, Where
from replicator.yamlfile import Section, YamlList, YamlMap, load_file, load_text

F = "conf.yaml"


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(text, F)
    return info.value


# ---------------------------------------------------------------- loading


def test_maps_and_lists_remember_file_and_lines() -> None:
    data = load_text("top: 1\nnested:\n  a: x\n  b:\n    - one\n    - two\n", F)
    assert isinstance(data, YamlMap)
    assert data == {"top": 1, "nested": {"a": "x", "b": ["one", "two"]}}
    assert data.file == F
    assert data.line == 1
    assert data.key_lines == {"top": 1, "nested": 2}
    nested = data["nested"]
    assert isinstance(nested, YamlMap)
    assert nested.key_lines == {"a": 3, "b": 4}
    items = nested["b"]
    assert isinstance(items, YamlList)
    assert items.file == F
    assert items.item_lines == [5, 6]


def test_where_builds_dotted_key_paths() -> None:
    data = load_text("a:\n  b: 1\nlist:\n  - x\n  - y\n", F)
    assert data.where("", "a") == Where(F, 1, "a")
    assert data["a"].where("a", "b") == Where(F, 2, "a.b")
    assert data["a"].where("a") == Where(F, 2, "a")
    assert data.where("") == Where(F, 1, "<top>")
    assert data["list"].where("list", 1) == Where(F, 5, "list[1]")
    assert data["list"].where("list") == Where(F, 4, "list")
    assert str(Where(F, 5, "list[1]")) == "conf.yaml:5: list[1]"
    assert str(Where(F, None, "k")) == "conf.yaml: k"


def test_duplicate_key_is_refused_with_both_lines() -> None:
    err = error_of("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n")
    # the whole key path, as every other error names it (was just `c`: which `c`, in a 300-line file?)
    assert str(err) == "conf.yaml:5: b.c: duplicate key 'c' (first on line 3)"
    assert err.where == Where(F, 5, "b.c")


def test_duplicate_top_level_key_is_refused() -> None:
    assert str(error_of("port: 1\nport: 2\n")) == "conf.yaml:2: port: duplicate key 'port' (first on line 1)"


def test_keys_that_differ_only_in_yaml_type_are_duplicates() -> None:
    # 1 and '1' both become the text key "1": silently keeping one would hide a mistake
    assert str(error_of("1: a\n'1': b\n")) == "conf.yaml:2: 1: duplicate key '1' (first on line 1)"


def test_merge_key_may_be_overridden_by_an_explicit_key() -> None:
    """YAML merge keys exist to share settings and override some: that is not a duplicate.

    BUG: flatten_mapping puts the merged pairs first, and construct_mapping then treats the
    explicit override as a duplicate key.
    """
    data = load_text("base: &b {kind: postgresql, port: 5432}\nother:\n  <<: *b\n  port: 5433\n", F)
    assert data["other"] == {"kind": "postgresql", "port": 5433}


def test_merge_key_without_override_works() -> None:
    data = load_text("base: &b {kind: postgresql, port: 5432}\nother:\n  <<: *b\n  host: h\n", F)
    assert data["other"] == {"kind": "postgresql", "port": 5432, "host": "h"}


def test_non_scalar_mapping_keys_are_refused() -> None:
    assert str(error_of("? [a, b]\n: 1\n")) == "conf.yaml:1: ['a', 'b']: mapping keys must be plain scalars"


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",  # H4 of the reliability catalog
        "a: !!python/name:os.system\n",
        "a: !!python/object:collections.OrderedDict {}\n",
        "a: !!python/tuple [1, 2]\n",
        "ok: 1\nbad: !!python/module:os\n",
    ],
)
def test_python_tags_are_refused(text: str) -> None:
    err = error_of(text)
    line = text.count("\n", 0, text.index("!!python")) + 1
    assert str(err) == f"conf.yaml:{line}: <syntax>: YAML error: tags such as !!python/... are not allowed; plain YAML only"


def test_python_tag_does_not_run_anything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError):
        load_text(f"a: !!python/object/apply:os.system ['touch {marker}']\n", F)
    assert not marker.exists()


def test_unknown_local_tag_is_refused() -> None:
    assert "plain YAML only" in str(error_of("a: !custom thing\n"))


def test_syntax_error_names_file_and_line() -> None:
    err = error_of("a: 1\nb: [1, 2\nc: 3\n")
    assert str(err) == "conf.yaml:3: <syntax>: YAML error: expected ',' or ']', but got ':'"
    assert err.where == Where(F, 3, "<syntax>")


def test_tab_indentation_names_the_line() -> None:
    assert str(error_of("a:\n\tb: 1\n")) == (
        "conf.yaml:2: <syntax>: YAML error: found character '\\t' that cannot start any token"
    )


def test_second_document_is_refused() -> None:
    assert str(error_of("a: 1\n---\nb: 2\n")) == "conf.yaml:2: <syntax>: YAML error: but found another document"


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    assert str(error_of("a: &x [*x]\n")) == "conf.yaml:1: <syntax>: YAML error: found unconstructable recursive node"


def test_load_file_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: Zoë\n", encoding="utf-8")
    data = load_file(path)
    assert data == {"name": "Zoë"}
    assert data.file == str(path)


def test_load_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value) == f"cannot read {path}: No such file or directory"


def test_load_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: Zo\xeb\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value) == f"{path} is not UTF-8 text (invalid continuation byte at byte 8)"


def test_syntax_error_in_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: [\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}:2: <syntax>: YAML error: ")


# ---------------------------------------------------------------- Section


def section(text: str, path: str = "") -> Section:
    return Section(load_text(text, F), path, F)


def get_error(text: str, key: str, types: type | tuple[type, ...], **kw: object) -> str:
    s = section(text, "conn")
    with pytest.raises(ConfigError) as info:
        s.get(key, types, **kw)
    return str(info.value)


def test_get_returns_typed_values_and_defaults() -> None:
    s = section("port: 5432\nname: crm\nratio: 2\nflag: false\nnothing: ~\n")
    assert s.get("port", int) == 5432
    assert s.get("name", str) == "crm"
    ratio = s.get("ratio", float)
    assert ratio == 2.0 and type(ratio) is float  # an integer is a fine number
    assert s.get("flag", bool) is False
    assert s.get("nothing", str, "dflt") == "dflt"  # null with a default: the default
    assert s.get("absent", int, 7) == 7
    assert s.get("absent2", str, None) is None


@pytest.mark.parametrize(
    ("value", "types", "message"),
    [
        ("true", int, "expected an integer, got a boolean"),
        ("false", float, "expected a number, got a boolean"),
        ("true", str, "expected text, got a boolean"),  # yes/no/on/off: refused at load (below)
        ("'5432'", int, "expected an integer, got str '5432'"),
        ("54.5", int, "expected an integer, got float 54.5"),
        ("5", str, "expected text, got int 5"),
        ("[1]", str, "expected text, got a list"),
        ("{a: 1}", list, "expected a list, got a mapping"),
        ("~", str, "expected text, got nothing (null)"),
        ("1", bool, "expected true/false, got int 1"),
        ("x", (int, float), "expected an integer or a number, got str 'x'"),
    ],
)
def test_get_type_errors_name_line_and_key(value: str, types: type, message: str) -> None:
    assert get_error(f"other: 1\nkey: {value}\n", "key", types) == f"conf.yaml:2: conn.key: {message}"


def test_get_accepts_boolean_when_bool_is_allowed() -> None:
    assert section("k: true\n").get("k", (bool, int)) is True


def test_get_required_key_missing() -> None:
    assert get_error("a: 1\n", "port", int) == "conf.yaml:1: conn.port: required key is missing"


def test_get_required_key_null_is_a_type_error() -> None:
    assert get_error("a: 1\nport: ~\n", "port", int) == "conf.yaml:2: conn.port: expected an integer, got nothing (null)"


def test_get_choices() -> None:
    s = section("mode: fast\n", "x")
    assert s.get("mode", str, choices=("fast", "slow")) == "fast"
    assert get_error("mode: medium\n", "mode", str, choices=("fast", "slow")) == (
        "conf.yaml:1: conn.mode: 'medium' is not one of fast, slow"
    )


def test_done_refuses_unknown_key_naming_key_and_line() -> None:
    s = section("host: h\nport: 1\nprot: 2\n", "connections.crm")
    s.get("host", str)
    s.get("port", int)
    with pytest.raises(ConfigError) as info:
        s.done()
    assert str(info.value) == "conf.yaml:3: connections.crm.prot: unknown key 'prot' (known: host, port)"
    assert info.value.where == Where(F, 3, "connections.crm.prot")


def test_done_unknown_key_in_untouched_section() -> None:
    s = section("typo: 1\n")
    with pytest.raises(ConfigError) as info:
        s.done()
    assert str(info.value) == "conf.yaml:1: typo: unknown key 'typo'"


def test_done_counts_keys_asked_for_even_when_absent_or_defaulted() -> None:
    s = section("a: 1\n")
    s.get("a", int)
    s.get("b", int, 3)
    s.done()  # nothing unknown


def test_items_marks_every_key_as_known() -> None:
    s = section("x: 1\ny: 2\n")
    assert list(s.items()) == [("x", 1), ("y", 2)]
    s.done()


def test_nested_section_paths_and_missing_section() -> None:
    root = section("outer:\n  inner:\n    k: v\n    bad: 1\n")
    outer = root.section("outer")
    inner = outer.section("inner")
    assert inner.path == "outer.inner"
    assert inner.get("k", str) == "v"
    with pytest.raises(ConfigError) as info:
        inner.done()
    assert str(info.value) == "conf.yaml:4: outer.inner.bad: unknown key 'bad' (known: k)"
    absent = root.section("nope")
    assert absent.get("x", int, 5) == 5
    absent.done()
    with pytest.raises(ConfigError) as info:
        root.section("required_one", required=True)
    assert str(info.value) == "conf.yaml:1: required_one: required section is missing"


def test_section_that_is_not_a_mapping() -> None:
    root = section("a: 1\nlist:\n  - x\n")
    with pytest.raises(ConfigError) as info:
        root.section("list")
    assert str(info.value) == "conf.yaml:3: list: expected a mapping, got a list"
    with pytest.raises(ConfigError) as info:
        root.section("a")
    assert str(info.value) == "conf.yaml: a: expected a mapping, got int 1"


def test_top_level_list_is_not_a_section() -> None:
    with pytest.raises(ConfigError) as info:
        Section(load_text("- a\n", F), "", F)
    assert str(info.value) == "conf.yaml:1: <top>: expected a mapping, got a list"


def test_empty_file_is_an_empty_section() -> None:
    s = Section(load_text("", F), "", F)
    assert s.get("x", int, 1) == 1
    s.done()


# ---------------------------------------------------------------- YAML 1.1 booleans


@pytest.mark.parametrize("word", ["NO", "no", "Yes", "on", "OFF"])
def test_yaml11_boolean_words_are_refused_naming_line_key_and_the_fix(word: str) -> None:
    # a country code NO (Norway) or a status ON became the boolean false/true, written as 'false'/'true'
    e = error_of(f"fields:\n  country: {{default: {word}}}\n")
    assert e.where == Where(F, 2, "fields.country.default"), e.where
    assert f"`{word}` would be read as the boolean" in str(e) and f"quote it ('{word}')" in str(e), str(e)


def test_yaml11_boolean_words_are_refused_in_lists_and_as_keys() -> None:
    e = error_of("map:\n  - {crm: active, erp: A}\n  - [x, off]\n")
    assert e.where == Where(F, 3, "map[1][1]"), e.where
    e = error_of("a: 1\nyes: 2\n")
    assert e.where == Where(F, 2, "yes"), e.where


def test_true_false_and_quoted_words_load_as_before() -> None:
    data = load_text("a: true\nb: False\nc: 'NO'\nd: \"on\"\ne: [TRUE, 'off']\nf: N\n", F)
    assert data == {"a": True, "b": False, "c": "NO", "d": "on", "e": [True, "off"], "f": "N"}


def test_an_empty_section_keeps_its_line_for_errors() -> None:
    # `fields:` followed only by comments (a scaffold draft with nothing paired) named no line before
    data = load_text("m:\n  direction: both\n  fields:\n    # nothing paired\n", F)
    fields = Section(data, "").section("m").section("fields", required=True)
    assert fields.where() == Where(F, 3, "m.fields")

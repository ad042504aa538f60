"""Safe YAML loading that remembers where each key stands, so errors name file, line and key.

Only plain YAML is accepted (yaml.SafeLoader): Python tags such as !!python/object are refused.
Duplicate keys are refused too; PyYAML would silently keep the last one. So are YAML 1.1's other boolean
words (yes, no, on, off in any case): PyYAML reads `country: NO` (Norway) or `code: ON` as a boolean, which
a text column would then receive as `false`; only true and false are booleans here, the rest must be quoted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

from replicator.errors import ConfigError, Where


class YamlMap(dict[str, Any]):
    """A dict that knows the file and the line of itself and of each of its keys."""

    file: str = "?"
    line: int | None = None
    key_lines: dict[str, int]

    def where(self, path: str, key: str | None = None) -> Where:
        line = self.key_lines.get(key) if key is not None else self.line
        full = f"{path}.{key}" if key is not None and path else (key or path or "<top>")
        return Where(self.file, line or self.line, full)


class YamlList(list[Any]):
    file: str = "?"
    line: int | None = None
    item_lines: list[int]

    def where(self, path: str, index: int | None = None) -> Where:
        if index is None:
            return Where(self.file, self.line, path)
        line = self.item_lines[index] if index < len(self.item_lines) else self.line
        return Where(self.file, line, f"{path}[{index}]")


BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOL_WORDS = ("true", "false")


def _refuse_yaml11_bool(node: yaml.Node, where: Where) -> None:
    """A plain scalar PyYAML resolves to a boolean although it is not true or false (yes, No, ON, off...)."""
    if (isinstance(node, yaml.ScalarNode) and node.tag == BOOL_TAG and node.style is None
            and str(node.value).lower() not in _BOOL_WORDS):
        word = str(node.value)
        as_bool = "true" if word.lower() in ("yes", "on") else "false"
        raise ConfigError(f"`{word}` would be read as the boolean {as_bool} (YAML 1.1): write {as_bool} for a "
                          f"boolean, or quote it ('{word}') for the text", where)


def _loader_for(file: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    path: list[str] = []  # the key path being constructed (depth first), for the boolean words' error

    def here(step: str) -> str:
        return "".join(p if p.startswith("[") or i == 0 else "." + p for i, p in enumerate([*path, step]))

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> YamlMap:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)
        merged = len(node.value) - own  # flatten_mapping puts the merged pairs first
        explicit: set[str] = set()
        result = YamlMap()
        result.file = file
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for index, (key_node, value_node) in enumerate(node.value):
            _refuse_yaml11_bool(key_node, Where(file, key_node.start_mark.line + 1, here(str(key_node.value))))
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ConfigError(
                    "mapping keys must be plain scalars",
                    Where(file, key_node.start_mark.line + 1, str(key)),
                )
            skey = str(key) if not isinstance(key, str) else key
            if index >= merged:  # merged keys may be overridden; written ones only once
                if skey in explicit:
                    raise ConfigError(
                        f"duplicate key {skey!r} (first on line {result.key_lines[skey]})",
                        Where(file, key_node.start_mark.line + 1, here(skey)),
                    )
                explicit.add(skey)
            _refuse_yaml11_bool(value_node, Where(file, value_node.start_mark.line + 1, here(skey)))
            path.append(skey)
            try:
                result[skey] = loader.construct_object(value_node, deep=True)
            finally:
                path.pop()
            result.key_lines[skey] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> YamlList:
        items = []
        for index, child in enumerate(node.value):
            _refuse_yaml11_bool(child, Where(file, child.start_mark.line + 1, here(f"[{index}]")))
            path.append(f"[{index}]")
            try:
                items.append(loader.construct_object(child, deep=True))
            finally:
                path.pop()
        result = YamlList(items)
        result.file = file
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_text(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_loader_for(file))  # noqa: S506 - SafeLoader subclass
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if "could not determine a constructor" in problem:
            problem = "tags such as !!python/... are not allowed; plain YAML only"
        raise ConfigError(f"YAML error: {problem}", Where(file, line, "<syntax>")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", Where(file, None, "<syntax>")) from None


def load_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return load_text(text, str(path))


class Section:
    """Typed access to one YAML mapping: each getter checks type and records the key as known.

    `done()` raises on any key nobody asked for, so typos are errors, not silently ignored.
    """

    def __init__(self, data: Any, path: str, file: str = "?", line: int | None = None):
        if data is None:  # `key:` with nothing after it: errors about it still name its line
            data = YamlMap()
            data.file, data.line, data.key_lines = file, line, {}
        if not isinstance(data, YamlMap):
            where = Where(getattr(data, "file", file), getattr(data, "line", None), path or "<top>")
            raise ConfigError(f"expected a mapping, got {_kind(data)}", where)
        self.data = data
        self.path = path
        self._seen: set[str] = set()

    @property
    def file(self) -> str:
        return self.data.file

    def where(self, key: str | None = None) -> Where:
        return self.data.where(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, types: type | tuple[type, ...], default: Any = ..., *, choices: Any = None) -> Any:
        self._seen.add(key)
        if key not in self.data or self.data[key] is None and default is not ...:
            if default is ...:
                raise ConfigError("required key is missing", self.where(key))
            return default
        value = self.data[key]
        if types is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ConfigError(f"expected {_names(types)}, got a boolean", self.where(key))
        if not isinstance(value, types):
            raise ConfigError(f"expected {_names(types)}, got {_kind(value)}", self.where(key))
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{value!r} is not one of {', '.join(map(str, choices))}", self.where(key)
            )
        return value

    def section(self, key: str, required: bool = False) -> "Section":
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise ConfigError("required section is missing", self.where(key))
            return Section(None, self._child(key), self.file)
        return Section(self.data[key], self._child(key), self.file, self.data.key_lines.get(key))

    def items(self) -> Iterator[tuple[str, Any]]:
        for key in self.data:
            self._seen.add(key)
            yield key, self.data[key]

    def allow(self, *keys: str) -> None:
        """Keys read elsewhere (from the raw data): known, so done() accepts and lists them."""
        self._seen.update(keys)

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self._seen]
        if unknown:
            key = unknown[0]
            raise ConfigError(
                f"unknown key {key!r}" + (f" (known: {', '.join(sorted(self._seen))})" if self._seen else ""),
                self.where(key),
            )


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _names(types: type | tuple[type, ...]) -> str:
    tup = types if isinstance(types, tuple) else (types,)
    words = {str: "text", int: "an integer", float: "a number", bool: "true/false", list: "a list", dict: "a mapping"}
    return " or ".join(words.get(t, t.__name__) for t in tup)

"""The raw field specs of the mapping files (a second YAML read: the model keeps only closures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from replicator.mapping.check.columns import Specs

# ---------------------------------------------------------------- reading the raw field specs

FOLD = ".fold"  # the key of a fold mapping's own spec (`fold:`, with its `map:`): no field is named so


def field_specs(directory: Path) -> Specs:
    """`{(mapping, field): raw spec}` from the *.yaml files of a mapping directory (for `check_types`); a fold
    mapping's `fold:` under `(mapping, FOLD)`.
    A file that does not load is left out (loading the mappings reports it)."""
    from replicator.yamlfile import load_file

    out: Specs = {}
    if not Path(directory).is_dir():
        return out
    for path in sorted(p for p in Path(directory).iterdir() if p.suffix in (".yaml", ".yml")):
        try:
            data = load_file(path)
        except Exception:
            continue
        body = data.get("mappings") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            continue
        for name, m in body.items():
            if isinstance(m, dict) and isinstance(m.get("fold"), dict):
                out[(str(name), FOLD)] = m["fold"]
            fields = m.get("fields") if isinstance(m, dict) else None
            if isinstance(fields, dict):
                for fname, spec in fields.items():
                    out[(str(name), str(fname))] = spec
    return out


def _direction_transform(spec: Any, stream: str) -> Any:
    """The transform list that applies in `stream` (None: none)."""
    t = spec.get("transform") if isinstance(spec, dict) else None
    if isinstance(t, dict):
        t = t.get(stream)
    return t or None

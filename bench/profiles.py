"""Requirement profiles: the thresholds a run is judged against, each with its source.

A profile is a TOML file. Any table that has a `value` is a *clause*: a number (or list of
numbers) with its `units`, the `clause` text of the standard or guideline it comes from and a
`confidence` tag (primary / secondary / recall / site, as in shared/reference/criteria.md).
Plans ask for clauses by dotted key and units, so a threshold never lives in plan code and a
unit mismatch between profile and plan is caught instead of silently mis-scaling a limit.
Profiles may inherit (`inherits = "ieee2800_2022"`) and override single keys.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import ProblemsError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "testplans" / "profiles"
CONFIDENCE_TAGS = ("primary", "secondary", "recall", "site")
REGION_KINDS = ("mandatory_operation", "momentary_cessation", "permissive_operation")


class ProfileError(ProblemsError):
    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"profile {source}", problems)


@dataclass(frozen=True)
class Clause:
    """One judged threshold and where it comes from."""

    key: str
    value: Any
    units: str
    clause: str
    confidence: str
    profile_id: str

    def cite(self) -> str:
        return f"{self.clause} [{self.confidence}]"


@dataclass(frozen=True)
class RideThroughRegion:
    kind: str
    v_min_pu: float
    v_max_pu: float
    duration_s: float
    clause: Clause

    def contains(self, v_pu: float) -> bool:
        return self.v_min_pu <= v_pu < self.v_max_pu


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "value" not in value:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_profile_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if not candidate.is_absolute() and relative_to is not None:
            candidate = relative_to / candidate
        return candidate
    return PROFILE_DIR / f"{name_or_path}.toml"


class Profile:
    def __init__(self, profile_id: str, title: str, data: dict, path: Path):
        self.id = profile_id
        self.title = title
        self.data = data
        self.path = path

    # -- access ----------------------------------------------------------------
    def _node(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ProfileError(str(self.path), [f"key '{key}' is missing (needed by the plan)"])
            node = node[part]
        return node

    def has(self, key: str) -> bool:
        try:
            self._node(key)
            return True
        except ProfileError:
            return False

    def clause(self, key: str, units: str) -> Clause:
        node = self._node(key)
        if not isinstance(node, dict) or "value" not in node:
            raise ProfileError(str(self.path), [f"key '{key}' is not a clause (needs value, units, clause, confidence)"])
        if node["units"] != units:
            raise ProfileError(str(self.path), [f"key '{key}': units {node['units']!r} but the plan needs {units!r}"])
        return Clause(key, node["value"], node["units"], node["clause"], node["confidence"], self.id)

    def setting(self, key: str) -> Any:
        """A test-procedure setting (not a threshold): sample rates, test points, durations."""
        return self._node(key)

    def regions(self, key: str) -> list[RideThroughRegion]:
        out = []
        for index, entry in enumerate(self._node(key)):
            clause = Clause(f"{key}[{index}]", entry["duration_s"], "s", entry["clause"],
                            entry["confidence"], self.id)
            out.append(RideThroughRegion(entry["kind"], float(entry["v_min_pu"]),
                                         float(entry["v_max_pu"]), float(entry["duration_s"]), clause))
        return out

    def region_for(self, key: str, v_pu: float) -> RideThroughRegion | None:
        for region in self.regions(key):
            if region.contains(v_pu):
                return region
        return None


# -- validation ------------------------------------------------------------------

def _check_clauses(node: Any, prefix: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        return
    if "value" in node:
        for needed in ("units", "clause", "confidence"):
            if needed not in node:
                problems.append(f"key '{prefix}': clause has no '{needed}'")
        if node.get("confidence") not in CONFIDENCE_TAGS:
            problems.append(f"key '{prefix}.confidence': {node.get('confidence')!r} is not one of {', '.join(CONFIDENCE_TAGS)}")
        value = node["value"]
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            problems.append(f"key '{prefix}.value': {value!r} is not a number or list of numbers")
        return
    for key, child in node.items():
        _check_clauses(child, f"{prefix}.{key}" if prefix else key, problems)


def _check_regions(data: dict, problems: list[str]) -> None:
    for section, content in data.items():
        if not isinstance(content, dict) or "regions" not in content:
            continue
        regions = content["regions"]
        spans = []
        for index, entry in enumerate(regions):
            key = f"{section}.regions[{index}]"
            missing = [k for k in ("kind", "v_min_pu", "v_max_pu", "duration_s", "clause", "confidence") if k not in entry]
            if missing:
                problems.append(f"key '{key}': missing {', '.join(missing)}")
                continue
            if entry["kind"] not in REGION_KINDS:
                problems.append(f"key '{key}.kind': {entry['kind']!r} is not one of {', '.join(REGION_KINDS)}")
            if not entry["v_min_pu"] < entry["v_max_pu"]:
                problems.append(f"key '{key}': v_min_pu {entry['v_min_pu']} must be below v_max_pu {entry['v_max_pu']}")
            if entry["duration_s"] <= 0:
                problems.append(f"key '{key}.duration_s': {entry['duration_s']} must be > 0")
            spans.append((entry["v_min_pu"], entry["v_max_pu"], key))
        spans.sort()
        for (lo1, hi1, k1), (lo2, hi2, k2) in zip(spans, spans[1:]):
            if lo2 < hi1:
                problems.append(f"keys '{k1}' and '{k2}': voltage bands overlap ({lo1}–{hi1} and {lo2}–{hi2} pu)")
        # Ride-through curves are monotonic: a deeper disturbance is never required for longer.
        ordered = sorted((lo, entry["duration_s"], f"{section}.regions[{i}]")
                         for i, entry in enumerate(regions) if "v_min_pu" in entry and "duration_s" in entry
                         for lo in [entry["v_min_pu"]])
        for (v1, d1, k1), (v2, d2, k2) in zip(ordered, ordered[1:]):
            if d1 > d2:
                problems.append(f"keys '{k1}' and '{k2}': curve not monotonic (deeper band {v1} pu lasts {d1} s, longer than {d2} s at {v2} pu)")


def load_profile(name_or_path: str, relative_to: Path | None = None, _seen: tuple = ()) -> Profile:
    path = resolve_profile_path(name_or_path, relative_to)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(name_or_path, [f"no such profile file {path} (shipped profiles: {known})"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), [f"is not valid TOML: {exc}"]) from None
    head = data.pop("profile", None)
    if not isinstance(head, dict) or "id" not in head or "title" not in head:
        raise ProfileError(str(path), ["table [profile] with 'id' and 'title' is required"])
    parent = head.get("inherits")
    if parent:
        if parent in _seen:
            raise ProfileError(str(path), [f"inheritance loop through {parent!r}"])
        base = load_profile(parent, path.parent, (*_seen, head["id"]))
        data = _deep_merge(base.data, data)
    problems: list[str] = []
    _check_clauses(data, "", problems)
    _check_regions(data, problems)
    if problems:
        raise ProfileError(str(path), problems)
    return Profile(head["id"], head["title"], data, path)

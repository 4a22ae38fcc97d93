"""Load profiles from YAML with errors that name the file, the line and the field.

``device_profiles/elevator/acme-em200.yaml:14: points[3].register.type: 'uint15' is not one of …``
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from device_profiles.compiled import CompiledProfile
from device_profiles.examples import run_examples
from device_profiles.schema import LocatedError, Profile

logger = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Issue:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ProfileError(ValueError):
    """One or more problems with profile files; ``str()`` lists them one per line."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class UnknownProfile(KeyError):
    def __init__(self, profile_id: str, known: Iterable[str]) -> None:
        self.profile_id = profile_id
        self.known = sorted(known)
        super().__init__(profile_id)

    def __str__(self) -> str:
        return f"unknown profile {self.profile_id!r}; known profiles: {', '.join(self.known) or 'none'}"


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def read_yaml(path: Path, display: str | None = None) -> Any:
    """Parse a YAML file keeping line numbers; syntax errors become a :class:`ProfileError`."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([Issue(name, None, "", f"cannot read: {exc}")]) from None
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProfileError([Issue(name, line, "", f"YAML syntax: {problem}")]) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"unacceptable character #x{exc.character:04x} in the file"
        raise ProfileError([Issue(name, line, "", message)]) from None
    except YAMLError as exc:
        raise ProfileError([Issue(name, None, "", f"YAML: {exc}")]) from None


def _locate(data: Any, loc: Sequence[int | str]) -> tuple[int | None, list[str | int]]:
    """The YAML line of the deepest node along ``loc`` and the path elements that exist in the file."""
    line: int | None = data.lc.line + 1 if isinstance(data, CommentedMap | CommentedSeq) else None
    cur = data
    path: list[str | int] = []
    for item in loc:
        if isinstance(cur, CommentedMap) and item in cur:
            line = cur.lc.key(item)[0] + 1
            cur = cur[item]
            path.append(item)
        elif isinstance(cur, CommentedSeq) and isinstance(item, int) and 0 <= item < len(cur):
            line = cur.lc.item(item)[0] + 1
            cur = cur[item]
            path.append(item)
        elif isinstance(cur, CommentedMap) and isinstance(item, str) and item.isdigit() and int(item) in cur:
            line = cur.lc.key(int(item))[0] + 1
            cur = cur[int(item)]
            path.append(int(item))
    return line, path


def line_of(data: Any, *path: str | int) -> int | None:
    """The 1-based line of the deepest node along ``path`` in a round-trip-loaded YAML document."""
    return _locate(data, path)[0]


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{err['input']!r} is not one of {expected}"
    if kind == "extra_forbidden":
        return "unknown key (not part of the schema)"
    if kind == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def validation_issues(exc: ValidationError, data: Any, file: str) -> list[Issue]:
    """Turn pydantic's errors into file:line:field issues, one per distinct problem."""
    issues: list[Issue] = []
    seen: set[tuple[int | None, str, str]] = set()
    for err in exc.errors():
        loc = list(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, LocatedError):
            loc += list(cause.loc)
        line, path = _locate(data, loc)
        if err["type"] == "missing" and loc and loc[-1] not in path:
            path = [*path, loc[-1]]
        key = (line, format_path(path), _message(err))
        if key in seen:
            continue
        seen.add(key)
        issues.append(Issue(file, line, key[1], key[2]))
    return issues


def load_profile(path: Path, display: str | None = None) -> Profile:
    """Load and validate one profile file; raise :class:`ProfileError` listing every problem."""
    name = display or str(path)
    data = read_yaml(path, name)
    if not isinstance(data, CommentedMap):
        raise ProfileError([Issue(name, 1, "", "a profile must be a YAML mapping")])
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(validation_issues(exc, data, name)) from None
    if profile.examples:
        problems = run_examples(CompiledProfile(profile))
        if problems:
            raise ProfileError([
                Issue(name, line_of(data, "examples", p.index, *p.path), format_path(["examples", p.index, *p.path]),
                      f"example {profile.examples[p.index].name!r}: {p.message}")
                for p in problems
            ])
    return profile


def iter_profile_files(paths: Iterable[Path]) -> Iterator[Path]:
    """YAML files named directly, or found below the folders named."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.yaml") if p.is_file())
        else:
            yield path


class Catalog:
    """Profiles by id, loaded once at an entry point and passed down."""

    def __init__(self, profiles: Iterable[Profile], sources: dict[str, str] | None = None) -> None:
        self._profiles: dict[str, Profile] = {}
        self.sources: dict[str, str] = dict(sources or {})
        for p in profiles:
            self._profiles[p.id] = p

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self._profiles

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    def ids(self) -> list[str]:
        return sorted(self._profiles)

    def get(self, profile_id: str) -> Profile:
        try:
            return self._profiles[profile_id]
        except KeyError:
            raise UnknownProfile(profile_id, self._profiles) from None


def load_catalog(paths: Iterable[Path] | None = None, *, shipped: bool = True) -> Catalog:
    """The shipped profiles plus every profile below ``paths`` (an installer's own folder *adds to* the
    catalog, it does not replace it); all problems in one error. Two files with one id are an error naming
    both files. ``shipped=False`` loads only ``paths`` (tests, ``profile validate`` of a lone folder)."""
    roots = ([SHIPPED_DIR] if shipped else []) + list(paths or [])
    files: list[Path] = []
    seen: set[Path] = set()
    shipped_copies: set[bytes] = set()
    shipped_root = SHIPPED_DIR.resolve()
    for f in iter_profile_files(roots):
        key = f.resolve()
        if key in seen:  # the shipped folder named again, or a file inside it: loaded once
            continue
        seen.add(key)
        try:
            content = f.read_bytes()
        except OSError:
            content = b""  # unreadable: load_profile below reports it with the path
        if shipped and key.is_relative_to(shipped_root):
            shipped_copies.add(content)
        elif content and content in shipped_copies:
            continue  # a byte-identical copy of a shipped profile (a source checkout beside the installed package)
        files.append(f)
    issues: list[Issue] = []
    profiles: list[Profile] = []
    sources: dict[str, str] = {}
    for f in files:
        display = _display(f)
        try:
            profile = load_profile(f, display)
        except ProfileError as exc:
            issues.extend(exc.issues)
            continue
        if profile.id in sources:
            other = sources[profile.id]
            data = read_yaml(f, display)
            issues.append(Issue(display, line_of(data, "id"), "id",
                                f"profile id {profile.id!r} is already used by {other}; ids must be unique across "
                                "the shipped profiles and yours: rename one of them"))
            continue
        sources[profile.id] = display
        profiles.append(profile)
    if issues:
        raise ProfileError(issues)
    logger.debug("loaded %d profiles", len(profiles))
    return Catalog(profiles, sources)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)

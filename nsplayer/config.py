"""Options for a run, merged from defaults, a YAML file, NSPLAYER_* variables and the command line.

Precedence is command line > environment > config file > defaults, key by key. The file is
``--config FILE``, else ``$NSPLAYER_CONFIG``, else ``./nsplayer.yaml``, else ``nsplayer.yaml``
in the user config directory. Every value is checked against one table of keys (``_KEYS``), so a
typo or a wrong type in any of the three sources stops the run with one line that names the key
and where it came from, instead of being ignored or failing later in the middle of playback.

Keys are the Options field names; nested ones are dotted (``gains.mouth``, ``idle.blink_rate``,
``neurosync.url``) and are written as sections in YAML. In the environment they are upper case
with ``_`` for the dot: ``NSPLAYER_FPS``, ``NSPLAYER_GAINS_MOUTH``, ``NSPLAYER_NEUROSYNC_URL``,
with the shorthands ``NSPLAYER_URL``, ``NSPLAYER_API_KEY`` and ``NSPLAYER_TARGET``.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from livelink.udp import parse_target
from nsplayer.animation import Gains, IdleSettings
from nsplayer.animation.emotion import emotion_weights, parse_emotion
from nsplayer.audio.sinks import UNDERRUN_MODES
from nsplayer.errors import NsplayerError
from nsplayer.live import LiveSettings
from nsplayer.models import MODEL_NAMES
from nsplayer.models.base import ON_MODEL_ERROR
from nsplayer.models.neurosync import DEFAULT_URL, NeuroSyncSettings

CONFIG_NAME = "nsplayer.yaml"
ENV_PREFIX = "NSPLAYER_"


@dataclass(frozen=True)
class Options:
    """Everything a run needs; built once by ``load_options`` and passed around whole."""

    targets: tuple[str, ...] = ("127.0.0.1:11111",)
    subject: str = "nsplayer"
    device_id: str | None = None
    fps: int = 60
    model: str = "embedded"
    neurosync: NeuroSyncSettings = field(default_factory=NeuroSyncSettings)
    device: str | None = None
    input_device: str | None = None
    no_audio: bool = False
    av_offset_ms: float = 0.0
    gains: Gains = field(default_factory=Gains)
    idle: IdleSettings = field(default_factory=IdleSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    emotion: dict[str, float] | None = None
    seed: int | None = None
    buffer_ms: float = 100.0
    underrun: str = "silence"  # silence | pause
    stats: Path | None = None
    save_csv: Path | None = None
    start_at: str | None = None  # HH:MM:SS[.mmm] local time: frame 0 (and the sound) then
    verbose: int = 0


class _Bad(Exception):
    """A value does not fit its key; the text says what was expected."""


Convert = Callable[[object, bool], object]  # (value, came_from_text) -> checked value


def _number(kind: type, lo: float, hi: float) -> Convert:
    bounds = f"{int(lo)}..{int(hi)}" if kind is int else f"{lo:g}..{hi:g}"
    what = f"{'an integer' if kind is int else 'a number'} in {bounds}"

    def convert(value: object, text: bool) -> object:
        if text and isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise _Bad(what) from None
        ok_types = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise _Bad(what)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise _Bad(what)
        return kind(value)

    return convert


def _bool(value: object, text: bool) -> bool:
    if text and isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _string(value: object, text: bool) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a device index written as a number
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a non-empty string")
    return value.strip()


def _choice(*choices: str) -> Convert:
    def convert(value: object, text: bool) -> str:
        if value not in choices:
            raise _Bad(" or ".join(choices))
        return str(value)

    return convert


def _optional(convert: Convert) -> Convert:
    """None (YAML null, or an empty environment variable) means 'not set'."""

    def optional(value: object, text: bool) -> object:
        if value is None or (text and value == ""):
            return None
        return convert(value, text)

    return optional


def _targets(value: object, text: bool) -> tuple[str, ...]:
    """HOST:PORT items (a list, or one comma-separated string), read by the same parser the
    sender uses: ``localhost:11111``, ``[::1]:11111``, a bare host takes port 11111."""
    what = "HOST:PORT or a list of them, e.g. 127.0.0.1:11111 or [::1]:11111"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise _Bad(what)
    targets = []
    for target in (t.strip() for item in items for t in item.split(",") if t.strip()):
        try:
            host, port = parse_target(target)
        except ValueError:
            raise _Bad(f"{what}; {_short(target)} is not") from None
        targets.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not targets:
        raise _Bad(what)
    return tuple(targets)


def _clock_time(value: object, text: bool) -> str:
    """HH:MM:SS or HH:MM:SS.mmm, a time of day."""
    what = "a time of day HH:MM:SS or HH:MM:SS.mmm, e.g. 14:30:05.250"
    if not isinstance(value, str):
        raise _Bad(what)
    try:
        datetime.time.fromisoformat(value.strip())
    except ValueError:
        raise _Bad(what) from None
    return value.strip()


def _path(value: object, text: bool) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_string(value, text))


def _emotion(value: object, text: bool) -> dict[str, float]:
    if isinstance(value, str):
        return parse_emotion(value)
    if not isinstance(value, Mapping):
        raise _Bad("NAME:WEIGHT pairs like happy:0.4, or a mapping like {happy: 0.4}")
    emotion_weights(value)
    return {str(k).strip().lower(): float(v) for k, v in value.items()}


_KEYS: dict[str, Convert] = {
    "targets": _targets,
    "subject": _string,
    "device_id": _optional(_string),
    "fps": _number(int, 1, 240),
    "model": _choice(*MODEL_NAMES),
    "neurosync.url": _string,
    "neurosync.api_key": _optional(_string),
    "neurosync.connect_timeout": _number(float, 0.1, 600),
    "neurosync.read_timeout": _number(float, 0.1, 3600),
    "neurosync.retries": _number(int, 0, 10),
    "neurosync.max_inflight": _number(int, 1, 16),
    "neurosync.segment_s": _number(float, 2, 120),
    "neurosync.overlap_s": _number(float, 0.1, 10),
    "neurosync.on_model_error": _choice(*ON_MODEL_ERROR),
    "neurosync.allow_insecure": _bool,
    "device": _optional(_string),
    "input_device": _optional(_string),
    "no_audio": _bool,
    "av_offset_ms": _number(float, -5000, 5000),
    **{f"gains.{f.name}": _number(float, 0, 10) for f in fields(Gains)},
    "idle.enabled": _bool,
    "idle.blink_rate": _number(float, 0, 60),
    "idle.saccades": _bool,
    "idle.head_sway": _number(float, 0, 5),
    "idle.breathing": _number(float, 0, 5),
    "live.rate": _optional(_number(int, 8000, 384000)),
    "live.block_ms": _number(float, 1, 100),
    "live.monitor": _bool,
    "live.hop_ms": _number(float, 10, 10000),
    "live.duration": _optional(_number(float, 0, 10**9)),
    "live.gate": _bool,
    "live.input_file": _optional(_path),
    "emotion": _optional(_emotion),
    "seed": _optional(_number(int, 0, 2**32 - 1)),
    "buffer_ms": _number(float, 0, 10000),
    "underrun": _choice(*UNDERRUN_MODES),
    "stats": _optional(_path),
    "save_csv": _optional(_path),
    "start_at": _optional(_clock_time),
    "verbose": _number(int, -9, 9),
}
_SECTIONS = {
    "neurosync": NeuroSyncSettings,
    "gains": Gains,
    "idle": IdleSettings,
    "live": LiveSettings,
}
_SECRET = {"neurosync.api_key"}
_ALIASES = {
    "url": "neurosync.url",
    "api_key": "neurosync.api_key",
    "target": "targets",
    "av_offset": "av_offset_ms",
}


def _unknown(where: str, key: str, known: list[str], noun: str = "key") -> NsplayerError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return NsplayerError(f"{where}: unknown {noun} {_short(key)}{hint}")


def _check(where: str, key: str, value: object, text: bool = False) -> object:
    try:
        return _KEYS[key](value, text)
    except _Bad as exc:
        got = "" if key in _SECRET else f", got {_short(value)}"
        raise NsplayerError(f"{where}: '{key}' must be {exc}{got}") from None
    except NsplayerError as exc:  # emotion parsing explains itself
        raise NsplayerError(f"{where}: '{key}': {exc}") from None


def _flatten(where: str, data: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested sections to dotted keys, rejecting keys the table does not know."""
    flat: dict[str, object] = {}
    for raw_key, value in data.items():
        key = prefix + str(raw_key)
        if not prefix and key in _SECTIONS:
            if is_dataclass(value):
                value = asdict(value)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise NsplayerError(f"{where}: '{key}' must be a section of keys")
            flat.update(_flatten(where, value, key + "."))
            continue
        key = _ALIASES.get(key, key) if not prefix else key
        if key not in _KEYS:
            raise _unknown(where, key, [*_KEYS, *_SECTIONS])
        flat[key] = _check(where, key, value)
    return flat


def user_config_dir(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Path:
    """Where a per-user nsplayer.yaml lives on this operating system."""
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform == "win32":
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "nsplayer"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "nsplayer"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "nsplayer"


class _FoundHere(type(Path())):  # type: ignore[misc]
    """A ./nsplayer.yaml picked up from the current folder, which may have come with a download.

    It may not set output paths or where the API key goes (``_NOT_FROM_HERE``).
    """


# Keys a config found in the current folder may not set (other than to these harmless values):
# output paths overwrite any writable file, and the URL receives NSPLAYER_API_KEY.
_NOT_FROM_HERE: dict[str, object] = {
    "stats": None,
    "save_csv": None,
    "neurosync.url": DEFAULT_URL,
    "neurosync.api_key": None,
}
MAX_CONFIG_BYTES = 64 * 1024
MAX_CONFIG_DEPTH = 16


def find_config(
    config_path: Path | None, env: Mapping[str, str] = os.environ, platform: str = sys.platform
) -> Path | None:
    """The config file to read: the given one (must exist), else the first that exists."""
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            gone = "is a directory" if path.is_dir() else "not found"
            raise NsplayerError(f"config file {path} {gone} — check the --config path")
        return path
    given = env.get(ENV_PREFIX + "CONFIG")
    if given:
        path = Path(given)
        if not path.is_file():
            gone = "is a directory" if path.is_dir() else "does not exist"
            raise NsplayerError(f"{ENV_PREFIX}CONFIG points to {given}, which {gone}")
        return path
    here, user = Path.cwd() / CONFIG_NAME, user_config_dir(env, platform) / CONFIG_NAME
    if here.is_file() and not (user.is_file() and here.samefile(user)):
        return _FoundHere(here)
    return user if user.is_file() else None


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting limit: a tiny file cannot expand into
    gigabytes (alias bomb) or recurse past Python's stack (deeply nested brackets)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in nsplayer.yaml", event.start_mark
            )
        if self._depth >= MAX_CONFIG_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(path: Path, where: str) -> object:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise NsplayerError(
                f"{where}: larger than {MAX_CONFIG_BYTES // 1024} KB; is it a config?"
            )
        return yaml.load(raw.decode("utf-8"), Loader=_ConfigLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise NsplayerError(f"{where}{line}: invalid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NsplayerError(f"{where}: cannot read it ({exc})") from None


def _read_file(path: Path) -> dict[str, object]:
    where = f"config {path}"
    data = _load_yaml(path, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NsplayerError(f"{where}: expected a mapping of keys like 'fps: 60' at the top")
    flat = _flatten(where, data)
    if isinstance(path, _FoundHere):
        _refuse_here(where, flat)
    return flat


def _refuse_here(where: str, flat: Mapping[str, object]) -> None:
    for key, harmless in _NOT_FROM_HERE.items():
        if key in flat and flat[key] != harmless:
            raise NsplayerError(
                f"{where} (found in the current folder) may not set '{key}': give it on the "
                "command line, in NSPLAYER_*, or in the user config"
            )


def _short(value: object, limit: int = 60) -> str:
    """repr() cut to ``limit`` characters: an error line never carries a whole huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env_key(name: str) -> str | None:
    """NSPLAYER_GAINS_MOUTH -> gains.mouth (None if no key matches)."""
    word = name[len(ENV_PREFIX) :].lower()
    if word in _ALIASES:
        return _ALIASES[word]
    for key in _KEYS:
        if key.replace(".", "_") == word:
            return key
    return None


def _read_env(env: Mapping[str, str]) -> dict[str, object]:
    flat: dict[str, object] = {}
    known = [ENV_PREFIX + k.replace(".", "_").upper() for k in [*_KEYS, *_ALIASES]]
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = _env_key(name)
        if key is None:
            raise _unknown("environment", name, known, "variable")
        flat[key] = _check(f"environment {name}", key, text, text=True)
    return flat


def _build(flat: Mapping[str, object]) -> Options:
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {name: {} for name in _SECTIONS}
    for key, value in flat.items():
        section, _, name = key.rpartition(".")
        (sections[section] if section else top)[name] = value
    built = {name: cls(**sections[name]) for name, cls in _SECTIONS.items()}
    return Options(**top, **built)


def load_options(
    cli: Mapping[str, object],
    config_path: Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> Options:
    """Merge defaults < config file < NSPLAYER_* environment < command line into Options.

    ``cli`` holds only the options the user gave (None values count as not given); its keys
    are Options field names, dotted keys, sections as mappings, or the aliases url/api_key.
    """
    path = find_config(config_path, env)
    flat = _read_file(path) if path else {}
    flat.update(_read_env(env))
    flat.update(_flatten("command line", {k: v for k, v in cli.items() if v is not None}))
    return _build(flat)


def options_from_cli(given: Mapping[str, object], env: Mapping[str, str] = os.environ) -> Options:
    """Options from the command-line flags the user gave (click's parameter names), merged
    over the config file and the environment by ``load_options``."""
    given = {_dotted(k): v for k, v in given.items()}
    config = given.pop("config_path", None)
    verbose = int(given.pop("verbose", 0) or 0) - int(given.pop("quiet", 0) or 0)  # type: ignore[call-overload]
    if verbose:
        given["verbose"] = verbose
    if given.get("gains"):
        given["gains"] = parse_gains(given["gains"])  # type: ignore[arg-type]
    for key in ("stats", "save_csv", "live.input_file"):
        if given.get(key) is not None:
            given[key] = Path(given[key])  # type: ignore[arg-type]
    return load_options(given, Path(config) if config else None, env)  # type: ignore[arg-type]


def _dotted(name: str) -> str:
    """click's parameter name to the config key: ``neurosync_url`` -> ``neurosync.url``."""
    for section in ("neurosync", "live"):
        if name.startswith(section + "_"):
            return f"{section}.{name[len(section) + 1 :]}"
    return name


def parse_gains(items: tuple[str, ...]) -> dict[str, float]:
    """``--gain REGION=X`` items to ``{region: X}``; an unknown region lists the known ones."""
    regions = [f.name for f in fields(Gains)]
    gains = {}
    for item in items:
        region, sep, value = item.partition("=")
        region = region.strip().lower()
        try:
            gains[region] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise NsplayerError(f"--gain {_short(item)}: expected REGION=NUMBER, e.g. jaw=1.2")
        if region not in regions:
            raise NsplayerError(
                f"--gain {_short(item)}: no region {_short(region)} — use one of "
                f"{', '.join(regions)}"
            )
    return gains

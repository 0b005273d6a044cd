"""Config: precedence, file discovery, validation messages, secrets; never touches the real home."""

from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nsplayer.animation import Gains, IdleSettings
from nsplayer.config import (
    DEFAULT_URL,
    NeuroSyncSettings,
    Options,
    find_config,
    load_options,
    user_config_dir,
)
from nsplayer.errors import NsplayerError
from nsplayer.live import LiveSettings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nsplayer.yaml"
SECRET = "sk-very-secret-123"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty working directory and a fake home: no real config file can leak in."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(home):
    options = load_options({}, env=home)
    assert options == Options()
    assert options.targets == ("127.0.0.1:11111",) and options.neurosync.url == DEFAULT_URL


def test_precedence_cli_over_env_over_file_over_defaults(home):
    write(
        Path("nsplayer.yaml"),
        "fps: 30\nsubject: from-file\nav_offset_ms: 12\n"
        "gains: {mouth: 1.5}\nidle:\n  blink_rate: 10\n",
    )
    env = {
        **home,
        "NSPLAYER_FPS": "50",
        "NSPLAYER_SUBJECT": "from-env",
        "NSPLAYER_GAINS_JAW": "0.5",
    }
    options = load_options({"fps": 24, "subject": None, "gains.jaw": 0.7}, env=env)
    assert options.fps == 24  # command line
    assert options.subject == "from-env"  # None on the command line means "not given"
    assert options.gains == Gains(mouth=1.5, jaw=0.7)
    assert options.av_offset_ms == 12.0  # file
    assert options.idle == IdleSettings(blink_rate=10.0)
    assert options.model == "embedded"  # default


def test_cli_accepts_sections_objects_and_aliases(home):
    options = load_options(
        {"url": "http://10.0.0.2:5000/x", "api_key": SECRET, "target": ("a:1", "b:2,c:3")}, env=home
    )
    assert options.neurosync.url == "http://10.0.0.2:5000/x"
    assert options.neurosync.api_key == SECRET
    assert options.targets == ("a:1", "b:2", "c:3")
    options = load_options(
        {"idle": IdleSettings(saccades=False), "neurosync": {"retries": 0}}, env=home
    )
    assert not options.idle.saccades and options.neurosync.retries == 0


def test_environment_values_are_parsed(home):
    env = {
        **home,
        "NSPLAYER_TARGETS": "127.0.0.1:11111, 10.0.0.5:11112",
        "NSPLAYER_NO_AUDIO": "yes",
        "NSPLAYER_SEED": "7",
        "NSPLAYER_DEVICE": "",
        "NSPLAYER_EMOTION": "happy:0.4",
        "NSPLAYER_URL": "https://example.com/a2b",
        "NSPLAYER_API_KEY": SECRET,
        "NSPLAYER_AV_OFFSET_MS": "-20.5",
        "NSPLAYER_IDLE_SACCADES": "off",
        "NSPLAYER_NEUROSYNC_ON_MODEL_ERROR": "stop",
        "NSPLAYER_STATS": "out/stats.json",
        "OTHER_VARIABLE": "ignored",
    }
    options = load_options({}, env=env)
    assert options.targets == ("127.0.0.1:11111", "10.0.0.5:11112")
    assert options.no_audio is True and options.seed == 7 and options.device is None
    assert options.emotion == {"happy": 0.4}
    assert options.neurosync == NeuroSyncSettings(
        url="https://example.com/a2b", api_key=SECRET, on_model_error="stop"
    )
    assert options.av_offset_ms == -20.5 and options.idle.saccades is False
    assert options.stats == Path("out/stats.json")


def test_config_file_search_order(home, tmp_path):
    user = write(Path(home["XDG_CONFIG_HOME"]) / "nsplayer" / "nsplayer.yaml", "fps: 25\n")
    assert find_config(None, home, "linux") == user
    assert load_options({}, env=home).fps == 25
    local = write(Path("nsplayer.yaml"), "fps: 30\n")
    assert find_config(None, home, "linux").resolve() == local.resolve()
    chosen = write(tmp_path / "chosen.yaml", "fps: 48\n")
    assert load_options({}, chosen, env=home).fps == 48
    assert load_options({}, env={**home, "NSPLAYER_CONFIG": str(chosen)}).fps == 48
    with pytest.raises(NsplayerError, match=r"config file .*missing.yaml not found"):
        load_options({}, tmp_path / "missing.yaml", env=home)


def test_user_config_dir_per_platform(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    assert user_config_dir(env, "linux") == home / ".config" / "nsplayer"
    xdg = {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert user_config_dir(xdg, "linux") == tmp_path / "xdg" / "nsplayer"
    assert user_config_dir(env, "darwin") == home / "Library" / "Application Support" / "nsplayer"
    appdata = {"USERPROFILE": str(home), "APPDATA": str(tmp_path / "Roaming")}
    assert user_config_dir(appdata, "win32") == tmp_path / "Roaming" / "nsplayer"
    assert user_config_dir({"USERPROFILE": str(home)}, "win32") == (
        home / "AppData" / "Roaming" / "nsplayer"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gain: {mouth: 2}\n", "unknown key 'gain' (did you mean 'gains'?)"),
        (
            "idle:\n  blink_rat: 3\n",
            "unknown key 'idle.blink_rat' (did you mean 'idle.blink_rate'?)",
        ),
        ("fps: sixty\n", "'fps' must be an integer in 1..240, got 'sixty'"),
        ("fps: 500\n", "'fps' must be an integer in 1..240, got 500"),
        ("fps: true\n", "'fps' must be an integer"),
        ('targets: ["localhost:99999"]\n', "'targets' must be HOST:PORT"),
        ("targets: 'host:99999'\n", "'targets' must be HOST:PORT"),
        ("underrun: stop\n", "'underrun' must be silence or pause, got 'stop'"),
        (
            "neurosync: {on_model_error: retry}\n",
            "'neurosync.on_model_error' must be embedded or idle",
        ),
        ("gains: {mouth: -1}\n", "'gains.mouth' must be a number in 0..10, got -1"),
        ("gains: 2\n", "'gains' must be a section of keys"),
        ("idle: {enabled: maybe}\n", "'idle.enabled' must be true or false, got 'maybe'"),
        ("emotion: joy:0.3\n", "'emotion': unknown emotion 'joy'"),
        ("- fps\n", "expected a mapping"),
    ],
)
def test_file_errors_name_the_file_and_key(home, text, message):
    write(Path("nsplayer.yaml"), text)
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    line = str(info.value)
    assert line.startswith("config ") and "nsplayer.yaml" in line
    assert message in line and "\n" not in line


def test_invalid_yaml_reports_the_line(home):
    write(Path("nsplayer.yaml"), "fps: 60\nsubject: [unclosed\nmodel: embedded\n")
    with pytest.raises(NsplayerError, match=r"nsplayer.yaml line \d+: invalid YAML"):
        load_options({}, env=home)


def test_env_and_cli_errors_name_the_variable_or_key(home):
    with pytest.raises(
        NsplayerError, match=r"environment: unknown variable 'NSPLAYER_FSP'.*NSPLAYER_FPS"
    ):
        load_options({}, env={**home, "NSPLAYER_FSP": "30"})
    with pytest.raises(NsplayerError, match="environment NSPLAYER_FPS: 'fps' must be an integer"):
        load_options({}, env={**home, "NSPLAYER_FPS": "fast"})
    with pytest.raises(NsplayerError, match="command line: 'buffer_ms' must be a number"):
        load_options({"buffer_ms": "lots"}, env=home)
    with pytest.raises(NsplayerError, match="command line: unknown key 'colour'"):
        load_options({"colour": 1}, env=home)


def test_api_key_never_shown(home):
    options = load_options({}, env={**home, "NSPLAYER_API_KEY": SECRET})
    assert options.neurosync.api_key == SECRET
    assert SECRET not in repr(options) and SECRET not in str(options)
    assert SECRET not in repr(options.neurosync)
    write(Path("nsplayer.yaml"), f"neurosync:\n  api_key: [{SECRET}]\n")
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "'neurosync.api_key' must be a non-empty string" in str(info.value)
    assert SECRET not in str(info.value)


def test_example_config_loads_and_documents_every_option(home):
    assert load_options({}, EXAMPLE, env=home) == Options()
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data) == {f.name for f in fields(Options)}
    for section, cls in (
        ("neurosync", NeuroSyncSettings),
        ("gains", Gains),
        ("idle", IdleSettings),
        ("live", LiveSettings),
    ):
        assert set(data[section]) == {f.name for f in fields(cls)}


_ENV_NAMES = st.sampled_from(
    ["NSPLAYER_FPS", "NSPLAYER_TARGETS", "NSPLAYER_EMOTION", "NSPLAYER_IDLE_ENABLED",
     "NSPLAYER_GAINS_EYES", "NSPLAYER_SEED", "NSPLAYER_UNDERRUN", "NSPLAYER_STATS"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_ENV_NAMES, st.text(max_size=20), max_size=4))
@example({"NSPLAYER_EMOTION": "0\n0"})  # once a two-line error
def test_any_environment_text_gives_options_or_one_line_error(tmp_path_factory, env):
    base = tmp_path_factory.mktemp("h")
    try:
        options = load_options(
            {}, Path(write(base / "c.yaml", "{}\n")), env={**env, "HOME": str(base)}
        )
    except NsplayerError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= options.fps <= 240 and options.targets


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_file_text_gives_options_or_one_line_error(tmp_path_factory, text):
    path = write(tmp_path_factory.mktemp("c") / "nsplayer.yaml", text)
    try:
        load_options({}, path, env={})
    except NsplayerError as exc:
        assert str(exc).startswith(f"config {path}") and "\n" not in str(exc)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost", ("localhost:11111",)),
        ("::1", ("[::1]:11111",)),
        ("[::1]:9000", ("[::1]:9000",)),
        ("127.0.0.1:5, host.example:7", ("127.0.0.1:5", "host.example:7")),
    ],
)
def test_targets_are_read_by_the_senders_own_parser(home, given, expected):
    """One parser for config, environment and command line: the one the sender uses."""
    assert load_options({}, None, env={"NSPLAYER_TARGETS": given}).targets == expected
    assert load_options({"targets": [given]}, None, env={}).targets == expected

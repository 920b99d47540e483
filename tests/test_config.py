"""Tests for ocr_watch.config: every problem named by key, all at once, and the key never shown."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from ocr_watch.config import (
    Config,
    ConfigError,
    Secret,
    describe,
    load_config,
    prepare_folders,
)

KEY = "ZZ-very-distinctive-key-7Q3"

MINIMAL = f"""
folders:
  inbox: in
  outbox: out
  quarantine: quarantine
api:
  key: {KEY}
"""


def write(tmp_path: Path, text: str, name: str = "ocr-watch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    assert KEY not in str(info.value)
    return info.value.problems


def has(problems: list[str], key: str, *words: str) -> bool:
    return any(p.startswith(f"{key}:") and all(w in p for w in words) for p in problems)


class TestDefaults:
    def test_minimal_file_fills_every_default(self, tmp_path: Path) -> None:
        """A file with only the required keys gets the documented defaults."""
        config = load_config(write(tmp_path, MINIMAL), env={})
        assert config.folders.archive == (tmp_path / "archive").resolve()
        assert config.state_dir == (tmp_path / ".ocr-watch" / "in").resolve()  # one per inbox
        assert config.on_success == "archive"
        assert config.api.base_url == "https://techhk.aoscdn.com"
        assert config.api.requests_per_second == 2
        assert config.ocr.format == "txt"
        assert config.ocr.language == "ChinesePRC,English,Digits"
        assert config.ocr.password is None
        assert (config.pool.max_in_flight, config.pool.queue_size) == (32, 10000)
        assert (config.poll.interval_seconds, config.poll.timeout_seconds) == (1, 120)
        assert config.watch.mode == "auto"
        assert config.watch.poll_interval_seconds == 1.0
        assert config.watch.rescan_seconds == 60
        assert config.watch.settle_seconds == 2.0
        assert config.retry.max_attempts == 8
        assert config.retry.backoff_initial_seconds == 1
        assert config.retry.backoff_max_seconds == 300
        assert config.log_level == "info"

    def test_relative_paths_resolve_against_the_config_folder(self, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
        """Relative folders are relative to the config file, not the working directory."""
        conf_dir = tmp_path / "etc"
        conf_dir.mkdir()
        monkeypatch.chdir(tmp_path)
        config = load_config(write(conf_dir, MINIMAL), env={})
        assert config.folders.inbox == (conf_dir / "in").resolve()
        assert config.folders.inbox.is_absolute()
        assert config.path == (conf_dir / "ocr-watch.yaml").resolve()

    def test_absolute_paths_are_kept(self, tmp_path: Path) -> None:
        """Absolute folders and an explicit archive and state_dir are used as given."""
        text = f"""
        folders:
          inbox: {tmp_path}/a/in
          outbox: {tmp_path}/a/out
          quarantine: {tmp_path}/a/q
          archive: {tmp_path}/b/arch
        state_dir: {tmp_path}/state
        api: {{key: {KEY}}}
        """
        config = load_config(write(tmp_path, text), env={})
        assert config.folders.archive == tmp_path.resolve() / "b/arch"
        assert config.state_dir == tmp_path.resolve() / "state"

    def test_all_values_accepted(self, tmp_path: Path) -> None:
        """Every key set to a valid non-default value is read back."""
        text = MINIMAL + textwrap.dedent("""
        on_success: delete
        ocr: {format: docx, language: "English, German", password: "s3cret"}
        pool: {max_in_flight: 2, queue_size: 5}
        poll: {interval_seconds: 0.5, timeout_seconds: 30}
        watch: {mode: polling, poll_interval_seconds: 3, rescan_seconds: 0, settle_seconds: 0}
        retry: {max_attempts: 1, backoff_initial_seconds: 2, backoff_max_seconds: 2}
        log_level: debug
        """)
        config = load_config(write(tmp_path, text), env={})
        assert config.on_success == "delete"
        assert config.ocr.language == "English,German"
        assert config.ocr.password is not None and config.ocr.password.reveal() == "s3cret"
        assert config.watch.mode == "polling" and config.watch.rescan_seconds == 0
        assert config.pool.max_in_flight == 2
        assert config.log_level == "debug"

    def test_loopback_http_allowed(self, tmp_path: Path) -> None:
        """Plain http is fine for the local emulator; the trailing slash is dropped."""
        for url in ("http://127.0.0.1:8080/", "http://localhost:9", "http://[::1]:80",
                    "http://127.5.6.7"):
            text = MINIMAL + f"  base_url: '{url}'\n"
            config = load_config(write(tmp_path, text), env={})
            assert config.api.base_url == url.rstrip("/")


class TestKeySources:
    def test_key_file_is_read_and_stripped(self, tmp_path: Path) -> None:
        """api.key_file, relative to the config folder, gives the key without its newline."""
        (tmp_path / "key.txt").write_text(KEY + "\n")
        text = MINIMAL.replace(f"key: {KEY}", "key_file: key.txt")
        config = load_config(write(tmp_path, text), env={})
        assert config.api.key.reveal() == KEY

    def test_env_variable(self, tmp_path: Path) -> None:
        """PICWISH_API_KEY is used when the file names no key."""
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        config = load_config(write(tmp_path, text), env={"PICWISH_API_KEY": KEY})
        assert config.api.key.reveal() == KEY

    def test_no_key(self, tmp_path: Path) -> None:
        """No key anywhere is one clear error."""
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        assert problems(tmp_path, text) == [
            "api.key: no API key: set api.key, api.key_file or PICWISH_API_KEY, or give the service the "
            "systemd credential picwish-api-key (LoadCredential=picwish-api-key:FILE)"]

    def test_systemd_credential_when_no_other_source(self, tmp_path: Path) -> None:
        """With none of the three set, $CREDENTIALS_DIRECTORY/picwish-api-key gives the key."""
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "picwish-api-key").write_text(KEY + "\n")
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        config = load_config(write(tmp_path, text), env={"CREDENTIALS_DIRECTORY": str(creds)})
        assert config.api.key.reveal() == KEY

    def test_systemd_credential_yields_to_a_configured_key(self, tmp_path: Path) -> None:
        """A key the file or the environment gives wins over the credential, without a conflict."""
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "picwish-api-key").write_text("credential-key-not-used")
        config = load_config(write(tmp_path, MINIMAL), env={"CREDENTIALS_DIRECTORY": str(creds)})
        assert config.api.key.reveal() == KEY
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        config = load_config(write(tmp_path, text), env={"CREDENTIALS_DIRECTORY": str(creds),
                                                         "PICWISH_API_KEY": KEY})
        assert config.api.key.reveal() == KEY

    def test_credentials_directory_without_ours_is_no_key(self, tmp_path: Path) -> None:
        """A credentials folder without picwish-api-key leaves the usual "no API key" problem."""
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        found = problems(tmp_path, text, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
        assert has(found, "api.key", "no API key", "picwish-api-key")

    def test_empty_credential(self, tmp_path: Path) -> None:
        """An empty credential file is not a key."""
        (tmp_path / "picwish-api-key").write_text("\n")
        text = MINIMAL.replace(f"key: {KEY}", "requests_per_second: 1")
        found = problems(tmp_path, text, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
        assert has(found, "credential picwish-api-key", "empty")

    def test_two_sources(self, tmp_path: Path) -> None:
        """A key in the file and in the environment is ambiguous."""
        found = problems(tmp_path, MINIMAL, env={"PICWISH_API_KEY": KEY + "x"})
        assert has(found, "api.key", "more than one", "api.key", "PICWISH_API_KEY")

    def test_unreadable_key_file(self, tmp_path: Path) -> None:
        """A key_file that does not exist names api.key_file and the path."""
        text = MINIMAL.replace(f"key: {KEY}", "key_file: missing.txt")
        found = problems(tmp_path, text)
        assert has(found, "api.key_file", "cannot read", "missing.txt")

    def test_empty_key_file(self, tmp_path: Path) -> None:
        """An empty key file is not a key."""
        (tmp_path / "key.txt").write_text("\n")
        text = MINIMAL.replace(f"key: {KEY}", "key_file: key.txt")
        assert has(problems(tmp_path, text), "api.key_file", "empty")

    def test_key_with_space(self, tmp_path: Path) -> None:
        """A key with an inner space is refused without echoing it."""
        text = MINIMAL.replace(f"key: {KEY}", f"key: '{KEY} {KEY}'")
        assert has(problems(tmp_path, text), "api.key", "spaces")


class TestSecretNeverShown:
    def test_repr_str_and_describe_mask_the_key(self, tmp_path: Path) -> None:
        """The key appears in no repr, str or describe output."""
        text = MINIMAL + "ocr: {password: pw-ZZ-distinct}\n"
        config = load_config(write(tmp_path, text), env={})
        for shown in (repr(config), str(config), repr(config.api), str(config.api.key),
                      repr(config.api.key), describe(config)):
            assert KEY not in shown
            assert "pw-ZZ-distinct" not in shown
        assert str(config.api.key) == "***"
        assert "key: '***'" in describe(config)

    def test_errors_do_not_echo_the_key(self, tmp_path: Path) -> None:
        """Errors near the key (bad types, bad URL with credentials, YAML errors) do not show it."""
        (tmp_path / "k").write_text(KEY)
        text = f"""
        folders: {{inbox: in, outbox: out, quarantine: q}}
        api:
          key: {KEY}
          key_file: k
          base_url: "https://user:{KEY}@example.com"
        """
        found = problems(tmp_path, text, env={"PICWISH_API_KEY": KEY})
        assert has(found, "api.key", "more than one")
        assert has(found, "api.base_url", "user name or password")
        broken = f"api:\n  key: {KEY}\n  x: [unclosed {KEY}\n"
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, broken), env={})
        assert KEY not in str(info.value)

    def test_secret_equality_and_reveal(self) -> None:
        """Secrets compare by value and reveal on request only."""
        assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
        assert Secret("abc").reveal() == "abc"
        assert "abc" not in f"{Secret('abc')!r} {Secret('abc')}"


class TestErrors:
    def test_many_problems_at_once(self, tmp_path: Path) -> None:
        """Every problem in the file is reported in one ConfigError, each naming its key."""
        text = """
        folders:
          inbox: in
          outbx: out
        api:
          key: k
          requests_per_second: true
          rate_margin: -0.5
        pool:
          max_in_flight: eight
          queue_size: 0
        poll: {interval_seconds: 0, timeout_seconds: -1}
        watch: {mode: inotify, rescan_seconds: -1, settle_seconds: "2"}
        retry: {max_attempts: 1.5, backoff_initial_seconds: 10, backoff_max_seconds: 5}
        ocr: {format: odt, language: "english,Klingon", password: 1234}
        on_success: move
        log_level: verbose
        loglevel: info
        """
        found = problems(tmp_path, text)
        assert has(found, "folders.outbx", "unknown key", "did you mean 'outbox'")
        assert has(found, "folders.outbox", "is required")
        assert has(found, "folders.quarantine", "is required")
        assert has(found, "api.requests_per_second", "number", "True")
        assert has(found, "api.rate_margin", ">= 0", "-0.5")
        assert "pool.max_in_flight: must be an integer >= 1, got 'eight'" in found
        assert has(found, "pool.queue_size", "integer >= 1", "0")
        assert has(found, "poll.interval_seconds", "> 0")
        assert has(found, "poll.timeout_seconds", "> 0")
        assert has(found, "watch.mode", "auto | native | polling", "inotify")
        assert has(found, "watch.rescan_seconds", ">= 0")
        assert has(found, "watch.settle_seconds", "number", "'2'")
        assert has(found, "retry.max_attempts", "integer")
        assert has(found, "retry.backoff_max_seconds", ">= retry.backoff_initial_seconds")
        assert has(found, "ocr.format", "txt | pdf | docx | xlsx | pptx", "odt")
        assert has(found, "ocr.language", "'english'", "did you mean 'English'")
        assert has(found, "ocr.language", "'Klingon'")
        assert has(found, "ocr.password", "string")
        assert has(found, "on_success", "archive | delete | keep")
        assert has(found, "log_level", "debug | info | warning | error")
        assert has(found, "loglevel", "did you mean 'log_level'")
        assert len(found) >= 20

    def test_unknown_section_and_wrong_section_type(self, tmp_path: Path) -> None:
        """Unknown top-level keys and non-mapping sections are named."""
        found = problems(tmp_path, MINIMAL + "pol: {}\npool: 8\n")
        assert has(found, "pol", "unknown key", "did you mean 'pool'")
        assert has(found, "pool", "mapping")

    def test_bool_is_not_a_number(self, tmp_path: Path) -> None:
        """YAML 'yes'/'true' are refused where numbers are expected."""
        found = problems(tmp_path, MINIMAL + "pool: {max_in_flight: yes}\npoll: {interval_seconds: true}\n")
        assert has(found, "pool.max_in_flight", "integer")
        assert has(found, "poll.interval_seconds", "number")

    def test_language_limits(self, tmp_path: Path) -> None:
        """More than 10 names, empty names and repeats are refused."""
        many = ",".join(["English", "Digits", "German", "French", "Spanish", "Italian", "Dutch",
                         "Danish", "Czech", "Greek", "Polish"])
        assert has(problems(tmp_path, MINIMAL + f"ocr: {{language: '{many}'}}\n"),
                   "ocr.language", "at most 10")
        assert has(problems(tmp_path, MINIMAL + "ocr: {language: 'English,,Digits'}\n"),
                   "ocr.language", "empty")
        assert has(problems(tmp_path, MINIMAL + "ocr: {language: 'English,English'}\n"),
                   "ocr.language", "more than once")

    def test_password_too_long(self, tmp_path: Path) -> None:
        """A password over 32 characters is refused, its length named, not its value."""
        found = problems(tmp_path, MINIMAL + f"ocr: {{password: '{'p' * 33}'}}\n")
        assert has(found, "ocr.password", "32", "33")
        assert "p" * 33 not in "\n".join(found)

    @pytest.mark.parametrize("url,words", [
        ("http://example.com", ("loopback", "127.0.0.0/8", "localhost", "::1")),
        ("ftp://example.com", ("http(s)",)),
        ("techhk.aoscdn.com", ("http(s)",)),
        ("https://example.com/?a=1", ("query",)),
        ("https://example.com:99999", ("not a valid URL",)),
    ])
    def test_base_url(self, tmp_path: Path, url: str, words: tuple[str, ...]) -> None:
        """Only http(s) URLs, and http only for loopback hosts."""
        assert has(problems(tmp_path, MINIMAL + f"  base_url: '{url}'\n"), "api.base_url", *words)

    def test_yaml_syntax_error_has_line_number(self, tmp_path: Path) -> None:
        """A parse error gives the line and column."""
        found = problems(tmp_path, "folders:\n  inbox: in\n  outbox: [out\n")
        assert len(found) == 1 and "YAML syntax error at line" in found[0]

    def test_unusable_path(self, tmp_path: Path) -> None:
        """A path with a NUL byte or a folder given as a number is named."""
        text = f'folders: {{inbox: "in\\0x", outbox: 5, quarantine: q}}\napi: {{key: {KEY}}}\n'
        found = problems(tmp_path, text)
        assert has(found, "folders.inbox", "not a usable path")
        assert has(found, "folders.outbox", "folder path", "5")

    def test_duplicate_key(self, tmp_path: Path) -> None:
        """A key given twice is reported with both lines instead of the last silently winning."""
        found = problems(tmp_path, MINIMAL + "pool: {max_in_flight: 2}\npool: {max_in_flight: x}\n")
        assert len(found) == 2 and has(found, "pool.max_in_flight", "'x'")
        assert found[0] == "pool: is given twice (on line 8 and line 9); keep one"

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file says what is required."""
        found = problems(tmp_path, "\n# nothing\n")
        assert "empty" in found[0] and "folders.inbox" in found[0]

    def test_top_level_not_a_mapping(self, tmp_path: Path) -> None:
        """A list at the top level is refused."""
        assert problems(tmp_path, "- a\n- b\n") == ["(top level): must be a mapping of keys, got list"]

    def test_missing_file(self, tmp_path: Path) -> None:
        """A config path that does not exist is a ConfigError naming it."""
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / "nope.yaml", env={})
        assert "nope.yaml" in info.value.problems[0]



class TestCallback:
    def test_defaults_callbacks_off(self, tmp_path: Path) -> None:
        """Without a callback section callbacks are off; listen and fallback have their defaults."""
        config = load_config(write(tmp_path, MINIMAL), env={})
        assert config.callback.url is None
        assert (config.callback.listen_host, config.callback.listen_port) == ("127.0.0.1", 8765)
        assert config.callback.fallback_seconds == 60
        assert "callbacks off" in describe(config)

    def test_https_url_with_query_kept(self, tmp_path: Path) -> None:
        """An https URL keeps its query string, stripped of spaces; describe leaves the query out."""
        text = MINIMAL + textwrap.dedent("""
        callback:
          url: '  https://ocr.example.com/cb?site=zz-query-token  '
          listen: '0.0.0.0:9000'
          fallback_seconds: 30.5
        """)
        config = load_config(write(tmp_path, text), env={})
        assert config.callback.url == "https://ocr.example.com/cb?site=zz-query-token"
        assert (config.callback.listen_host, config.callback.listen_port) == ("0.0.0.0", 9000)
        assert config.callback.fallback_seconds == 30.5
        shown = describe(config)
        assert "url: https://ocr.example.com/cb\n" in shown and "zz-query-token" not in shown
        assert "listen: 0.0.0.0:9000" in shown and "fallback_seconds: 30.5" in shown

    def test_loopback_http_allowed(self, tmp_path: Path) -> None:
        """Plain http is fine for a loopback callback URL (the emulator's tests)."""
        config = load_config(write(tmp_path, MINIMAL + "callback: {url: 'http://127.0.0.1:9/cb'}\n"),
                             env={})
        assert config.callback.url == "http://127.0.0.1:9/cb"

    def test_http_non_loopback_refused(self, tmp_path: Path) -> None:
        """http to another host would send the callback's secret in clear text."""
        found = problems(tmp_path, MINIMAL + "callback: {url: 'http://ocr.example.com/cb'}\n")
        assert has(found, "callback.url", "loopback", "https://", "callback's secret", "clear text")

    def test_userinfo_refused_without_echo(self, tmp_path: Path) -> None:
        """A user name and password in the URL are refused and not shown."""
        found = problems(tmp_path, MINIMAL + "callback: {url: 'https://bob:pw-ZZ-cb@example.com/cb'}\n")
        assert has(found, "callback.url", "user name or password")
        assert "pw-ZZ-cb" not in "\n".join(found) and "bob" not in "\n".join(found)

    @pytest.mark.parametrize("url,words", [
        ("https://example.com/cb#part", ("fragment",)),
        ("https://example.com/cb?a=1#part", ("fragment",)),
        ("ftp://example.com/cb", ("http(s)",)),
        ("/cb", ("http(s)", "host")),
        ("https://example.com:99999/cb", ("not a valid URL",)),
        (8080, ("http(s)", "8080")),
    ])
    def test_bad_url(self, tmp_path: Path, url: object, words: tuple[str, ...]) -> None:
        """Fragments, other schemes, relative URLs and bad ports are refused."""
        found = problems(tmp_path, MINIMAL + f"callback: {{url: {url!r}}}\n")
        assert has(found, "callback.url", *words)
        assert not any("query" in p for p in found)

    @pytest.mark.parametrize("listen,host,port", [
        ("[::1]:9000", "::1", 9000),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("localhost:65535", "localhost", 65535),
    ])
    def test_listen_forms(self, tmp_path: Path, listen: str, host: str, port: int) -> None:
        """host:port and [v6addr]:port; port 0 asks for any free port."""
        config = load_config(write(tmp_path, MINIMAL + f"callback: {{listen: '{listen}'}}\n"), env={})
        assert (config.callback.listen_host, config.callback.listen_port) == (host, port)
        assert yaml.safe_load(describe(config))["callback"]["listen"] == listen

    @pytest.mark.parametrize("listen", ["nohost", ":80", "h:99999", "h:x", "h:", "::1:80",
                                        "[nothex]:80", "h:-1", 8765])
    def test_bad_listen(self, tmp_path: Path, listen: object) -> None:
        """A missing host or port, a port out of range and an unbracketed IPv6 address are refused."""
        found = problems(tmp_path, MINIMAL + f"callback: {{listen: {listen!r}}}\n")
        assert found == [f"callback.listen: must be 'host:port' or '[v6addr]:port' (quoted) with a "
                         f"port 0..65535 (0: any free port), got {listen!r}"]

    def test_fallback_must_come_before_the_poll_timeout(self, tmp_path: Path) -> None:
        """A fallback at or after poll.timeout_seconds is refused, naming both keys."""
        text = MINIMAL + ("poll: {timeout_seconds: 45}\n"
                          "callback: {url: 'https://example.com/cb', fallback_seconds: 45}\n")
        found = problems(tmp_path, text)
        assert found == ["callback.fallback_seconds: must be < poll.timeout_seconds (45), got 45; "
                         "a task is quarantined at poll.timeout_seconds, so the fallback query "
                         "must come first"]

    def test_default_fallback_unchecked_while_off(self, tmp_path: Path) -> None:
        """With callbacks off, a poll.timeout_seconds below the default fallback is fine."""
        config = load_config(write(tmp_path, MINIMAL + "poll: {timeout_seconds: 30}\n"), env={})
        assert config.callback.url is None and config.poll.timeout_seconds == 30
        found = problems(tmp_path, MINIMAL + ("poll: {timeout_seconds: 30}\n"
                                              "callback: {url: 'https://example.com/cb'}\n"))
        assert has(found, "callback.fallback_seconds", "poll.timeout_seconds (30)", "got 60")

    def test_bad_fallback_and_unknown_key(self, tmp_path: Path) -> None:
        """A non-positive fallback and an unknown key are reported together with the other problems."""
        text = MINIMAL + ("poll: {timeout_seconds: 0}\n"
                          "callback: {url: 'https://example.com/cb', fallback_second: 5, "
                          "fallback_seconds: 0, listen: x}\n")
        found = problems(tmp_path, text)
        assert has(found, "callback.fallback_second", "unknown key", "did you mean 'fallback_seconds'")
        assert has(found, "callback.fallback_seconds", "> 0")
        assert has(found, "callback.listen", "host:port")
        assert has(found, "poll.timeout_seconds", "> 0")
        assert len(found) == 4

    def test_callback_section_must_be_a_mapping(self, tmp_path: Path) -> None:
        """The section name is known at the top level; a misspelling is suggested, a scalar refused."""
        assert has(problems(tmp_path, MINIMAL + "callbacks: {}\n"), "callbacks", "did you mean 'callback'")
        assert has(problems(tmp_path, MINIMAL + "callback: 'https://example.com/cb'\n"),
                   "callback", "mapping")

class TestFolderRelations:
    def base(self, **folders: str) -> str:
        lines = "\n".join(f"  {k}: {v}" for k, v in folders.items())
        return f"folders:\n{lines}\napi:\n  key: {KEY}\n"

    def test_outbox_inside_inbox_would_loop(self, tmp_path: Path) -> None:
        """The outbox inside the inbox would feed results back in."""
        found = problems(tmp_path, self.base(inbox="in", outbox="in/out", quarantine="q"))
        assert has(found, "folders.outbox", "is inside folders.inbox", "feed results back in")

    def test_quarantine_archive_state_inside_inbox(self, tmp_path: Path) -> None:
        """Quarantine, archive and state_dir inside the inbox are all named."""
        text = self.base(inbox="in", outbox="out", quarantine="in/q", archive="in/a/b")
        found = problems(tmp_path, text + "state_dir: in/.state\n")
        assert has(found, "folders.quarantine", "inside folders.inbox")
        assert has(found, "folders.archive", "inside folders.inbox")
        assert has(found, "state_dir", "inside folders.inbox")

    def test_inbox_inside_another_folder(self, tmp_path: Path) -> None:
        """The inbox inside the outbox is named as a problem of folders.inbox."""
        found = problems(tmp_path, self.base(inbox="out/in", outbox="out", quarantine="q"))
        assert has(found, "folders.inbox", "inside folders.outbox")

    def test_same_path_twice(self, tmp_path: Path) -> None:
        """Two keys pointing at one folder are refused, even spelled differently."""
        found = problems(tmp_path, self.base(inbox="in", outbox="out", quarantine="./out/"))
        assert has(found, "folders.quarantine", "same folder as folders.outbox")

    def test_unused_default_archive_is_not_checked(self, tmp_path: Path) -> None:
        """With on_success: keep, the default archive may coincide with another folder."""
        text = self.base(inbox="in", outbox="archive", quarantine="q") + "on_success: keep\n"
        assert load_config(write(tmp_path, text), env={}).on_success == "keep"
        with pytest.raises(ConfigError):
            load_config(write(tmp_path, self.base(inbox="in", outbox="archive", quarantine="q")),
                        env={})

    def test_sibling_names_are_not_inside(self, tmp_path: Path) -> None:
        """'inbox2' is not inside 'inbox': containment is by path component."""
        config = load_config(write(tmp_path, self.base(inbox="in", outbox="in2", quarantine="q")),
                             env={})
        assert config.folders.outbox.name == "in2"


class TestPrepareFolders:
    def config(self, tmp_path: Path, extra: str = "") -> Config:
        return load_config(write(tmp_path, MINIMAL + extra), env={})

    def test_creates_all_folders(self, tmp_path: Path) -> None:
        """Every folder and the state dir are created; no probe file is left behind."""
        config = self.config(tmp_path)
        prepare_folders(config)
        for path in (config.folders.inbox, config.folders.outbox, config.folders.quarantine,
                     config.folders.archive, config.state_dir):
            assert path.is_dir()
            assert list(path.iterdir()) == []

    def test_archive_not_created_when_unused(self, tmp_path: Path) -> None:
        """With on_success: delete there is no archive folder to create."""
        config = self.config(tmp_path, "on_success: delete\n")
        prepare_folders(config)
        assert not config.folders.archive.exists()

    def test_file_in_the_way_and_unwritable(self, tmp_path: Path) -> None:
        """A file where a folder should be, and a read-only folder, are both named."""
        config = self.config(tmp_path)
        config.folders.outbox.write_text("not a folder")
        config.folders.quarantine.mkdir()
        config.folders.quarantine.chmod(0o500)
        try:
            if os.access(config.folders.quarantine, os.W_OK):
                pytest.skip("running as root: permissions are not enforced")
            with pytest.raises(ConfigError) as info:
                prepare_folders(config)
        finally:
            config.folders.quarantine.chmod(0o700)
        found = info.value.problems
        assert has(found, "folders.outbox", "is a file")
        assert has(found, "folders.quarantine", "not writable")

    def test_unwritable_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A folder where the probe file cannot be created is named as not writable."""
        config = self.config(tmp_path)
        real_open = os.open

        def refuse_probe(path: object, flags: int, mode: int = 0o777) -> int:
            if ".ocr-watch-probe-" in str(path) and Path(str(path)).parent == config.folders.outbox:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, mode)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", refuse_probe)
        with pytest.raises(ConfigError) as info:
            prepare_folders(config)
        assert info.value.problems == [
            f"folders.outbox: {config.folders.outbox} is not writable: Permission denied"]

    def test_file_in_the_way(self, tmp_path: Path) -> None:
        """A file where a folder should be, or in its parent path, names the key."""
        config = self.config(tmp_path)
        config.folders.outbox.write_text("x")
        config.state_dir.parent.mkdir()  # the default state_dir is .ocr-watch/<inbox name>
        config.state_dir.write_text("x")
        with pytest.raises(ConfigError) as info:
            prepare_folders(config)
        assert has(info.value.problems, "folders.outbox", "is a file")
        assert has(info.value.problems, "state_dir", "is a file")

    def test_parent_is_a_file(self, tmp_path: Path) -> None:
        """A folder that cannot be created because a parent is a file is named."""
        (tmp_path / "blocker").write_text("x")
        config = self.config(tmp_path, "state_dir: blocker/state\n")
        with pytest.raises(ConfigError) as info:
            prepare_folders(config)
        assert has(info.value.problems, "state_dir", "cannot be created")


class TestDescribe:
    def test_describe_round_trips(self, tmp_path: Path) -> None:
        """describe() is YAML with every default; with the key put back it loads to the same config."""
        config = load_config(write(tmp_path, MINIMAL), env={})
        text = describe(config)
        assert "max_in_flight: 32" in text and "settle_seconds: 2.0" in text
        restored = text.replace("key: '***'", f"key: {KEY}")
        assert load_config(write(tmp_path, restored, "again.yaml"), env={}) == \
            Config(**{**config.__dict__, "path": (tmp_path / "again.yaml").resolve()})

    def test_describe_round_trips_with_callbacks_on(self, tmp_path: Path) -> None:
        """With callbacks on (no query string), describe() loads back to the same config too."""
        text = MINIMAL + ("callback: {url: 'https://example.com/cb', listen: '[::1]:0', "
                          "fallback_seconds: 20}\n")
        config = load_config(write(tmp_path, text), env={})
        restored = describe(config).replace("key: '***'", f"key: {KEY}")
        assert load_config(write(tmp_path, restored, "again.yaml"), env={}) == \
            Config(**{**config.__dict__, "path": (tmp_path / "again.yaml").resolve()})

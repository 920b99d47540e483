"""Tests for the jobs: configuration (issue 18): reading, every problem named by its dotted key,
folder relations across jobs, rule matching, a file's options, describe with secrets masked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ocr_watch.config import (
    SIMPLE_JOB,
    Config,
    ConfigError,
    Secret,
    describe,
    load_config,
    plan_folders,
    resolve_options,
    secrets_in,
)
from ocr_watch.config.globs import Glob, GlobError

pytestmark = pytest.mark.timeout(10)

KEY = "ZZ-shared-key-7Q3"
JOB_KEY = "ZZ-contracts-key-9X1"
PASSWORD = "ZZ-pw-contracts"


def write(tmp_path: Path, text: str, name: str = "ocr-watch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    for secret in (KEY, JOB_KEY, PASSWORD):
        assert secret not in str(info.value)
    return info.value.problems


def has(found: list[str], key: str, *words: str) -> bool:
    return any(p.startswith(f"{key}:") and all(w in p for w in words) for p in found)


def hook(tmp_path: Path, name: str = "hook.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def three_jobs(tmp_path: Path) -> str:
    """The issue's example, with files that exist: a hook, a password file, a job's key file."""
    hook(tmp_path)
    (tmp_path / "contracts.pw").write_text(PASSWORD + "\n")
    (tmp_path / "contracts.key").write_text(JOB_KEY + "\n")
    return textwrap.dedent(f"""
    jobs:
      invoices:
        folders: {{inbox: scans/invoices, outbox: out/invoices, quarantine: q/invoices}}
        ocr: {{format: xlsx, language: "English,Digits"}}
        on_success: delete
      contracts:
        folders: {{inbox: scans/contracts, outbox: out/contracts, quarantine: q/contracts}}
        ocr: {{format: [pdf, txt]}}
        on_success: archive
        rules:
          - match: "china/**"
            ocr: {{language: "ChinesePRC,English,Digits"}}
          - match: "**/*-secret.pdf"
            ocr: {{password_file: contracts.pw}}
        hooks:
          on_done: [./hook.sh, --job, contracts]
          on_quarantine: [{tmp_path}/hook.sh]
        api: {{key_file: contracts.key}}
      letters:
        folders: {{inbox: scans/letters, outbox: out/letters, quarantine: q/letters}}
        ocr: {{format: docx}}
    api: {{key: {KEY}}}
    """)


class TestReading:
    def test_three_jobs_are_read_in_order_with_their_options(self, tmp_path: Path) -> None:
        """Each job gets its folders, formats, on_success, rules, hooks and key, in file order."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        assert [job.name for job in config.jobs] == ["invoices", "contracts", "letters"]
        invoices, contracts, letters = config.jobs
        root = tmp_path.resolve()
        assert invoices.folders.inbox == root / "scans/invoices"
        assert invoices.ocr.formats == ("xlsx",) and invoices.ocr.language == "English,Digits"
        assert invoices.on_success == "delete" and invoices.rules == () and invoices.api_key is None
        assert contracts.ocr.formats == ("pdf", "txt")
        assert contracts.ocr.language == "ChinesePRC,English,Digits"  # the default
        assert [rule.match.text for rule in contracts.rules] == ["china/**", "**/*-secret.pdf"]
        assert contracts.rules[0].ocr.formats is None and contracts.rules[0].ocr.password is None
        assert contracts.rules[1].ocr.password == Secret(PASSWORD)  # read at load, newline dropped
        assert contracts.hooks.on_done == (str(root / "hook.sh"), "--job", "contracts")
        assert contracts.hooks.on_quarantine == (str(root / "hook.sh"),)
        assert contracts.hooks.timeout_seconds == 60
        assert contracts.api_key == Secret(JOB_KEY)
        assert letters.hooks.on_done is None and letters.on_success == "archive"
        assert config.api.key == Secret(KEY)
        assert not config.simple

    def test_the_one_job_accessors_refuse_several(self, tmp_path: Path) -> None:
        """config.folders is the simple setup's one job's; with several, asking is a bug of the
        caller, not an answer about the first job."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        with pytest.raises(ValueError, match=r"3 jobs; use config\.jobs"):
            config.folders  # noqa: B018
        assert config.ocr is config.jobs[0].ocr and config.ocr.format == "xlsx"

    def test_the_simple_setup_is_one_job_named_default(self, tmp_path: Path) -> None:
        """Top-level folders/ocr/on_success are one job, its keys unprefixed; the old names work."""
        text = f"""
        folders: {{inbox: in, outbox: out, quarantine: q}}
        ocr: {{format: docx, language: English}}
        on_success: keep
        api: {{key: {KEY}}}
        """
        config = load_config(write(tmp_path, text), env={})
        (job,) = config.jobs
        assert (job.name, job.prefix, config.simple) == (SIMPLE_JOB, "", True)
        assert config.folders is job.folders and config.ocr is job.ocr
        assert config.on_success == "keep" and config.ocr.format == "docx"
        assert job.rules == () and job.hooks.on_done is None and job.api_key is None

    def test_each_job_gets_its_own_default_archive(self, tmp_path: Path) -> None:
        """Sibling inboxes archive to <parent>/archive/<inbox name>, not one shared folder."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        archives = [job.folders.archive for job in config.jobs]
        assert archives == [tmp_path.resolve() / "scans/archive" / name
                            for name in ("invoices", "contracts", "letters")]

    def test_a_password_may_be_given_inline_and_the_job_key_inline(self, tmp_path: Path) -> None:
        """ocr.password and api.key work in a job too; password_file works at the top level."""
        (tmp_path / "pw").write_text("top-pw")
        text = f"""
        jobs:
          a:
            folders: {{inbox: a/in, outbox: a/out, quarantine: a/q}}
            ocr: {{password: {PASSWORD}}}
            api: {{key: {JOB_KEY}}}
        api: {{key: {KEY}}}
        """
        (job,) = load_config(write(tmp_path, text), env={}).jobs
        assert job.ocr.password == Secret(PASSWORD) and job.api_key == Secret(JOB_KEY)
        simple = (f"folders: {{inbox: in, outbox: out, quarantine: q}}\nocr: {{password_file: pw}}\n"
                  f"api: {{key: {KEY}}}\n")
        assert load_config(write(tmp_path, simple), env={}).ocr.password == Secret("top-pw")

    def test_the_environment_key_is_not_a_jobs_key(self, tmp_path: Path) -> None:
        """PICWISH_API_KEY is the shared key; a job without api.key uses that, not its own."""
        text = three_jobs(tmp_path).replace(f"api: {{key: {KEY}}}", "")
        config = load_config(write(tmp_path, text), env={"PICWISH_API_KEY": KEY})
        assert config.api.key == Secret(KEY)
        assert [job.api_key for job in config.jobs] == [None, Secret(JOB_KEY), None]

    def test_every_secret_is_found_for_the_log_redaction(self, tmp_path: Path) -> None:
        """secrets_in(config) lists the shared key, a job's key and a rule's password."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        assert sorted(s.reveal() for s in secrets_in(config)) == sorted([KEY, JOB_KEY, PASSWORD])


class TestStateDir:
    def test_jobs_share_one_state_dir_beside_the_config_file(self, tmp_path: Path) -> None:
        """With jobs, the default state_dir is <config folder>/.ocr-watch/<config stem>.jobs."""
        config = load_config(write(tmp_path, three_jobs(tmp_path), "office.yaml"), env={})
        assert config.state_dir == tmp_path.resolve() / ".ocr-watch" / "office.jobs"
        assert not config.state_dir_legacy

    def test_reordering_or_adding_jobs_does_not_move_it(self, tmp_path: Path) -> None:
        """Derived from no job: adding a job first keeps the journal where it was."""
        text = three_jobs(tmp_path)
        before = load_config(write(tmp_path, text), env={}).state_dir
        first = "jobs:\n  aaa:\n    folders: {inbox: scans/aaa, outbox: out/aaa, quarantine: q/aaa}\n"
        added = text.replace("jobs:\n", first, 1)
        config = load_config(write(tmp_path, added), env={})
        assert config.jobs[0].name == "aaa" and config.state_dir == before

    def test_two_configurations_in_one_folder_do_not_share_it(self, tmp_path: Path) -> None:
        """Two jobs files side by side, or a jobs file beside a simple setup, get their own."""
        text = three_jobs(tmp_path)
        one = load_config(write(tmp_path, text, "one.yaml"), env={}).state_dir
        two = load_config(write(tmp_path, text, "two.yaml"), env={}).state_dir
        simple = f"folders: {{inbox: one, outbox: out1, quarantine: q1}}\napi: {{key: {KEY}}}\n"
        three = load_config(write(tmp_path, simple, "three.yaml"), env={}).state_dir
        assert len({one, two, three}) == 3

    def test_a_given_state_dir_is_used(self, tmp_path: Path) -> None:
        config = load_config(write(tmp_path, three_jobs(tmp_path) + "state_dir: /var/lib/x\n"), env={})
        assert config.state_dir == Path("/var/lib/x")


class TestErrors:
    def test_many_problems_at_once_each_named_by_its_dotted_key(self, tmp_path: Path) -> None:
        """Unknown keys, names, formats, languages, globs, hooks and keys: all in one error."""
        hook(tmp_path)
        (tmp_path / "plain.txt").write_text("not executable")
        text = f"""
        jobs:
          Invoices:
            folders: {{inbox: in1, outbox: out1, quarantine: q1}}
            ocr: {{format: [pdf, odt], languag: English}}
          contracts:
            folder: {{inbox: in2}}
            ocr: {{format: [txt, txt], language: "English,Klingon"}}
            on_succes: keep
            rules:
              - match: "china/**"
                ocr: {{language: Chinese}}
              - match: "[unclosed.pdf"
                ocr: {{password: {PASSWORD}, password_file: missing.pw}}
              - ocr: {{format: rtf}}
                matches: "x"
            hooks:
              on_done: "hook.sh --job contracts"
              on_quarantine: [file-to-dms]
              timeout_seconds: 0
              on_error: [./hook.sh]
            api: {{key: {JOB_KEY}, key_file: k, base_url: "https://x"}}
          letters:
            folders: {{inbox: in3, outbox: out3, quarantine: q3}}
            hooks: {{on_done: [./plain.txt]}}
            rules: {{match: "*"}}
        api: {{key: {KEY}}}
        """
        found = problems(tmp_path, text)
        assert has(found, "jobs.Invoices", "a-z, 0-9", "did you mean 'invoices'")
        assert has(found, "jobs.Invoices.ocr.format", "txt | pdf | docx | xlsx | pptx", "'odt'")
        assert has(found, "jobs.Invoices.ocr.languag", "unknown key", "did you mean 'language'")
        assert has(found, "jobs.contracts.folder", "unknown key", "did you mean 'folders'")
        assert has(found, "jobs.contracts.folders.inbox", "is required")
        assert has(found, "jobs.contracts.folders.outbox", "is required")
        assert has(found, "jobs.contracts.folders.quarantine", "is required")
        assert has(found, "jobs.contracts.ocr.format", "txt more than once")
        assert has(found, "jobs.contracts.ocr.language", "'Klingon'")
        assert has(found, "jobs.contracts.on_succes", "did you mean 'on_success'")
        assert has(found, "jobs.contracts.rules[0].ocr.language", "'Chinese'", "did you mean")
        assert has(found, "jobs.contracts.rules[1].match", "unclosed '['")
        assert has(found, "jobs.contracts.rules[1].ocr.password", "both", "keep one")
        assert has(found, "jobs.contracts.rules[2].match", "is required")
        assert has(found, "jobs.contracts.rules[2].matches", "did you mean 'match'")
        assert has(found, "jobs.contracts.rules[2].ocr.format", "'rtf'")
        assert has(found, "jobs.contracts.hooks.on_done", "list of strings")
        assert has(found, "jobs.contracts.hooks.on_quarantine", "must be a path", "no PATH lookup")
        assert has(found, "jobs.contracts.hooks.timeout_seconds", "> 0")
        assert has(found, "jobs.contracts.hooks.on_error", "unknown key", "on_done")
        assert has(found, "jobs.contracts.api.key", "more than one", "jobs.contracts.api.key_file")
        assert has(found, "jobs.contracts.api.base_url", "unknown key", "known keys: key, key_file")
        assert has(found, "jobs.letters.hooks.on_done", "plain.txt", "not an executable file")
        assert has(found, "jobs.letters.rules", "must be a list of rules")
        assert len(found) == 24

    def test_top_level_job_keys_cannot_be_combined_with_jobs(self, tmp_path: Path) -> None:
        """folders, ocr and on_success beside jobs: each named, not silently ignored or merged."""
        text = three_jobs(tmp_path) + "folders: {inbox: x}\nocr: {format: pdf}\non_success: keep\n"
        found = problems(tmp_path, text)
        for key in ("folders", "ocr", "on_success"):
            assert has(found, key, "cannot be combined with jobs", f"jobs.<name>.{key}")
        assert len(found) == 3

    def test_rules_and_hooks_at_the_top_level_say_where_they_belong(self, tmp_path: Path) -> None:
        text = f"folders: {{inbox: in, outbox: out, quarantine: q}}\napi: {{key: {KEY}}}\nrules: []\nhooks: {{}}\n"
        found = problems(tmp_path, text)
        assert has(found, "rules", "unknown key", "rules belong to a job", "jobs: {<name>:")
        assert has(found, "hooks", "unknown key", "hooks belong to a job")
        assert len(found) == 2

    def test_jobs_must_be_a_non_empty_mapping(self, tmp_path: Path) -> None:
        for value in ("[a, b]", "{}", "x", "0"):
            found = problems(tmp_path, f"jobs: {value}\napi: {{key: {KEY}}}\n")
            assert len(found) == 1 and has(found, "jobs", "mapping of job names")

    def test_a_name_yaml_reads_as_no_string_is_named(self, tmp_path: Path) -> None:
        """'no:' is False in YAML: the message says to quote it; a quoted 'no' is a fine name."""
        job = "{folders: {inbox: in, outbox: out, quarantine: q}}"
        found = problems(tmp_path, f"jobs:\n  no: {job}\napi: {{key: {KEY}}}\n")
        assert found == ["jobs.False: a job's name must be a string, got bool; quote names YAML "
                         "reads as something else ('no', 'on', '1')"]
        config = load_config(write(tmp_path, f"jobs:\n  'no': {job}\napi: {{key: {KEY}}}\n"), env={})
        assert config.jobs[0].name == "no"
        assert "  'no':\n" in describe(config)

    def test_duplicate_job_names_are_named_by_their_dotted_key(self, tmp_path: Path) -> None:
        """A job given twice is not silently replaced by the second: both lines are named."""
        text = f"""\
        jobs:
          contracts:
            folders: {{inbox: a, outbox: b, quarantine: c}}
          contracts:
            folders: {{inbox: d, outbox: e, quarantine: f}}
            rules:
              - match: x
                match: y
        api: {{key: {KEY}}}
        """
        found = problems(tmp_path, text)
        assert "jobs.contracts: is given twice (on line 2 and line 4); keep one" in found
        assert "jobs.contracts.rules[0].match: is given twice (on line 7 and line 8); keep one" in found

    def test_a_yaml_merge_may_be_overridden(self, tmp_path: Path) -> None:
        """Settings shared by anchors (<<: *common) and then overridden are not duplicates."""
        text = f"""
        common: &common
          format: pdf
          language: English
        jobs:
          a:
            folders: {{inbox: a/in, outbox: a/out, quarantine: a/q}}
            ocr: {{<<: *common, format: txt}}
        api: {{key: {KEY}}}
        """
        found = problems(tmp_path, text)
        assert found == ["common: unknown key; known keys: jobs, folders, on_success, ocr, state_dir, "
                         "api, pool, poll, callback, watch, retry, metrics, account, log_level"]


class TestFolderRelations:
    def jobs(self, **inboxes: dict[str, str]) -> str:
        lines = ["jobs:"]
        for name, folders in inboxes.items():
            lines.append(f"  {name}:\n    folders: {{{', '.join(f'{k}: {v}' for k, v in folders.items())}}}")
        return "\n".join(lines) + f"\napi: {{key: {KEY}}}\n"

    def test_a_folder_used_by_two_jobs(self, tmp_path: Path) -> None:
        """One quarantine for two jobs, and two jobs on one inbox, name the second job's key."""
        text = self.jobs(a={"inbox": "in", "outbox": "out/a", "quarantine": "q"},
                         b={"inbox": "./in/", "outbox": "out/b", "quarantine": "q"})
        found = problems(tmp_path, text)
        assert has(found, "jobs.b.folders.inbox", "same folder as jobs.a.folders.inbox")
        assert has(found, "jobs.b.folders.quarantine", "same folder as jobs.a.folders.quarantine")

    def test_an_explicit_archive_shared_and_state_dir_as_a_jobs_folder(self, tmp_path: Path) -> None:
        text = self.jobs(a={"inbox": "a/in", "outbox": "a/out", "quarantine": "a/q", "archive": "arch"},
                         b={"inbox": "b/in", "outbox": "b/out", "quarantine": "b/q", "archive": "arch"})
        found = problems(tmp_path, text + "state_dir: b/out\n")
        assert has(found, "jobs.b.folders.archive", "same folder as jobs.a.folders.archive")
        assert has(found, "state_dir", "same folder as jobs.b.folders.outbox")

    def test_an_inbox_inside_another_jobs_inbox(self, tmp_path: Path) -> None:
        """The inner inbox would be watched twice: the message points to a rule instead."""
        text = self.jobs(all={"inbox": "scans", "outbox": "out/all", "quarantine": "q/all"},
                         china={"inbox": "scans/china", "outbox": "out/china", "quarantine": "q/china"})
        found = problems(tmp_path, text)
        assert has(found, "jobs.china.folders.inbox", "inside jobs.all.folders.inbox",
                   "another job's folder", "rule (match: 'sub/**')")

    def test_outputs_and_quarantines_inside_another_jobs_folders(self, tmp_path: Path) -> None:
        """An outbox in another's outbox, a quarantine in another's inbox, an inbox in another's
        archive: each named on the folder that lies inside."""
        text = self.jobs(a={"inbox": "a/in", "outbox": "out", "quarantine": "a/q"},
                         b={"inbox": "b/in", "outbox": "out/b", "quarantine": "a/in/q"},
                         c={"inbox": "b/archive/in/c", "outbox": "c/out", "quarantine": "c/q"})
        found = problems(tmp_path, text)
        assert has(found, "jobs.b.folders.outbox", "inside jobs.a.folders.outbox")
        assert has(found, "jobs.b.folders.quarantine", "inside jobs.a.folders.inbox")
        assert has(found, "jobs.c.folders.inbox", "inside jobs.b.folders.archive")

    def test_within_a_job_as_before_and_state_dir_in_any_inbox(self, tmp_path: Path) -> None:
        text = self.jobs(a={"inbox": "a/in", "outbox": "a/in/out", "quarantine": "a/q"},
                         b={"inbox": "b/in", "outbox": "b/out", "quarantine": "b/q"})
        found = problems(tmp_path, text + "state_dir: b/in/.state\n")
        assert has(found, "jobs.a.folders.outbox", "inside jobs.a.folders.inbox", "feed results back in")
        assert has(found, "state_dir", "inside jobs.b.folders.inbox")
        assert len(found) == 2

    def test_jobs_side_by_side_are_fine_and_planned_by_their_keys(self, tmp_path: Path) -> None:
        """Sibling folders ('in' and 'in2') are apart; plan_folders names each job's key."""
        text = self.jobs(a={"inbox": "in", "outbox": "out", "quarantine": "q"},
                         b={"inbox": "in2", "outbox": "out2", "quarantine": "q2"})
        config = load_config(write(tmp_path, text), env={})
        planned = dict(plan_folders(config))
        assert planned["jobs.b.folders.inbox"] == tmp_path.resolve() / "in2"
        assert planned["jobs.a.folders.archive"] == tmp_path.resolve() / "archive/in"
        assert planned["state_dir"] == tmp_path.resolve() / ".ocr-watch/ocr-watch.jobs"
        assert len(planned) == 9


class TestGlob:
    @pytest.mark.parametrize("pattern,path,expected", [
        ("china/**", "china/a.pdf", True),
        ("china/**", "china/x/y/a.pdf", True),
        ("china/**", "a.pdf", False),
        ("china/**", "chinax/a.pdf", False),
        ("china/**", "hk/china/a.pdf", False),  # anchored at the inbox
        ("**/*-secret.pdf", "a-secret.pdf", True),  # ** is zero folders too
        ("**/*-secret.pdf", "x/y/a-secret.pdf", True),
        ("**/*-secret.pdf", "x/a-secret.pdf.txt", False),
        ("**/*-secret.pdf", "x/a-Secret.pdf", False),  # case-sensitive
        ("*.pdf", "a.pdf", True),
        ("*.pdf", "x/a.pdf", False),  # * does not cross '/' (fnmatch's would)
        ("a/**/b/*.pdf", "a/b/c.pdf", True),
        ("a/**/b/*.pdf", "a/x/y/b/c.pdf", True),
        ("a/**/b/*.pdf", "a/x/yb/c.pdf", False),
        ("scan-??.pdf", "scan-01.pdf", True),
        ("scan-??.pdf", "scan-1.pdf", False),
        ("[!x]*.[pP][dD][fF]", "a.PDF", True),
        ("[!x]*.[pP][dD][fF]", "x.pdf", False),
        ("[]]*", "]a", True),
        ("*.pdf", ".hidden.pdf", True),
        ("a+(b).pdf", "a+(b).pdf", True),  # regex characters are literal
        ("**", "any/thing.pdf", True),
    ])
    def test_matching(self, pattern: str, path: str, expected: bool) -> None:
        assert Glob.parse(pattern).matches(path) is expected

    @pytest.mark.parametrize("pattern,words", [
        ("", "empty"), ("/abs/*", "relative"), ("china/", "'china/**'"), ("a//b", "empty"),
        ("../x", "'..'"), ("a\\b", "backslash"), ("a**/b", "whole folder name"),
        ("[ab", "unclosed"), ("[z-a]", "not a valid pattern"),
    ])
    def test_refused(self, pattern: str, words: str) -> None:
        with pytest.raises(GlobError, match=words.replace("*", r"\*")):
            Glob.parse(pattern)

    def test_equal_by_text(self) -> None:
        assert Glob.parse("a/*") == Glob.parse("a/*") != Glob.parse("a/?")


class TestResolveOptions:
    def config(self, tmp_path: Path) -> Config:
        return load_config(write(tmp_path, three_jobs(tmp_path)), env={})

    def test_no_rule_matches_gives_the_jobs_options(self, tmp_path: Path) -> None:
        contracts = self.config(tmp_path).jobs[1]
        options = resolve_options(contracts, "letters/a.pdf")
        assert options.formats == ("pdf", "txt") and options.password is None
        assert options.language == "ChinesePRC,English,Digits" and options.rule is None

    def test_a_rule_overrides_only_what_it_says(self, tmp_path: Path) -> None:
        contracts = self.config(tmp_path).jobs[1]
        options = resolve_options(contracts, Path("x/deal-secret.pdf"))
        assert options.password == Secret(PASSWORD) and options.rule == 1
        assert options.formats == ("pdf", "txt") and options.rule == 1

    def test_the_first_matching_rule_wins(self, tmp_path: Path) -> None:
        """china/deal-secret.pdf matches both rules: the first decides, the second is not merged."""
        contracts = self.config(tmp_path).jobs[1]
        options = resolve_options(contracts, "china/deal-secret.pdf")
        assert options.rule == 0 and options.password is None
        assert options.language == "ChinesePRC,English,Digits"

    def test_a_rule_can_change_the_formats(self, tmp_path: Path) -> None:
        text = f"""
        folders: {{inbox: in, outbox: out, quarantine: q}}
        api: {{key: {KEY}}}
        """
        assert resolve_options(load_config(write(tmp_path, text), env={}).jobs[0], "a.pdf").formats == ("txt",)
        job_text = f"""
        jobs:
          a:
            folders: {{inbox: in, outbox: out, quarantine: q}}
            ocr: {{language: German}}
            rules: [{{match: "excel/*", ocr: {{format: [xlsx, pdf]}}}}]
        api: {{key: {KEY}}}
        """
        job = load_config(write(tmp_path, job_text), env={}).jobs[0]
        options = resolve_options(job, "excel/a.png")
        assert (options.formats, options.language) == (("xlsx", "pdf"), "German")

    @pytest.mark.parametrize("path", ["/srv/in/a.pdf", "../a.pdf", "", "."])
    def test_only_paths_below_the_inbox(self, tmp_path: Path, path: str) -> None:
        with pytest.raises(ValueError, match="below the inbox"):
            resolve_options(self.config(tmp_path).jobs[1], path)


class TestDescribe:
    def test_jobs_are_shown_with_secrets_masked(self, tmp_path: Path) -> None:
        """Each job under its name; the shared key, a job's key and a rule's password masked."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        text = describe(config)
        for secret in (KEY, JOB_KEY, PASSWORD):
            assert secret not in text and secret not in repr(config)
        shown = yaml.safe_load(text)
        assert "folders" not in shown and list(shown["jobs"]) == ["invoices", "contracts", "letters"]
        contracts = shown["jobs"]["contracts"]
        assert contracts["ocr"]["format"] == ["pdf", "txt"]
        assert shown["jobs"]["invoices"]["ocr"]["format"] == "xlsx"
        assert contracts["rules"] == [
            {"match": "china/**", "ocr": {"language": "ChinesePRC,English,Digits"}},
            {"match": "**/*-secret.pdf", "ocr": {"password": "***"}}]
        assert contracts["hooks"]["on_done"][1:] == ["--job", "contracts"]
        assert contracts["api"] == {"key": "***"} and shown["api"]["key"] == "***"
        assert shown["state_dir"] == str(config.state_dir)

    def test_describe_round_trips(self, tmp_path: Path) -> None:
        """With the secrets put back, describe()'s output loads to the same jobs."""
        config = load_config(write(tmp_path, three_jobs(tmp_path)), env={})
        text = describe(config).replace("\n  key: '***'", f"\n  key: {KEY}")
        text = text.replace("key: '***'", f"key: {JOB_KEY}").replace("password: '***'", f"password: {PASSWORD}")
        again = load_config(write(tmp_path, text, "again.yaml"), env={})
        assert again == Config(**{**config.__dict__, "path": (tmp_path / "again.yaml").resolve()})


def test_the_example_jobs_block_loads(tmp_path: Path) -> None:
    """config.example.yaml's commented jobs, uncommented in place of the simple setup, load
    (its programs and secret files moved below tmp_path, where they exist)."""
    lines = (Path(__file__).resolve().parents[1] / "config.example.yaml").read_text().splitlines()
    start = lines.index("# jobs:")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("#"))
    block = "\n".join(line[2:] for line in lines[start:end])
    block = block.replace("/usr/local/bin/", f"{tmp_path}/").replace("/etc/ocr-watch/", f"{tmp_path}/")
    for name in ("file-to-dms", "notify-office"):
        hook(tmp_path, name)
    (tmp_path / "contracts.pw").write_text(PASSWORD)
    (tmp_path / "contracts-key").write_text(JOB_KEY)
    config = load_config(write(tmp_path, f"{block}\napi: {{key: {KEY}}}\n"), env={})
    assert [job.name for job in config.jobs] == ["invoices", "contracts"]
    assert resolve_options(config.jobs[1], "x/a-secret.pdf").password == Secret(PASSWORD)


def test_check_config_shows_the_jobs_masked(tmp_path: Path) -> None:
    """`check-config` exits 0 and prints every job, its secrets masked (tests/e2e/test_jobs.py
    runs them)."""
    config = write(tmp_path, three_jobs(tmp_path))
    checked = subprocess.run([sys.executable, "-m", "ocr_watch", "check-config", "--config", str(config)],
                             capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0, checked.stderr
    assert "  contracts:\n" in checked.stdout and "# run would create jobs.letters.folders.inbox" in checked.stdout
    for secret in (KEY, JOB_KEY, PASSWORD):
        assert secret not in checked.stdout + checked.stderr

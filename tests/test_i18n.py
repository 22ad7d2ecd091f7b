"""English and Vietnamese: every message has both translations, the language comes from
--lang or the locale, and switching it changes only labels and text, never a data field."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from click.testing import CliRunner

from cli.main import cli
from hashing import i18n
from hashing.hasher import HashOptions, hash_path
from index.bank_import import ImportOptions
from index.banks import BankStore
from index.categories import builtin_labels
from synthetic_fixtures.evidence import make_evidence
from triage.pipeline import ScanConfig, regenerate_outputs, run_scan
from triage.reports.summary import stable_view

ROOT = Path(__file__).resolve().parent.parent


def _extracted() -> set[Message]:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from update_catalogs import extract
    finally:
        sys.path.pop(0)
    return {m.id for m in extract() if m.id}


Message = str | tuple[str, ...]


def _catalog(lang: str) -> dict[Message, Message]:
    with open(i18n.po_path(lang), "rb") as fh:
        return {m.id: tuple(m.string) if isinstance(m.string, list | tuple) else m.string
                for m in read_po(fh, locale=lang) if m.id}


def _forms(text: Message) -> tuple[str, ...]:
    return text if isinstance(text, tuple) else (text,)


def _fields(text: Message) -> set[str]:
    return {f for form in _forms(text) for _, f, _, _ in string.Formatter().parse(form)
            if f is not None}


@pytest.fixture(autouse=True)
def english_after() -> object:
    yield
    i18n.set_language("en")


def test_every_message_has_both_translations() -> None:
    messages = _extracted()
    assert len(messages) > 100 and set(builtin_labels()) <= messages
    for lang in i18n.LANGUAGES:
        catalog = _catalog(lang)
        missing = sorted(str(m) for m in messages if not all(_forms(catalog.get(m, ""))))
        assert missing == [], (lang, missing)
        for m in messages:  # a translation keeps every placeholder, and only those
            assert _fields(catalog[m]) == _fields(m), (lang, m, catalog[m])
    vi = _catalog("vi")
    assert vi["child abuse material"] != "child abuse material"
    assert sum(vi[m] != m for m in messages) > 0.9 * len(messages)


def test_language_from_option_and_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert i18n.from_environment() == "en"
    monkeypatch.setenv("LANG", "vi_VN.UTF-8")
    assert i18n.from_environment() == "vi"
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    assert i18n.from_environment() == "en"  # a locale we do not translate: English
    i18n.set_language("vi")
    assert i18n._("Legend") == "Chú giải"
    with pytest.raises(i18n.LanguageError):
        i18n.set_language("xx")


def test_po_compiled_in_memory_when_no_mo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone that never ran `make` has .po files only: they are compiled on load."""
    po = i18n.po_path("vi")
    target = tmp_path / "vi" / "LC_MESSAGES" / po.name
    target.parent.mkdir(parents=True)
    target.write_bytes(po.read_bytes())
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert not i18n.mo_path("vi").exists()
    assert i18n._load("vi").gettext("Legend") == "Chú giải"


def test_switching_language_changes_no_data(tmp_path: Path) -> None:
    make_evidence(tmp_path / "ev", seed=4, n_images=5, n_videos=0)
    image = next(p for p in sorted((tmp_path / "ev").rglob("IMG_*")) if p.is_file())
    bank = tmp_path / "bank.csv"
    bank.write_text(f"md5,category\n{hash_path(str(image), HashOptions()).hashes['md5']},"
                    "child abuse material\n")
    with BankStore(tmp_path / "s") as store:
        store.import_file(str(bank), ImportOptions(bank="b", source="unit", version="1"))
    case = tmp_path / "case"
    run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=case, store_dir=tmp_path / "s",
                        workers=0))
    names = ("manifest.jsonl", "queue.jsonl", "queue.csv", "export.vics.json")
    english = {n: (case / n).read_bytes() for n in names}
    summary_en = stable_view(json.loads((case / "summary.json").read_text()))
    report_en = (case / "report.html").read_text()
    i18n.set_language("vi")
    regenerate_outputs(case, tmp_path / "s")
    assert {n: (case / n).read_bytes() for n in names} == english
    assert stable_view(json.loads((case / "summary.json").read_text())) == summary_en
    report_vi = (case / "report.html").read_text()

    def data(page: str) -> str:
        m = re.search(r'id="queue-data">(.*?)</script>', page)
        assert m
        return m.group(1)

    assert data(report_vi) == data(report_en)
    assert 'lang="vi"' in report_vi and "Chú giải" in report_vi and "Chú giải" not in report_en
    # the built-in label is shown translated but stays the canonical one in the data
    assert '"child abuse material":"tài liệu xâm hại tình dục trẻ em"' in report_vi
    assert "child abuse material" in data(report_vi)
    ids = re.compile(r'id="((?:count|total|acc)-[^"]+)">([^<]*)<')
    assert ids.findall(report_vi) == ids.findall(report_en)  # the same counts, other labels


def test_cli_speaks_vietnamese(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[match]\nradus = 3\n")
    ev = tmp_path / "ev"
    ev.mkdir()
    BankStore(tmp_path / "s").close()
    out = CliRunner().invoke(cli, ["--lang", "vi", "scan", str(ev), "--case", str(tmp_path / "c"),
                                   "--store", str(tmp_path / "s"), "--policy", str(bad),
                                   "--inventory"])
    assert out.exit_code == 1
    assert "có phải ý bạn là 'radius'?" in out.output and "Traceback" not in out.output


def test_errors_stay_english_as_data_and_speak_the_chosen_language() -> None:
    """An error keeps English text (what a library stores or writes) and its template, so the
    CLI can show it in Vietnamese; nested reasons are translated too, and the text pickles
    (workers send results back to the parent)."""
    import pickle

    from index.errors import HashListFormatError
    from triage.casedir import CaseRefused

    inner = i18n.tr("cannot read: {reason}", reason="Permission denied")
    err = CaseRefused("/x/case", i18n.tr("evidence path does not exist"))
    wrapped = HashListFormatError("/x/list.csv", 7, inner)
    i18n.set_language("vi")
    assert str(err) == "/x/case: evidence path does not exist"  # data stays English
    assert i18n.localise(err) == "/x/case: đường dẫn chứng cứ không tồn tại"
    assert i18n.localise(wrapped) == "/x/list.csv:7: không đọc được: Permission denied"
    again = pickle.loads(pickle.dumps(wrapped.args[0]))
    assert str(again) == str(wrapped) and i18n.localise(again) == i18n.localise(wrapped)
    assert i18n.localise(ValueError("plain")) == "plain"
    i18n.set_language("en")
    assert i18n.localise(err) == str(err)


@pytest.mark.parametrize("lang, expected", [
    ("en", "no bank store here (nothing was created)"),
    ("vi", "không có kho lưu trữ ở đây (không tạo gì cả)"),
])
def test_scan_refusal_in_both_languages(tmp_path: Path, lang: str, expected: str) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    out = CliRunner().invoke(cli, ["--lang", lang, "scan", str(ev), "--case",
                                   str(tmp_path / "c"), "--store", str(tmp_path / "missing")])
    assert out.exit_code == 2 and expected in out.output, out.output
    assert not (tmp_path / "missing").exists() and "Traceback" not in out.output


def test_bank_commands_speak_vietnamese(tmp_path: Path) -> None:
    lst = tmp_path / "l.txt"
    lst.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    store = str(tmp_path / "s")
    run = CliRunner().invoke
    out = run(cli, ["--lang", "vi", "bank", "import", str(lst), "--bank", "b", "--store", store,
                    "--replace"])
    assert out.exit_code == 1 and "--replace cần --version" in out.output, out.output
    out = run(cli, ["--lang", "vi", "bank", "import", str(lst), "--bank", "b", "--store", store,
                    "--source", "s", "--version", "1"])
    assert out.exit_code == 0 and "kho b: thêm 1," in out.output, out.output
    out = run(cli, ["--lang", "vi", "bank", "show", "nope", "--store", store])
    assert out.exit_code == 1 and "không có kho nào tên 'nope'" in out.output, out.output
    out = run(cli, ["--lang", "vi", "bank", "list", "--store", store])
    assert "1 mục" in out.output and "đang dùng" in out.output, out.output


def test_a_rejected_list_is_explained_in_vietnamese_and_reported_in_english(
        tmp_path: Path) -> None:
    lst = tmp_path / "bad.json"
    lst.write_text('{"value": [\n{"Media": [}\n]}\n')
    report = tmp_path / "report.json"
    out = CliRunner().invoke(cli, ["--lang", "vi", "bank", "import", str(lst), "--bank", "b",
                                   "--store", str(tmp_path / "s"), "--format", "vics",
                                   "--report", str(report), "--source", "s", "--version", "1"])
    assert out.exit_code == 2, out.output
    assert "dòng 2: JSON không hợp lệ" in out.output and "bị từ chối" in out.output, out.output
    saved = json.loads(report.read_text())
    assert saved["error"].startswith("line 2: invalid JSON"), saved  # the report is data

"""The evidence walk: every entry a row, nothing followed, nothing opened that could block,
nothing changed on disk, odd names kept losslessly.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import pytest

from benchmarks.peak import OWN_PEAK
from hashing.types import HashRecord
from triage import walk as walk_module
from triage.archive_members import read_member
from triage.limits import WalkItem, WalkLimits
from triage.walk import DEFAULT_LIMITS, NotRegularFileError, open_evidence, walk

BAD_NAME = b"bad\xff\xfename.bin"
IS_ROOT = os.geteuid() == 0


def tree_digest(root: Path) -> str:
    """Digest of paths, types, sizes, mtimes, modes and file contents, following nothing."""
    h = hashlib.sha256()
    root_b = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(root_b, followlinks=False):
        dirnames.sort()
        for name in [*sorted(dirnames), *sorted(filenames)]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(p + b"\0" + f"{st.st_mode} {st.st_size} {st.st_mtime_ns}".encode())
            if stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK):
                with open(p, "rb") as f:  # the test reads only regular files, never the FIFO
                    h.update(hashlib.sha256(f.read()).digest())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p))
    return h.hexdigest()


def small_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inside.txt", b"member bytes")
        zf.writestr("../escape.txt", b"escape")
    return buf.getvalue()


def small_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("t/one.bin")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"one"))
    return buf.getvalue()


@pytest.fixture()
def evidence(tmp_path: Path) -> Path:
    """Every awkward case in one tree, built fresh."""
    ev = tmp_path / "ev"
    (ev / "dir" / "sub").mkdir(parents=True)
    (ev / "dir" / "sub" / "deep.txt").write_bytes(b"deep")
    (ev / "plain.txt").write_bytes(b"plain text")
    (ev / "empty").write_bytes(b"")
    (ev / "=cmd|calc").write_bytes(b"formula")
    (ev / "new\nline.txt").write_bytes(b"newline")
    (ev / "renamed.txt").write_bytes(small_zip())  # an archive by content, not by name
    (ev / "t.tgz").write_bytes(small_tgz())
    os.symlink("plain.txt", ev / "link_to_file")
    os.symlink("missing", ev / "dangling")
    os.symlink("loop_b", ev / "loop_a")
    os.symlink("loop_a", ev / "loop_b")
    os.symlink("..", ev / "dir" / "up")  # a directory loop if it were followed
    os.symlink("/etc/passwd", ev / "outside")
    os.mkfifo(ev / "fifo")
    bad = os.path.join(os.fsencode(ev), BAD_NAME)
    with open(bad, "wb") as f:
        f.write(b"non-utf8 name")
    return ev


def rel(item: WalkItem, root: Path) -> str:
    return item.path[len(str(root)) + 1 :]


BAD_TEXT = os.fsdecode(BAD_NAME)

EXPECTED = [
    ("=cmd|calc", "file", "pending", None),
    (BAD_TEXT, "file", "pending", None),
    ("dangling", "symlink", "skipped", "symlink not followed"),
    ("dir/sub/deep.txt", "file", "pending", None),
    ("dir/up", "symlink", "skipped", "symlink not followed"),
    ("empty", "file", "pending", None),
    ("fifo", "special", "skipped", "fifo"),
    ("link_to_file", "symlink", "skipped", "symlink not followed"),
    ("loop_a", "symlink", "skipped", "symlink not followed"),
    ("loop_b", "symlink", "skipped", "symlink not followed"),
    ("new\nline.txt", "file", "pending", None),
    ("outside", "symlink", "skipped", "symlink not followed"),
    ("plain.txt", "file", "pending", None),
    ("renamed.txt", "file", "pending", None),
    ("renamed.txt!/inside.txt", "archive_member", "pending", None),
    (
        "renamed.txt!/../escape.txt",
        "archive_member",
        "pending",
        "path escapes archive root (label only)",
    ),
    ("t.tgz", "file", "pending", None),
    ("t.tgz!/t/one.bin", "archive_member", "pending", None),
]


def walk_with_guard(roots: list[str], limits: WalkLimits = DEFAULT_LIMITS) -> list[WalkItem]:
    """Run the walk in a thread: opening the FIFO would block forever, so a hang fails."""
    out: list[WalkItem] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.extend(walk(roots, limits))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "walk blocked (did it open the FIFO?)"
    assert not errors, errors
    return out


def test_walk_rows_exact_and_tree_unchanged(evidence: Path) -> None:
    before = tree_digest(evidence)
    got = walk_with_guard([str(evidence)])
    assert [(rel(i, evidence), i.kind, i.status, i.reason) for i in got] == EXPECTED
    assert tree_digest(evidence) == before
    by_name = {rel(i, evidence): i for i in got}
    assert by_name["dangling"].link_target == "missing"
    assert by_name["outside"].link_target == "/etc/passwd"
    assert by_name["dir/up"].link_target == ".."
    assert by_name["empty"].size == 0
    assert by_name["plain.txt"].fs_path == str(evidence / "plain.txt")
    assert by_name["plain.txt"].mtime == os.lstat(evidence / "plain.txt").st_mtime
    # a zip on storage: its member travels as a locator its hashing worker reads
    inside = by_name["renamed.txt!/inside.txt"]
    assert inside.data is None and inside.locator is not None
    assert read_member(inside.locator) == b"member bytes"
    assert all(i.data is None for i in got if i.kind != "archive_member")
    assert all(i.fs_path is None for i in got if i.kind != "file")


def test_walk_is_deterministic(evidence: Path) -> None:
    assert walk_with_guard([str(evidence)]) == walk_with_guard([str(evidence)])


def test_odd_names_are_lossless(evidence: Path) -> None:
    got = {rel(i, evidence): i for i in walk_with_guard([str(evidence)])}
    item = got[BAD_TEXT]
    assert os.fsencode(item.path) == os.path.join(os.fsencode(evidence), BAD_NAME)
    assert item.fs_path is not None
    with open_evidence(item.fs_path) as f:
        assert f.read() == b"non-utf8 name"
    record = HashRecord(path=item.path, status="hashed").to_dict()
    assert bytes.fromhex(record["path_bytes_hex"]) == os.fsencode(item.path)
    assert got["new\nline.txt"].path.endswith("/new\nline.txt")
    assert got["=cmd|calc"].path.endswith("/=cmd|calc")


def test_roots_may_be_files_symlinks_or_missing(evidence: Path) -> None:
    roots = [
        str(evidence / "plain.txt"),
        str(evidence / "link_to_file"),
        str(evidence / "fifo"),
        str(evidence / "nope"),
    ]
    got = walk_with_guard(roots)
    assert [(i.path, i.kind, i.status, i.reason) for i in got] == [
        (roots[0], "file", "pending", None),
        (roots[1], "symlink", "skipped", "symlink not followed"),
        (roots[2], "special", "skipped", "fifo"),
        (roots[3], "file", "error", "no such file or directory"),
    ]


def test_directory_depth_limit(tmp_path: Path) -> None:
    d = tmp_path / "r"
    deepest = d / "l1" / "l2" / "l3" / "l4"
    deepest.mkdir(parents=True)
    for p in (d / "top", d / "l1" / "f1", d / "l1" / "l2" / "f2", deepest / "f4"):
        p.write_bytes(b"x")
    got = walk_with_guard([str(d)], WalkLimits(max_dir_depth=2))
    assert [(rel(i, d), i.kind, i.status, i.reason) for i in got] == [
        ("l1/f1", "file", "pending", None),
        ("l1/l2/f2", "file", "pending", None),
        ("l1/l2/l3", "special", "error", "directory depth limit 2 reached; not entered"),
        ("top", "file", "pending", None),
    ]


def test_very_deep_tree_does_not_recurse(tmp_path: Path) -> None:
    # deeper than the default limit; an explicit stack means no RecursionError either way
    path = tmp_path / "deep"
    cur = os.fsencode(path)
    os.mkdir(cur)
    for _ in range(300):
        cur = os.path.join(cur, b"d")
        os.mkdir(cur)
    got = walk_with_guard([str(path)])
    assert len(got) == 1
    assert got[0].reason == "directory depth limit 256 reached; not entered"
    assert rel(got[0], path).split("/") == ["d"] * 257


REPO = Path(__file__).resolve().parent.parent
# Root reads any file whatever its mode; without these two capabilities it obeys the mode bits.
_DROP_DAC = "-dac_override,-dac_read_search"


def walk_rows_as_if_unprivileged(root: Path) -> list[tuple[str, str, str, str | None]]:
    """Walk in this process, or, when running as root, in a child without DAC override."""
    if not IS_ROOT:
        return [(i.path, i.kind, i.status, i.reason) for i in walk_with_guard([str(root)])]
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing: cannot drop DAC override")
    code = (
        "import json, sys\n"
        "from triage.walk import walk\n"
        "print(json.dumps([[i.path, i.kind, i.status, i.reason] for i in walk(sys.argv[1:])]))"
    )
    proc = subprocess.run(
        [
            "setpriv",
            f"--bounding-set={_DROP_DAC}",
            f"--inh-caps={_DROP_DAC}",
            sys.executable,
            "-c",
            code,
            str(root),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"cannot drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return [tuple(row) for row in json.loads(proc.stdout)]


def test_unreadable_file_and_directory_are_error_rows(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    (ev / "closed").mkdir(parents=True)
    (ev / "closed" / "hidden").write_bytes(b"x")
    (ev / "secret").write_bytes(b"x")
    (ev / "open").write_bytes(b"x")
    os.chmod(ev / "secret", 0)
    os.chmod(ev / "closed", 0)
    try:
        got = walk_rows_as_if_unprivileged(ev)
    finally:
        os.chmod(ev / "closed", 0o755)
    assert [(p[len(str(ev)) + 1 :], *rest) for p, *rest in got] == [
        ("closed", "special", "error", "cannot list directory: permission denied"),
        ("open", "file", "pending", None),
        ("secret", "file", "error", "permission denied"),
    ]


def test_open_and_listing_failures_are_error_rows(
    evidence: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same guarantee as above, checked where the tests run as root: the OS refusal is
    simulated at the two places the walk touches the disk."""
    real_open, real_listing = walk_module.open_evidence, walk_module._listing

    def refusing_open(path: str | bytes):
        if os.fsencode(path).endswith(b"plain.txt"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path)

    def refusing_listing(path: bytes):
        if path.endswith(b"/sub"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_listing(path)

    monkeypatch.setattr(walk_module, "open_evidence", refusing_open)
    monkeypatch.setattr(walk_module, "_listing", refusing_listing)
    got = {rel(i, evidence): i for i in walk_with_guard([str(evidence)])}
    assert (got["plain.txt"].status, got["plain.txt"].reason) == ("error", "permission denied")
    assert got["plain.txt"].size == len(b"plain text")
    assert (got["dir/sub"].kind, got["dir/sub"].reason) == (
        "special",
        "cannot list directory: permission denied",
    )
    assert "dir/sub/deep.txt" not in got


def test_open_evidence_refuses_links_fifos_and_directories(evidence: Path) -> None:
    with open_evidence(evidence / "plain.txt") as f:
        assert f.read() == b"plain text"
        assert not f.writable()
    with pytest.raises(OSError) as exc_info:
        open_evidence(str(evidence / "link_to_file"))
    assert exc_info.value.errno == errno.ELOOP
    with pytest.raises(NotRegularFileError):
        open_evidence(str(evidence / "fifo"))  # O_NONBLOCK: returns at once, then refused
    with pytest.raises(OSError):
        open_evidence(str(evidence / "dir"))


def test_open_evidence_falls_back_without_noatime(
    evidence: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NOATIME is refused (EPERM) on files the user does not own; the open still works."""
    if not getattr(os, "O_NOATIME", 0):
        pytest.skip("no O_NOATIME on this platform")
    real = os.open
    calls: list[int] = []

    def fake_open(path, flags, *args):
        calls.append(flags)
        if flags & os.O_NOATIME:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(path, flags, *args)

    monkeypatch.setattr(walk_module.os, "open", fake_open)
    with open_evidence(str(evidence / "plain.txt")) as f:
        assert f.read() == b"plain text"
    assert len(calls) == 2 and not calls[1] & os.O_NOATIME


def test_archive_rows_follow_the_archive_file_row(evidence: Path) -> None:
    got = [rel(i, evidence) for i in walk_with_guard([str(evidence / "t.tgz")])]
    assert got == ["t.tgz", "t.tgz!/t/one.bin"]


def sparse_tar_with_big_member(path: Path, size: int) -> None:
    """A tar whose one member is `size` bytes of holes: large on paper, nothing on disk."""
    info = tarfile.TarInfo("huge.bin")
    info.size = size
    with open(path, "wb") as f:
        f.write(info.tobuf(format=tarfile.PAX_FORMAT))
        f.truncate(f.tell() + size + 2 * tarfile.BLOCKSIZE)


def test_peak_memory_stays_bounded_on_bombs_and_huge_files(tmp_path: Path) -> None:
    """Zip and gzip bombs, an 8 GiB sparse file and a 300 MiB tar member, walked in a
    fresh process: the peak RSS grows by far less than any of them would need if loaded."""
    ev = tmp_path / "ev"
    ev.mkdir()
    with zipfile.ZipFile(ev / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.bin", "w") as out:
            for _ in range(32):
                out.write(bytes(1 << 20))
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(ev / "bomb.gz", "wb") as f:
        for _ in range(32):
            f.write(comp.compress(bytes(1 << 20)))
        f.write(comp.flush())
    with open(ev / "sparse.bin", "wb") as f:
        f.truncate(8 << 30)
    sparse_tar_with_big_member(ev / "big.tar", 300 << 20)
    code = OWN_PEAK + (
        "import json, sys\n"
        "from triage.walk import walk\n"
        "before = own_peak_kib()\n"
        "rows = [[i.path, i.status, i.reason] for i in walk(sys.argv[1:])]\n"
        "after = own_peak_kib()\n"
        "print(json.dumps({'rows': rows, 'grew_kib': after - before}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ev)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(proc.stdout)
    got = {p[len(str(ev)) + 1 :]: (status, reason) for p, status, reason in out["rows"]}
    assert got["sparse.bin"] == ("pending", None)
    assert got["big.tar!/huge.bin"] == (
        "error", f"member exceeds the 256 MiB member limit (declares {300 << 20} bytes); not read")
    assert got["bomb.zip!/zeros.bin"][0] == "error"
    assert "exceeds 200" in got["bomb.zip!/zeros.bin"][1]
    assert got["bomb.gz!/"][0] == "error" and "exceeds 200" in got["bomb.gz!/"][1]
    assert out["grew_kib"] < 100 * 1024

"""Distributed scans that cannot be hijacked: Dask over `tls://` with mutual certificates.

A real TLS LocalCluster on loopback: a scan whose client holds a certificate from the
cluster's CA equals the local scan; a client with a certificate from another CA is refused;
a plain `tcp://` scheduler on a non-loopback address is refused unless `--insecure`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import distributed
import pytest
from _tls import TlsSet, make_tls_set
from click.testing import CliRunner

from cli.main import cli
from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.dask_executor import TlsFiles
from triage.executor import ExecutorError, make_executor
from triage.pipeline import ScanConfig, run_scan

pytestmark = pytest.mark.dask


def _manifest(case: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()]


def _files(s: TlsSet) -> TlsFiles:
    return TlsFiles(ca=s.ca, cert=s.cert, key=s.key)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tls")
    good, bad = make_tls_set(root / "pki", "good"), make_tls_set(root / "pki", "bad")
    make_evidence(root / "ev", seed=12, n_images=6, n_videos=0)
    BankStore(root / "store").close()  # an inventory: what runs where is under test here
    local = run_scan(ScanConfig(evidence=(root / "ev",), case_dir=root / "local",
                                store_dir=root / "store", workers=0, batch_size=4,
                                inventory=True))
    security = distributed.security.Security(
        tls_ca_file=str(good.ca), tls_scheduler_cert=str(good.cert),
        tls_scheduler_key=str(good.key), tls_worker_cert=str(good.cert),
        tls_worker_key=str(good.key), tls_client_cert=str(good.cert),
        tls_client_key=str(good.key), require_encryption=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  protocol="tls", host="127.0.0.1", security=security,
                                  dashboard_address=None) as cluster:
        yield {"root": root, "good": good, "bad": bad, "local": _manifest(local.case_dir),
               "address": cluster.scheduler_address}


def test_tls_scan_with_the_clusters_certificate_equals_local(tls: dict[str, Any]) -> None:
    root = tls["root"]
    assert tls["address"].startswith("tls://127.0.0.1:")
    result = run_scan(ScanConfig(evidence=(root / "ev",), case_dir=root / "dist",
                                 store_dir=root / "store", scheduler=tls["address"],
                                 batch_size=4, tls=_files(tls["good"]), inventory=True))
    assert _manifest(result.case_dir) == tls["local"]


def test_a_client_without_the_right_certificate_is_refused(tls: dict[str, Any]) -> None:
    with pytest.raises(ExecutorError, match="cannot connect"):
        make_executor(1, tls["address"], tls=_files(tls["bad"]), connect_timeout="3s")
    with pytest.raises(ExecutorError, match="tls://.*--tls-ca"):
        make_executor(1, tls["address"])  # no certificate at all (and none in Dask's config)


def test_cli_takes_the_certificates(tls: dict[str, Any]) -> None:
    root, good = tls["root"], tls["good"]
    result = CliRunner().invoke(cli, [
        "scan", str(root / "ev"), "--case", str(root / "cli"), "--store", str(root / "store"),
        "--scheduler", tls["address"], "--tls-ca", str(good.ca), "--tls-cert", str(good.cert),
        "--tls-key", str(good.key), "--batch-size", "4", "--inventory"])
    assert result.exit_code == 0, result.output
    assert _manifest(root / "cli") == tls["local"]


@pytest.mark.parametrize("address", ["tcp://10.1.2.3:8786", "10.1.2.3:8786",
                                     "tcp://scheduler.example:8786", "tcp://[2001:db8::1]:8786"])
def test_plain_tcp_to_a_non_loopback_address_is_refused(address: str) -> None:
    with pytest.raises(ExecutorError, match="--insecure"):
        make_executor(1, address)


def test_tls_files_with_a_tcp_address_are_refused(tls: dict[str, Any]) -> None:
    with pytest.raises(ExecutorError, match="tls://"):
        make_executor(1, "tcp://127.0.0.1:1", tls=_files(tls["good"]))

"""Issue 19, point 11: the web server runs with the same gunicorn settings wherever it is started
(the image's CMD, docker-compose.yml, the load benchmark's defaults): sync workers, one per core
(WEB_CONCURRENCY, 2 on the measured 2-core machine), no threads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile_cmd() -> tuple[list[str], str]:
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    concurrency = re.search(r"^ENV WEB_CONCURRENCY=(\d+)$", text, re.M).group(1)
    return cmd, concurrency


def test_image_compose_and_benchmark_agree():
    cmd, concurrency = _dockerfile_cmd()
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    assert web["command"] == cmd
    assert web["environment"]["WEB_CONCURRENCY"] == "${WEB_CONCURRENCY:-" + concurrency + "}"
    # Workers come from WEB_CONCURRENCY (a flag would override it); sync, so no threads.
    assert "--workers" not in cmd and "--threads" not in cmd
    assert cmd[cmd.index("--worker-class") + 1] == "sync"
    bench = (ROOT / "benchmarks" / "annotator_load.py").read_text()
    assert re.search(r'"--workers", type=int, default=' + concurrency + r"\b", bench)
    assert re.search(r'"--worker-class", default="sync"', bench)
    assert re.search(r'"--threads", type=int, default=1\b', bench)


def test_the_readme_documents_the_proxy_header_and_the_worker_choice():
    readme = (ROOT / "README.md").read_text()
    deploying = readme[readme.index("## Deploying") :]
    assert "X-Forwarded-Proto" in deploying and "DJANGO_SECURE_SSL_REDIRECT" in deploying
    assert "WEB_CONCURRENCY" in deploying and "sync workers" in deploying

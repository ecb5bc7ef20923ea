"""The embedded broker (kombu's filesystem transport, `make run`) has queue depths too: /ops/ and
/api/v1/health/details count its message files instead of answering "unknown"."""

from __future__ import annotations

from feedback_site.ops import health


def test_filesystem_broker_queue_depths_are_counted(settings, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    for name in ("1_a.gpu.msg", "2_b.gpu.msg", "3_c.default.msg", "notes.txt"):
        (folder / name).write_text("{}")
    assert health.queue_depths() == {"gpu": 2, "default": 1}


def test_missing_broker_folder_is_an_empty_queue(settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "absent")}
    assert health.queue_depths() == {"gpu": 0, "default": 0}

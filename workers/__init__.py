"""Celery app and thin tasks. Tasks take ids, call `rlhf`, and record outcomes through the
site's services. Import `workers.celery_app` (not this package) to get the app."""

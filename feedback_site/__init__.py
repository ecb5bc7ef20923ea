"""The Django project: web pages, REST API and the database of the feedback service."""

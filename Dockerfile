# One image for every tgm service; the command picks the service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY libs libs
COPY services services
COPY tools tools
COPY apps apps
COPY tgm tgm
RUN pip install --no-cache-dir . && useradd --uid 10001 tgm
USER tgm

# One image for every tgm service; the command picks the service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY src src
# uid/gid 10001, numeric below so Kubernetes' runAsNonRoot can check it. /vault-data and /certs exist in the image,
# owned by 10001 and 0700: a fresh docker volume mounted there copies that owner and mode (otherwise root-owned,
# which the vault, running as 10001, could not write). tests/deploy checks these lines.
RUN pip install --no-cache-dir . \
    && groupadd --gid 10001 tgm \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tgm \
    && install -d -o 10001 -g 10001 -m 0700 /vault-data /certs
USER 10001:10001

# Stand-in for python:3.11-slim, built only where that image cannot be pulled (see
# docker/standins.sh). Debian bookworm's own Python is 3.11, the same minor version as
# the real image; `python` and `pip` are put where the real image has them.
FROM smsreg-standin/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/python3 /usr/local/bin/python3
ENV LANG=C.UTF-8
LABEL org.smsreg.standin="python:3.11-slim from Debian bookworm's python3 (not the Docker Official Image)"
CMD ["python3"]

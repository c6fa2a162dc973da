# The stand-in for python:3.11.14-slim-bookworm (see standin-base.sh): Debian
# bookworm's python3 as a virtual environment at /usr/local, so `python` and
# `pip` resolve as in the official image.
ARG ROOTFS=localhost/hellolb-standin-rootfs:bookworm
FROM ${ROOTFS}
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local
CMD ["python"]

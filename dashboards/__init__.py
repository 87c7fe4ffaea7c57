"""Grafana dashboards as code (reads the ledger that ``streams`` wrote).

The provisioning files under ``dashboards/provisioning`` are what
docker-compose mounts into Grafana; generated dashboard JSON goes to
``dashboards/json``.
"""

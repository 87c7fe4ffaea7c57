"""Publishing the dashboards to a Grafana: one folder per audience, idempotent."""

from __future__ import annotations

from typing import Any

from dashboards.build import build_all

__all__ = ["PublishError", "publish"]


class PublishError(Exception):
    """Grafana refused the dashboards or could not be reached; the message says which."""


def publish(url: str, token: str, client: Any | None = None) -> list[str]:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    api = client or GrafanaApi.from_url(url, credential=token, timeout=10.0)
    done = []
    try:
        existing = {f["uid"]: f for f in api.folder.get_all_folders()}
        for rel, doc in sorted(build_all().items()):
            folder = rel.split("/")[0]
            folder_uid = f"bridgeledger-{folder.lower()}"
            if folder_uid not in existing:
                api.folder.create_folder(f"bridgeledger {folder}", uid=folder_uid)
                existing[folder_uid] = {"uid": folder_uid}
            api.dashboard.update_dashboard({"dashboard": {**doc, "id": None}, "folderUid": folder_uid,
                                            "overwrite": True, "message": "bridgeledger dashboards publish"})
            done.append(f"{folder}/{doc['uid']}")
    except GrafanaUnauthorizedError as exc:
        raise PublishError(f"Grafana at {url} refused the token (401): check --token-file") from exc
    except GrafanaClientError as exc:
        raise PublishError(f"Grafana at {url} rejected the request: {exc}") from exc
    except (GrafanaException, OSError) as exc:
        raise PublishError(f"cannot reach Grafana at {url}: {exc}") from exc
    except Exception as exc:  # the HTTP library's connection errors
        if type(exc).__module__.startswith(("niquests", "urllib3", "requests")):
            raise PublishError(f"cannot reach Grafana at {url}: {exc}") from exc
        raise
    return done

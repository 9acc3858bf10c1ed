"""Who may call a cluster's Kubernetes API: each cloud's own bearer tokens, checked the way its clusters do.

- EKS (a cluster whose cloud is aws): only `k8s-aws-v1.` tokens, the unpadded URL-safe base64 of a presigned
  STS GetCallerIdentity URL signed for the cluster (header `x-k8s-aws-id`). As aws-iam-authenticator's verifier
  (`pkg/token/token.go`): the URL must be an STS GetCallerIdentity on https, and it is good for 15 minutes after
  its `X-Amz-Date` whatever `X-Amz-Expires` says (`token_lifetime_seconds`, shorter in tests). STS names the
  caller; here the access key id maps to an IAM principal through `auth.aws_identities` (STS temporary keys are
  not modelled). The principal needs an access entry on the cluster (`access_entries`).
- AKS with Microsoft Entra ID integration (`entra`, the default): only access tokens that the emulator's Entra
  endpoint (`clouds/entra.py`) issued for the AKS server application (`aud` = `AKS_SERVER_APP_ID`, requested as
  scope `6dae42f8-4368-4678-94ff-3960e28e3630/.default`, as kubelogin does), unexpired. A token for ARM
  (`https://management.azure.com`) or any other audience is refused, as AKS refuses it. Tokens are JWTs signed
  with a key made at start (HS256, where Entra signs RS256 with its published keys: nothing here checks keys).
- Anything else (GKE, AKS without Entra, plain clusters): any token, as before.
- Every cluster also lets in `ADMIN_TOKEN`, the token of the kubeconfig files the emulator writes for its own
  tests and kubectl; no cloud API hands it out for an EKS cluster.

A refused request gets what kube-apiserver answers: 401 with a `Status` whose reason is `Unauthorized`.
The reason is logged here, never sent, as on a real API server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

from gpuflow_emulator.config import EmulatorConfig
from gpuflow_emulator.errors import ApiError

log = logging.getLogger(__name__)
ADMIN_TOKEN = "gpuflow-emulator"
EKS_PREFIX = "k8s-aws-v1."
EKS_CLUSTER_HEADER = "x-k8s-aws-id"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
# The Entra application every AKS cluster's API server accepts tokens for ("Azure Kubernetes Service AAD Server").
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# The Entra tenant of the emulated subscription.
ENTRA_TENANT = "00000000-0000-0000-0000-00000000a11d"


class Refused(Exception):
    """Why a token was refused (logged by the emulator; the client only sees 401 Unauthorized)."""


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class EntraTokens:
    """Issues and checks the emulator's Microsoft Entra access tokens (JWTs with Entra's v1 claims)."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._key = secrets.token_bytes(32)

    def issue(self, tenant: str, client_id: str, audience: str) -> tuple[str, int]:
        """An app-only access token for `audience`, and how many seconds it lives (`expires_in`)."""
        issued = int(time.time())
        lifetime = max(1, round(self.lifetime_seconds))
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "appid": client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{client_id}")),
            "tid": tenant,
            "ver": "1.0",
        }
        signed = f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'HS256'}).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signed}.{_b64(self._signature(signed))}", lifetime

    def claims(self, token: str, audience: str, now: float | None = None) -> dict[str, object]:
        """The claims of a token this emulator issued for `audience` that has not expired."""
        signed, _, signature = token.rpartition(".")
        try:
            genuine = hmac.compare_digest(_unb64(signature), self._signature(signed))
            claims = json.loads(_unb64(signed.split(".")[1]))
        except (binascii.Error, ValueError, IndexError):
            raise Refused("not an Entra access token") from None
        if not genuine:
            raise Refused("Entra token signature is not valid")
        if claims.get("aud") != audience:
            raise Refused(f"Entra token audience {claims.get('aud')!r} is not {audience!r}")
        if (now or time.time()) >= float(claims.get("exp", 0)):
            raise Refused("Entra token has expired")
        return dict(claims)

    def _signature(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).digest()


class Authenticator:
    """Checks the bearer token of every Kubernetes API request against its cluster's cloud."""

    def __init__(self, config: EmulatorConfig, entra: EntraTokens) -> None:
        self.config = config
        self.entra = entra

    def check(self, cluster: str, authorization: str, now: datetime | None = None) -> None:
        """Raise 401 unless the `Authorization` header lets its caller into `cluster`."""
        identity = self.config.cluster_identity(cluster)
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        if identity is None or token == ADMIN_TOKEN:
            return
        moment = now or datetime.now(UTC)
        try:
            if identity.provider == "aws":
                principal = self.eks_principal(cluster, token, moment)
                if principal not in identity.access_entries:
                    raise Refused(f"{principal} has no access entry on cluster {cluster}")
            elif identity.provider == "azure" and identity.entra:
                self.entra.claims(token, AKS_SERVER_APP_ID, moment.timestamp())
        except Refused as exc:
            log.warning("401 for cluster %s: %s", cluster, exc)
            raise unauthorized() from None

    def eks_principal(self, cluster: str, token: str, now: datetime) -> str:
        """The IAM principal an EKS token was signed by, if the token is well formed and not expired."""
        if not token.startswith(EKS_PREFIX):
            raise Refused(f"token is missing expected {EKS_PREFIX!r} prefix")
        encoded = token.removeprefix(EKS_PREFIX)
        try:
            url = urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise Refused(f"token is not base64 of a URL: {exc}") from None
        query = {key.lower(): values[0] for key, values in parse_qs(url.query).items()}
        if url.scheme != "https" or not url.hostname or not url.hostname.startswith("sts."):
            raise Refused(f"unexpected STS URL {url.scheme}://{url.hostname}")
        if query.get("action") != "GetCallerIdentity":
            raise Refused(f"unexpected action {query.get('action')!r}")
        if EKS_CLUSTER_HEADER not in query.get("x-amz-signedheaders", "").split(";"):
            raise Refused(f"client did not sign the {EKS_CLUSTER_HEADER} header")
        try:
            signed = datetime.strptime(query.get("x-amz-date", ""), AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise Refused(f"bad X-Amz-Date {query.get('x-amz-date')!r}") from None
        if now > signed + timedelta(seconds=self.config.auth.token_lifetime_seconds):
            raise Refused(f"X-Amz-Date {query['x-amz-date']} is expired")
        access_key = query.get("x-amz-credential", "").split("/", 1)[0]
        principal = self.config.auth.aws_identities.get(access_key)
        if principal is None:
            raise Refused(f"STS: the security token included in the request is invalid (access key {access_key!r})")
        return principal

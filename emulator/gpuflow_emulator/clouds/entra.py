"""Microsoft Entra ID's token endpoint, for the client-credentials flow azure-identity's `ClientSecretCredential`
runs (through MSAL) against an authority host: tenant discovery, then a token per scope.

    GET  /{tenant}/v2.0/.well-known/openid-configuration    the endpoints MSAL reads before asking for a token
    POST /{tenant}/oauth2/v2.0/token                         grant_type=client_credentials, client_id,
                                                             client_secret, scope=<resource>/.default

Served on the Azure listener (TLS: MSAL will not talk to an http authority). A token's audience is the scope's
resource: `https://management.azure.com/.default` gives an ARM token, `6dae42f8-…/.default` one for AKS clusters'
API servers, the only kind they accept (`gpuflow_emulator.auth`). Client secrets are not checked.
"""

from __future__ import annotations

from aiohttp import web

from gpuflow_emulator.auth import EntraTokens

DEFAULT_SUFFIX = "/.default"


class EntraApi:
    """The two Entra routes MSAL's client-credentials flow calls."""

    def __init__(self, tokens: EntraTokens) -> None:
        self.tokens = tokens

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery, name="EntraDiscovery"),
            web.post("/{tenant}/oauth2/v2.0/token", self.token, name="EntraToken"),
        ]

    async def discovery(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}/{request.match_info['tenant']}"
        return web.json_response(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant, client_id, scope = (str(form.get(name, "")) for name in ("grant_type", "client_id", "scope"))
        if grant != "client_credentials" or not client_id or not form.get("client_secret"):
            return _error("unsupported_grant_type" if grant != "client_credentials" else "invalid_client", grant)
        resources = [s.removesuffix(DEFAULT_SUFFIX) for s in scope.split() if s.endswith(DEFAULT_SUFFIX)]
        if len(resources) != 1:
            return _error("invalid_scope", scope)
        token, lifetime = self.tokens.issue(request.match_info["tenant"], client_id, resources[0])
        return web.json_response(
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
        )


def _error(code: str, value: str) -> web.Response:
    """Entra's OAuth error body (RFC 6749 section 5.2, with Entra's AADSTS description)."""
    messages = {
        "unsupported_grant_type": f"AADSTS70003: The app requested an unsupported grant type '{value}'.",
        "invalid_client": "AADSTS7000215: Invalid client secret provided.",
        "invalid_scope": f"AADSTS1002012: The provided value for scope {value} is not valid. Client credential "
        "flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
    }
    return web.json_response({"error": code, "error_description": messages[code]}, status=400)

"""Interoperability check: Python's Authlib against a running Baton IdP.

Usage: IDP_URL=http://127.0.0.1:9000 python interop.py
Exits non-zero on the first failed step.
"""

import base64
import hashlib
import os
import re
import sys
import time
import traceback
from urllib.parse import parse_qs, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import JWSRegistry

ISSUER = os.environ.get("IDP_URL", "http://localhost:9000")
GATEWAY_SECRET = os.environ.get("GATEWAY_SECRET", "gateway-dev-secret")
REPORTER_SECRET = os.environ.get("REPORTER_SECRET", "reporter-dev-secret")
REDIRECT_URI = os.environ.get("GATEWAY_REDIRECT_URI", "http://localhost:8080/auth/callback")
CLI_REDIRECT_URI = os.environ.get("CLI_REDIRECT_URI", "http://127.0.0.1:8976/callback")

passed = 0

# The public `cli` client proves a DPoP key (RFC 9449); Authlib has no DPoP
# client, so the proof is made here with joserfc (Authlib's JOSE library).
DPOP_KEY = ECKey.generate_key("P-256")


def dpop_proof(method, url, access_token=None):
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": DPOP_KEY.as_dict(private=False)}
    claims = {"jti": generate_token(22), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return jwt.encode(header, claims, DPOP_KEY)


def step(name):
    def run(fn):
        global passed
        try:
            fn()
        except Exception:  # noqa: BLE001 - report any failure and stop
            print(f"FAIL python/authlib: {name}", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        passed += 1
        print(f"ok   python/authlib: {name}")
        return fn

    return run


meta = {}
browser = requests.Session()  # keeps the IdP's cookies, like a browser
state = {}


def sign_in(authorization_url, username, password):
    """Drives the login form over HTTP; returns the callback URL."""
    page = browser.get(authorization_url, allow_redirects=False)
    assert page.status_code == 200, page.status_code
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    res = browser.post(
        f"{ISSUER}/login",
        data={"csrf_token": csrf, "username": username, "password": password},
        allow_redirects=False,
    )
    assert res.status_code == 303, res.status_code
    return res.headers["location"]


def validate_id_token(token, nonce, client_id):
    """What Authlib's OpenID clients do: JWKS signature check, then the OIDC claim rules."""
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"]).json())
    algs = meta["id_token_signing_alg_values_supported"]
    decoded = jwt.decode(token["id_token"], keys, registry=JWSRegistry(algorithms=algs))
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"values": [ISSUER]}},
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=30)  # checks iss, aud, exp, iat, nonce, azp and at_hash
    return claims


@step("discovery")
def _():
    meta.update(requests.get(f"{ISSUER}/.well-known/openid-configuration").json())
    assert meta["issuer"] == ISSUER
    assert "S256" in meta["code_challenge_methods_supported"]
    as_meta = requests.get(f"{ISSUER}/.well-known/oauth-authorization-server").json()
    assert as_meta["token_endpoint"] == meta["token_endpoint"]


def gateway_session():
    return OAuth2Session(
        "gateway",
        GATEWAY_SECRET,
        scope="openid profile email offline_access orders:read",
        redirect_uri=REDIRECT_URI,
        token_endpoint_auth_method="client_secret_basic",
        code_challenge_method="S256",
    )


@step("authorization code + PKCE, ID token validated")
def _():
    session = gateway_session()
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, st = session.create_authorization_url(meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
    callback = sign_in(url, "carol", "carol-password")
    params = parse_qs(urlparse(callback).query)
    assert params["iss"] == [ISSUER], "RFC 9207 iss in the response"
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=st
    )
    claims = validate_id_token(token, nonce, "gateway")
    assert claims["email"] == "carol@example.com"
    state.update(session=session, token=token, sub=claims["sub"])


@step("access token verifies against JWKS (RFC 9068)")
def _():
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"]).json())
    decoded = jwt.decode(state["token"]["access_token"], keys, registry=JWSRegistry(algorithms=["RS256", "ES256", "EdDSA"]))
    assert decoded.header["typ"] == "at+jwt"
    assert sorted(decoded.claims["aud"]) == ["inventory", "order", "payment"]
    assert decoded.claims["roles"] == ["customer", "support"]
    assert decoded.claims["iss"] == ISSUER


@step("userinfo")
def _():
    info = state["session"].get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == state["sub"]
    assert info["preferred_username"] == "carol"


@step("refresh (rotation)")
def _():
    old = state["token"]["refresh_token"]
    new = state["session"].refresh_token(meta["token_endpoint"], refresh_token=old)
    assert new["refresh_token"] != old
    state.update(old_refresh=old, token=new)


@step("introspection")
def _():
    res = state["session"].introspect_token(meta["introspection_endpoint"], token=state["token"]["access_token"])
    body = res.json()
    assert res.status_code == 200 and body["active"] is True, body
    assert body["client_id"] == "gateway"


@step("revocation")
def _():
    session = state["session"]
    res = session.revoke_token(
        meta["revocation_endpoint"], token=state["token"]["refresh_token"], token_type_hint="refresh_token"
    )
    assert res.status_code == 200
    body = session.introspect_token(meta["introspection_endpoint"], token=state["token"]["refresh_token"]).json()
    assert body["active"] is False
    # The access token issued with it is revoked too.
    body = session.introspect_token(meta["introspection_endpoint"], token=state["token"]["access_token"]).json()
    assert body["active"] is False


@step("public client (cli): code + PKCE, no secret")
def _():
    session = OAuth2Session(
        "cli",
        scope="openid orders:read",
        redirect_uri=CLI_REDIRECT_URI,
        token_endpoint_auth_method="none",
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, st = session.create_authorization_url(meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
    res = browser.get(url, allow_redirects=False)  # the SSO session answers at once
    assert res.status_code == 303, res.status_code
    token = session.fetch_token(
        meta["token_endpoint"],
        authorization_response=res.headers["location"],
        code_verifier=verifier,
        state=st,
        headers={"DPoP": dpop_proof("POST", meta["token_endpoint"])},
    )
    validate_id_token(token, nonce, "cli")
    assert token["token_type"] == "DPoP", token["token_type"]
    # The bound token: refused as a bearer token, accepted with a proof of the key.
    access = token["access_token"]
    bearer = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access}"})
    assert bearer.status_code == 401, bearer.status_code
    info = requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": f"DPoP {access}", "DPoP": dpop_proof("GET", meta["userinfo_endpoint"], access)},
    )
    assert info.status_code == 200, info.text
    # A wrong verifier is refused.
    url, st = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, code_challenge=create_s256_code_challenge(verifier)
    )
    res = browser.get(url, allow_redirects=False)
    code = parse_qs(urlparse(res.headers["location"]).query)["code"][0]
    bad = requests.post(
        meta["token_endpoint"],
        headers={"DPoP": dpop_proof("POST", meta["token_endpoint"])},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CLI_REDIRECT_URI,
            "client_id": "cli",
            "code_verifier": generate_token(64),
        },
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant", bad.text


@step("client credentials")
def _():
    session = OAuth2Session("reporter", REPORTER_SECRET, scope="inventory:read")
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["scope"] == "inventory:read"
    assert "refresh_token" not in token
    wrong = OAuth2Session("reporter", "wrong-secret")
    try:
        wrong.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    except Exception as err:  # noqa: BLE001 - authlib raises OAuthError
        assert "invalid_client" in str(err), err
    else:
        raise AssertionError("a wrong secret must fail")


print(f"{passed} passed, 0 failed")

"""What identity costs on a request: an OIDC token (verified once, then from the cache) against an API key.

    python bench/identity_bench.py [--seconds 8] [--warmup 2] [--rounds 3] [--concurrency 16]
                                   [--before REF]

The method of bench/inference_bench.py, with its code: wrk out of process (`wrk -t1`, bench/wrk_load.lua)
pinned to core 1, the service pinned to core 0, all cells in one run, in rounds with the order reversed
every other round, medians reported, results as ratios. One service process (`python -m inference_service`
as deployed: access log on, metrics on, Redis tier on, the audit log written to a file) accepts both a
named API key and RS256 tokens from a test issuer (key generated here, JWKS as a file), with an access policy
granting both `infer` on breast-cancer: the key cells and the token cells differ only in the credential.
Workloads: `v2 hit` (the whole-response cache answers: the cheapest request, where auth shows most) and
`v2 miss` (a new row per request: onnxruntime runs). With --before REF (default: the commit before identity
existed) the service as it was at REF also runs, API key only, so the cost of the gate itself on an API-key
request shows too. The target (issue 15): token req/s and server CPU per request within 10% of the key's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from inference_bench import (  # the load method itself, not a copy of it
    LOAD_CORE,
    TABULAR,
    WORK,
    Cell,
    Server,
    Workload,
    _stop,
    _wait_http,
    check_once,
    ensure_wrk,
    export_ref,
    measure,
    start_ours,
    v2_tabular,
)
from jwt.algorithms import RSAAlgorithm

from inference_service.local import RedisProcess

ISSUER, AUDIENCE, KEY_ID = "https://issuer.bench.test/", "inference-bench", "bench"
BEFORE_IDENTITY = "3fffcb4"  # the last commit before inference_service.identity


def issuer_files() -> tuple[str, dict[str, str]]:
    """A signing key made here: a token valid for the run, and the settings that accept it."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {
        **RSAAlgorithm.to_jwk(private.public_key(), as_dict=True),
        "kid": "k1",
        "alg": "RS256",
        "use": "sig",
    }
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "identity-jwks.json").write_text(json.dumps({"keys": [jwk]}))
    grant = {"models": [TABULAR], "actions": ["infer"]}
    policy = {"rules": [{"claim": "scope", "values": ["bench"], **grant}], "api_keys": {KEY_ID: grant}}
    (WORK / "identity-policy.json").write_text(json.dumps(policy))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "scope": "openid bench", "iat": now,
              "nbf": now, "exp": now + 3600}  # fmt: skip
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    settings = {
        "INFERENCE_OIDC_ISSUER": ISSUER,
        "INFERENCE_OIDC_AUDIENCE": AUDIENCE,
        "INFERENCE_OIDC_JWKS_FILE": str(WORK / "identity-jwks.json"),
        "INFERENCE_ACCESS_POLICY_FILE": str(WORK / "identity-policy.json"),
        "INFERENCE_AUDIT_LOG": str(WORK / "identity-audit.log"),
    }
    return token, settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--before", default=BEFORE_IDENTITY, help="git ref of a pre-identity build ('' off)")
    args = parser.parse_args()
    ensure_wrk()
    token, settings = issuer_files()
    redis = RedisProcess()
    redis.start()
    assert redis._proc is not None  # redis-server shares the load generator's core
    subprocess.run(["taskset", "-a", "-cp", LOAD_CORE, str(redis._proc.pid)], check=True, capture_output=True)
    procs: list[Server] = []
    try:
        api_key = secrets.token_urlsafe(16)  # named, so the policy's api_keys entry is the one applying
        extra = {**settings, "INFERENCE_API_KEYS": f"{KEY_ID}:{api_key}"}
        ours = start_ours("ours", redis.url, models=f"{TABULAR}:1", extra=extra)
        procs.append(ours)
        servers = {
            "key": dataclasses.replace(ours, name="key", api_key=api_key),
            "token": dataclasses.replace(ours, name="token", api_key=token),
        }
        if args.before:
            before = start_ours("before", redis.url, models=f"{TABULAR}:1", source=export_ref(args.before))
            procs.append(before)
            servers["before"] = before
        for server in procs:
            _wait_http(server, "/v2/health/ready")
        path = f"/v2/models/{TABULAR}/infer"
        plan_workloads = [
            Workload(f"{name} v2 {kind}", name, TABULAR, path, kind == "hit", v2_tabular)
            for kind in ("hit", "miss")
            for name in servers
        ]
        for w in plan_workloads:
            check_once(servers[w.server], w)  # a fast 401/403 is not a result
        plan = [(w, args.concurrency) for w in plan_workloads]
        cells = measure(servers, plan, rounds=args.rounds, seconds=args.seconds, warmup=args.warmup)
    finally:
        for server in procs:
            _stop(server.proc)
        redis.close()
    report(cells, args.concurrency)
    gate_cost(token, settings)
    audit = WORK / "identity-audit.log"
    lines = audit.read_text().count("\n") if audit.exists() else 0
    print(f"\naudit lines written: {lines} (token in the audit log: {token in audit.read_text()})")
    return 0 if all(c.errors == 0 for c in cells.values()) else 1


def _paired(cell: Cell, ref: Cell, attr: str) -> float:
    """The median over rounds of cell/ref, each round's two samples taken minutes apart at most."""
    return float(
        statistics.median(
            getattr(a, attr) / getattr(b, attr) for a, b in zip(cell.samples, ref.samples, strict=True)
        )
    )


def report(cells: dict[tuple[str, int], Cell], c: int) -> None:
    head = "| req/s | p50 ms | p99 ms | server CPU us/req | x key req/s | x key CPU/req |"
    print(f"\n| workload (c={c}) {head}\n|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("hit", "miss"):
        key = cells[(f"key v2 {kind}", c)]
        for name in ("key", "token", "before"):
            cell = cells.get((f"{name} v2 {kind}", c))
            if cell is None:
                continue
            print(
                f"| {cell.workload} | {cell.median('rps'):.0f} | {cell.median('p50_ms'):.2f} "
                f"| {cell.median('p99_ms'):.2f} | {cell.median('cpu_us'):.0f} "
                f"| {_paired(cell, key, 'rps'):.3f} | {_paired(cell, key, 'cpu_us'):.3f} |"
            )
    print("(x key: median over rounds of this cell / the key cell of the same round)")


def gate_cost(token: str, settings: dict[str, str], n: int = 100_000) -> None:
    """In-process cost of one authorization decision (audit line included), beside the API-key check the
    middleware made before identity existed (security.ApiKeys, still in the tree)."""
    from inference_service.identity.build import build_gate
    from inference_service.security import ApiKeys, presented_key
    from inference_service.settings import Settings

    values: dict[str, Any] = {k.removeprefix("INFERENCE_").lower(): v for k, v in settings.items()}
    values["audit_log"] = str(WORK / "identity-audit-gate.log")
    gate = build_gate(Settings(api_keys=f"{KEY_ID}:bench-key", **values), {TABULAR: "1"})
    old = ApiKeys([b"bench-key"])

    def scope(credential: str) -> dict[str, Any]:
        headers = [(b"host", b"x"), (b"content-type", b"application/json")]
        headers.append((b"authorization", f"Bearer {credential}".encode()))
        return {"type": "http", "method": "POST", "path": f"/v2/models/{TABULAR}/infer", "headers": headers}

    async def run() -> dict[str, float]:
        out: dict[str, float] = {}
        key_scope = scope("bench-key")
        started = time.perf_counter()
        for _ in range(n):
            old.check(presented_key(key_scope["headers"]))
        out["API-key check before identity (security.ApiKeys)"] = time.perf_counter() - started
        for name, credential in (("Gate: API key", "bench-key"), ("Gate: token, cached", token)):
            s = scope(credential)
            assert await gate.refuse(s, b"warm") is None
            started = time.perf_counter()
            for _ in range(n):
                await gate.refuse(s, b"bench")
            out[name] = time.perf_counter() - started
        assert gate.tokens is not None
        started = time.perf_counter()
        for _ in range(n // 100):
            await gate.tokens._verify(token.encode())
        out["token verification, uncached (RS256)"] = (time.perf_counter() - started) * 100
        return out

    print(f"\nper decision, in process ({n} calls each, same run):")
    for name, seconds in asyncio.run(run()).items():
        print(f"  {name:52} {seconds / n * 1e6:7.2f} us")


if __name__ == "__main__":
    sys.exit(main())

"""Certificates for the local control plane, generated with the openssl CLI.

EC P-256 keys throughout (instant to generate; ES256 service-account tokens).
"""

from __future__ import annotations

import pathlib
import subprocess

SERVICE_IP = "10.96.0.1"  # first address of --service-cluster-ip-range

# name -> (subject, extended key usage, subjectAltName or None)
CLIENTS = {
    "admin": ("/O=system:masters/CN=tideserve-admin", "clientAuth", None),
    "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
    "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
    # kwok plays every kubelet (node status, leases, pod status), so it needs more
    # than one node's rights under the Node authorizer.
    "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", None),
    # The real node (node.py): its kubelet under the Node authorizer, kube-proxy under
    # the default system:node-proxier binding, and the API server towards kubelets.
    "kubelet": ("/O=system:nodes/CN=system:node:real-0", "clientAuth", None),
    "kube-proxy": ("/CN=system:kube-proxy", "clientAuth", None),
    "apiserver-kubelet-client": (
        "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth", None
    ),
}
SERVING = (
    "/CN=kube-apiserver",
    "serverAuth",
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    f"DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:{SERVICE_IP}",
)

_REQ_CONFIG = (
    "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
    "[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
)


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _ca(d: pathlib.Path, ca: str, cn: str) -> None:
    if not (d / f"{ca}.crt").exists():
        _openssl(
            "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            "-days", "3650", "-subj", f"/CN={cn}", "-config", "req.cnf",
            "-extensions", "v3_ca",
            cwd=d,
        )  # fmt: skip


def _leaf(
    d: pathlib.Path, name: str, subject: str, usage: str, san: str | None, ca: str = "ca"
) -> None:
    ext = "[v3]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
    ext += f"extendedKeyUsage = {usage}\n"
    if san:
        ext += f"subjectAltName = {san}\n"
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, "-config", "req.cnf",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-days", "3650", "-extfile", f"{name}.ext", "-extensions", "v3", "-out", f"{name}.crt",
        cwd=d,
    )  # fmt: skip
    (d / f"{name}.csr").unlink()
    (d / f"{name}.ext").unlink()


def ensure(d: pathlib.Path) -> None:
    """Create whatever CA, serving/client certificate or SA key is missing.

    Per file rather than all-or-nothing, so a state dir from an older version of this
    script gains new certificates without losing the CA the running cluster trusts.
    """
    d.mkdir(parents=True, exist_ok=True)
    (d / "req.cnf").write_text(_REQ_CONFIG)
    # The front-proxy CA signs the API server's client cert towards aggregated APIs
    # (requestheader authentication); kept separate from the cluster CA as upstream does.
    for ca, cn in (("ca", "tideserve-local-ca"), ("front-proxy-ca", "tideserve-front-proxy-ca")):
        _ca(d, ca, cn)
    leaves = {
        "front-proxy-client": ("/CN=front-proxy-client", "clientAuth", None, "front-proxy-ca"),
        "apiserver": (*SERVING, "ca"),
        # Serving certs of the controller-manager's and scheduler's health/metrics ports.
        "controller-manager-serving": (
            "/CN=kube-controller-manager", "serverAuth", "DNS:localhost,IP:127.0.0.1", "ca"
        ),
        "scheduler-serving": (
            "/CN=kube-scheduler", "serverAuth", "DNS:localhost,IP:127.0.0.1", "ca"
        ),
        **{name: (*spec, "ca") for name, spec in CLIENTS.items()},
    }  # fmt: skip
    for name, (subject, usage, san, ca) in leaves.items():
        if not (d / f"{name}.crt").exists():
            _leaf(d, name, subject, usage, san, ca)
    if not (d / "sa.pub").exists():
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", "sa.key", cwd=d)  # fmt: skip
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)


def issue_own_ca(d: pathlib.Path, ca_cn: str, leaves: dict[str, tuple[str, str, str]]) -> None:
    """A separate CA in d (ca.crt/ca.key) and leaves name -> (subject, usage, SAN) signed by
    it, each made only if missing: for components that bring their own trust (KEDA's
    gRPC metrics service checks client certificates against its own ca.crt)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "req.cnf").write_text(_REQ_CONFIG)
    _ca(d, "ca", ca_cn)
    for name, (subject, usage, san) in leaves.items():
        if not (d / f"{name}.crt").exists():
            _leaf(d, name, subject, usage, san)
    for key in d.glob("*.key"):
        key.chmod(0o600)

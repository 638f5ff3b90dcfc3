# Shared by hack/test and hack/demo: install what a fresh Debian machine lacks.
# Source it; it defines functions and changes nothing by itself.

say() { printf '\n==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: Prometheus for the test bed, openssl for the cluster's certificates,
# containerd/runc/CNI/nftables for the real node, buildah/debootstrap/gcc for its images.
ensure_debian_packages() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v openssl >/dev/null || missing+=(openssl)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  # The real node (hack/lib/tideserve_testbed/node.py) and its images (images.py).
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  ensure_go
}

# Go >= 1.26 builds the test bed's tools; Debian 12's golang-go is 1.19. Without a recent
# Go on PATH, fetch the pinned toolchain from the Go module proxy (checksum-pinned, cached
# under ~/.cache/tideserve/go) and put it first on PATH.
ensure_go() {
  if go version 2>/dev/null | grep -qE 'go1\.(2[6-9]|[3-9][0-9])'; then
    return 0
  fi
  local bin
  bin=$(hack/lib/fetch-go) || {
    echo "hack: Go >= 1.26 is needed to build the test bed's tools (found: $(go version 2>&1))" >&2
    return 1
  }
  export PATH="$bin:$PATH"
}

# The project's virtual environment, reinstalled only when pyproject.toml changes.
# The dev extra pulls in the bench extra: the tests cover `tideserve bench`.
ensure_venv() {
  local stamp
  stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -f "$stamp" ]; then
    say "creating the virtual environment (.venv) and installing tideserve[dev]"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

# A Python tool in its own virtual environment under ~/.cache/tideserve/<name>-<version>
# (its pins conflict with the project's), exported as $variable (the path of its command).
# A venv cannot be moved (its scripts name their interpreter by path): build it in place
# and mark it complete last, so an interrupted install is redone.
ensure_tool_venv() {
  local name=$1 version=$2 variable=$3 command=$4
  local dir="$HOME/.cache/tideserve/$name-$version"
  if [ ! -f "$dir/.complete" ]; then
    say "installing $name $version into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q "$name==$version"
    touch "$dir/.complete"
  fi
  export "$variable=$dir/bin/$command"
}

# checkov: the chart's and the rendered children's security scan (TIDESERVE_CHECKOV).
CHECKOV_VERSION=3.3.30
ensure_checkov() { ensure_tool_venv checkov "$CHECKOV_VERSION" TIDESERVE_CHECKOV checkov; }

# The AWS CLI (v1, the one on PyPI): the rendered s3:// fetch step runs it against the
# test bed's S3 server (TIDESERVE_AWSCLI).
AWSCLI_VERSION=1.46.2
ensure_awscli() { ensure_tool_venv awscli "$AWSCLI_VERSION" TIDESERVE_AWSCLI aws; }

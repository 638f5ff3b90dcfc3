"""What a string field may hold so that what runs accepts it: Kubernetes, Triton, cron.

Each format is one regular expression used three ways: as the CRD's `pattern` or in a
CEL rule (the API server, Go RE2) and in pydantic (`re.fullmatch`). So the expressions
keep to the syntax both engines read the same way: explicit character classes (no
`\\s`, `\\d`, `\\w`: Unicode in Python, ASCII in RE2), `^...$` anchors (CEL's
`matches` and OpenAPI's `pattern` search; Python's fullmatch needs the whole string).
"""

from __future__ import annotations

import decimal
import re

# -- names ------------------------------------------------------------------------------

# A Service is named after the object and it must be a DNS-1035 label; the longest child
# name is "<name>-predictor" (Deployment, Service, PodDisruptionBudget, ServiceMonitor),
# and a label is at most 63 characters.
LONGEST_CHILD_SUFFIX = "-predictor"
NAME_MAX = 63 - len(LONGEST_CHILD_SUFFIX)
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A label value (GPU product -> nodeSelector nvidia.com/gpu.product).
LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# Environment variable names: C identifiers, the portable set (shells, Triton's backends).
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Names tideserve may set in the Triton container now or later.
RESERVED_ENV_PREFIX = "TIDESERVE_"
# Read by the NVIDIA container runtime or CUDA to choose the GPUs a process sees: the
# device plugin sets them for the GPUs or MIG slice the replica was given, and a user's
# value would expose every GPU of the node (NVIDIA_VISIBLE_DEVICES=all, honoured for
# unprivileged containers by the runtime's default) or hide the one it got.
GPU_SELECTING_ENV = (
    "NVIDIA_VISIBLE_DEVICES", "NVIDIA_MIG_CONFIG_DEVICES", "NVIDIA_MIG_MONITOR_DEVICES",
    "NVIDIA_IMEX_CHANNELS", "CUDA_VISIBLE_DEVICES",
)  # fmt: skip
GPU_SELECTING_ENV_MESSAGE = (
    f"{', '.join(GPU_SELECTING_ENV)} choose the GPUs a replica sees: the device plugin sets "
    "them for the GPUs it was given (resources.gpu, resources.mig)"
)


def name_problem(name: object) -> str | None:
    """Why metadata.name cannot name an InferenceService's children; None if it can."""
    if not isinstance(name, str) or not name:
        return "metadata.name is required"
    if len(name) > NAME_MAX or not re.fullmatch(DNS1035_LABEL, name):
        return NAME_MESSAGE
    return None


NAME_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting "
    f"with a letter, no dots) of at most {NAME_MAX} characters: children are named "
    f"<name>{LONGEST_CHILD_SUFFIX}"
)

# A TCP port, 1-65535 (a registry's or a model server's).
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"

# An image reference: [registry[:port]/]repository[:tag][@sha256:digest].
_DOMAIN = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
_PATH_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
IMAGE = (
    rf"^({_DOMAIN}(:{_PORT})?/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*"
    r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)

# -- text -----------------------------------------------------------------------------------

# Characters that show as nothing or reorder what is shown: C1 controls, soft hyphen,
# zero-width characters, bidirectional controls, the byte order mark. A value holding one
# reads differently from what it is (s3://models/<U+202E>ynit shows as s3://models/tiny).
# Up to U+00FF as escapes both engines read (\x80); above it as the characters themselves,
# since Python's re writes \u200b and Go's RE2 \x{200b}.
INVISIBLE = (
    r"\x80-\x9f\xad" + "\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
)

# -- storage ------------------------------------------------------------------------------

# No whitespace, control or invisible characters anywhere; reaches the fetch container as
# an env var.
STORAGE_URI = rf"^(s3|gs|https|pvc)://[^\x00-\x20\x7f{INVISIBLE}]+$"
# Credentials come from storageSecretRef only: nothing@ before the first slash.
STORAGE_URI_NO_USERINFO = r"^[a-z0-9]+://[^/@]*(/.*)?$"
# pvc://<claim>[/<path>]: a claim name, then path segments that are neither . nor ..
# (subPath refuses them; "." would mount the claim's root under another name).
PVC_URI = (
    r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"(/+([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+))*/*$"
)
# s3://bucket/..., gs://bucket/...: a bucket name (lowercase, digits, . - _).
BUCKET_URI = r"^(s3|gs)://[a-z0-9]([-a-z0-9._]*[a-z0-9])?(/.*)?$"
# s3:// and gs:// are synced as a folder (aws s3 sync, gcloud storage rsync): an archive's
# URI synced nothing (aws s3 sync s3://b/m.tar.gz exits 0 with no file) and Triton found
# no model. Archives are unpacked only from https:// (a presigned URL).
BUCKET_ARCHIVE = (
    r"^(s3|gs)://.*\.([Tt][Gg][Zz]|[Tt][Aa][Rr]|[Tt][Aa][Rr]\.[Gg][Zz]|[Zz][Ii][Pp])/*$"
)
BUCKET_ARCHIVE_MESSAGE = (
    "s3:// and gs:// name the folder of a model repository, synced as it is; an archive "
    "(.tar.gz, .tgz, .tar, .zip) is fetched and unpacked only from https:// (e.g. a "
    "presigned URL)"
)
# https://host[:port]/...: a host name or IPv4 address.
HTTPS_URI = rf"^https://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:{_PORT})?(/.*)?$"

# -- quantities ---------------------------------------------------------------------------

# A Kubernetes quantity greater than zero: unsigned (or +) decimal with a non-zero digit,
# then a binary or decimal SI suffix or a decimal exponent of at most two digits (larger
# ones overflow what a node can offer anyway, and Kubernetes caps quantities).
QUANTITY = (
    r"^\+?([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]{1,2})?$"
)
QUANTITY_MESSAGE = "must be a quantity greater than zero such as 2, 500m or 4Gi"

_QUANTITY_PARTS = re.compile(r"\+?([0-9]*\.?[0-9]*)([eE][-+]?[0-9]+|[A-Za-z]*)")
# Quantity suffixes (the apimachinery ones) and what each multiplies by; right-sizing's
# parser reads quantities with the same table.
QUANTITY_SUFFIXES: dict[str, int | decimal.Decimal] = {
    "": 1, "n": decimal.Decimal("1e-9"), "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity_value(text: str) -> decimal.Decimal | None:
    """The number a quantity matching QUANTITY stands for (500m -> 0.5); None otherwise."""
    if not matches(QUANTITY, text):
        return None
    match = _QUANTITY_PARTS.fullmatch(text)
    if match is None:
        return None
    with decimal.localcontext() as context:
        context.prec = 200  # 64 characters at most: exact
        number, suffix = decimal.Decimal(match[1]), match[2]
        if suffix in QUANTITY_SUFFIXES:  # "E" alone is exa; "E3" and "e3" are exponents
            value = number * QUANTITY_SUFFIXES[suffix]
        else:
            value = number.scaleb(int(suffix[1:]))
        # Kubernetes keeps nano precision, rounding up: 0.0009999999999 is 1m to it.
        if value.as_tuple().exponent < -9:  # type: ignore[operator]
            value = value.quantize(decimal.Decimal("1e-9"), rounding=decimal.ROUND_CEILING)
        return value


# Bounds of the requests a replica may ask for. Below 1m Kubernetes rounds CPU up to 1m,
# and a binary suffix counts bytes, not cores (1Ki of CPU is 1024 cores). Memory is at
# least what tritonserver itself needs (which also refuses 100m, a tenth of a byte, and
# 512, bytes meant as MiB); more than 512 cores or 16Ti is more than a node offers.
CPU_MIN, CPU_MAX = decimal.Decimal("0.001"), 512
MEMORY_MIN, MEMORY_MAX = 64 * 2**20, 16 * 2**40
CPU_MESSAGE = (
    f"cpu must be from 1m to {CPU_MAX} cores, in cores or millicores such as 2 or 500m "
    "(Ki, Mi, ... are units of bytes)"
)
MEMORY_MESSAGE = (
    "memory must be from 64Mi to 16Ti bytes such as 512Mi or 8Gi (a plain number is bytes; "
    "m is a thousandth: 100m is a tenth of a byte)"
)


def cpu_problem(value: int | str) -> str | None:
    amount = value if isinstance(value, int) else quantity_value(value)
    if amount is None:
        return f"{value!r} {QUANTITY_MESSAGE}"
    binary = isinstance(value, str) and value.endswith("i")
    return CPU_MESSAGE if binary or not CPU_MIN <= amount <= CPU_MAX else None


def memory_problem(value: int | str) -> str | None:
    amount = value if isinstance(value, int) else quantity_value(value)
    if amount is None:
        return f"{value!r} {QUANTITY_MESSAGE}"
    return MEMORY_MESSAGE if not MEMORY_MIN <= amount <= MEMORY_MAX else None


# -- the Triton command line --------------------------------------------------------------

# tritonserver options a user may add (tritonserver --help of the Triton tideserve tests
# with), by the type of value each takes. The others are tideserve's (repository, control
# mode, ports, addresses, readiness, metrics, the response cache) or need files or
# ports the pod does not have (TLS, SageMaker, Vertex AI); --help exits.
_BOOLEAN_OPTIONS = (
    "allow-cpu-metrics", "allow-gpu-metrics", "enable-peer-access", "log-error", "log-info",
    "log-warning", "model-namespacing", "strict-model-config",
    "grpc-keepalive-permit-without-calls",
)  # fmt: skip
_INTEGER_OPTIONS = (
    "buffer-manager-thread-count", "exit-timeout-secs", "grpc-infer-allocation-pool-size",
    "grpc-keepalive-time", "grpc-keepalive-timeout", "grpc-max-connection-age",
    "grpc-max-connection-age-grace", "grpc-http2-max-pings-without-data",
    "grpc-http2-min-recv-ping-interval-without-data", "grpc-http2-max-ping-strikes",
    "http-thread-count", "log-verbose", "model-load-retry-count", "model-load-thread-count",
    "trace-count", "trace-log-frequency", "trace-rate", "pinned-memory-pool-byte-size",
)  # fmt: skip
_FLOAT_OPTIONS = ("metrics-interval-ms", "min-supported-compute-capability")
_STRING_OPTIONS = (
    "backend-directory", "cache-directory", "grpc-header-forward-pattern",
    "http-header-forward-pattern", "id", "log-file", "repoagent-directory", "trace-file",
)  # fmt: skip
# Options whose value has a shape Triton checks at start (it exits on any other).
# Text without control or invisible characters.
_TEXT = rf"[^\x00-\x1f\x7f{INVISIBLE}]"
_WORD = rf"[^\x00-\x1f\x7f{INVISIBLE},=]+"
_SETTING = rf"{_WORD}={_TEXT}*"
_SHAPED_OPTIONS = (
    ("backend-config", rf"({_WORD},)?{_SETTING}"),
    ("host-policy", rf"{_WORD},{_SETTING}"),
    ("trace-config", rf"({_WORD},)?{_SETTING}"),
    ("metrics-config", rf"({_WORD},)?{_SETTING}"),
    ("rate-limit", "off|execution_count"),
    ("rate-limit-resource", rf"[^\x00-\x1f\x7f{INVISIBLE}:]+:[0-9]{{1,9}}(:[0-9]{{1,3}})?"),
    ("trace-level", "OFF|TIMESTAMPS|TENSORS|off|timestamps|tensors"),
    ("log-format", "default|ISO8601"),
    ("grpc-infer-response-compression-level", "none|low|medium|high"),
    ("model-load-gpu-limit", r"[0-9]{1,3}:([0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9})"),
    ("cuda-memory-pool-byte-size", "[0-9]{1,3}:[0-9]{1,18}"),
    ("cuda-virtual-address-size", "[0-9]{1,3}:[0-9]{1,18}"),
)
_FLAG_OPTIONS = ("disable-auto-complete-config",)
# tideserve sets --metrics-config=summary_latencies=true (SLO attainment and right-sizing
# read the latency summaries); a user's setting of it would come later and win.
METRICS_OVERRIDE = r"^--metrics-config=([^,=]*,)?summary_latencies="
METRICS_OVERRIDE_MESSAGE = (
    "tideserve sets --metrics-config=summary_latencies=true itself: SLO attainment and "
    "right-sizing read the latency summaries"
)
MANAGED_OPTIONS = (
    "model-repository", "model-store", "model-control-mode", "load-model", "model-config-name",
    "repository-poll-secs", "strict-readiness", "exit-on-error", "allow-http", "allow-grpc",
    "allow-metrics", "http-port", "grpc-port", "metrics-port", "http-address", "grpc-address",
    "metrics-address", "reuse-http-port", "reuse-grpc-port", "http-restricted-api",
    "grpc-restricted-protocol", "cache-config", "response-cache-byte-size",
)  # fmt: skip


# Refused too: they need files, ports or a platform the pod does not have (TLS for gRPC,
# SageMaker, Vertex AI); the activator and clients speak plain HTTP/2 to Triton.
UNAVAILABLE_OPTIONS = (
    "grpc-use-ssl", "grpc-use-ssl-mutual", "grpc-server-cert", "grpc-server-key",
    "grpc-root-cert", "allow-sagemaker", "sagemaker-port", "sagemaker-safe-port-range",
    "sagemaker-thread-count", "allow-vertex-ai", "vertex-ai-port", "vertex-ai-thread-count",
    "vertex-ai-default-model",
)  # fmt: skip


def user_options() -> tuple[str, ...]:
    """Every tritonserver option a user may set in runtime.args."""
    shaped = tuple(name for name, _ in _SHAPED_OPTIONS)
    return (*_BOOLEAN_OPTIONS, *_INTEGER_OPTIONS, *_FLOAT_OPTIONS, *_STRING_OPTIONS, *shaped,
            *_FLAG_OPTIONS)  # fmt: skip


def _alternatives(options: tuple[str, ...]) -> str:
    return "|".join(sorted(options, key=lambda o: (-len(o), o)))


# Every item is one whole option, --name=value (or the bare flag): Triton reads options
# with getopt_long, which also takes abbreviations (--model-repo=) and the value from
# the next item, so anything looser could still set a managed option.
TRITON_ARG = (
    rf"^--(({_alternatives(_BOOLEAN_OPTIONS)})=([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]"
    r"|[Oo][Nn]|[Oo][Ff][Ff]|1|0)"
    rf"|({_alternatives(_INTEGER_OPTIONS)})=-?[0-9]{{1,9}}"
    rf"|({_alternatives(_FLOAT_OPTIONS)})=[0-9]{{1,9}}(\.[0-9]{{1,9}})?"
    rf"|({_alternatives(_STRING_OPTIONS)})={_TEXT}+"
    + "".join(f"|{name}=({shape})" for name, shape in _SHAPED_OPTIONS)
    + rf"|{_alternatives(_FLAG_OPTIONS)})$"
)
TRITON_ARG_MESSAGE = (
    "each runtime arg must be one whole --option=value of tritonserver with a value of the "
    "option's type (no abbreviations, no value in the next item); tideserve sets "
    "--model-repository, --model-control-mode, --load-model, the ports and addresses, "
    "--strict-readiness, --exit-on-error, "
    "--allow-http/grpc/metrics and --cache-config (use model.responseCache) itself"
)

# -- cron -----------------------------------------------------------------------------------

_MONTH_NAMES = (
    "jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?"
    "|oct(ober)?|nov(ember)?|dec(ember)?"
)
_DAY_NAMES = "sun(day)?|mon(day)?|tue(s|sday)?|wed(nesday)?|thu(rs|rsday)?|fri(day)?|sat(urday)?"


def _ci(alternatives: str) -> str:
    """Case-insensitive without flags (RE2 and Python read (?i) alike, but this is plainer
    to read in an error message): every letter as [xX]."""
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in alternatives)


def _cron_field(values: str) -> str:
    item = rf"(\*|({values})(-({values}))?)(/0*[1-9][0-9]{{0,2}})?"
    return rf"{item}(,{item})*"


# Minute 0-59, hour 0-23, day of month 1-31, month 1-12 or Jan..Dec, day of week 0-7 or
# Sun..Sat (0 and 7 are Sunday). A range may wrap (Fri-Mon, 50-10): autoscaler/cron.py
# reads it as running to the end of the field and on from its start.
CRON_FIELDS = (
    _cron_field("0*[0-9]|0*[1-5][0-9]"),
    _cron_field("0*[0-9]|0*1[0-9]|0*2[0-3]"),
    _cron_field("0*[1-9]|0*[12][0-9]|0*3[01]"),
    _cron_field(rf"0*[1-9]|0*1[0-2]|{_ci(_MONTH_NAMES)}"),
    _cron_field(rf"0*[0-7]|{_ci(_DAY_NAMES)}"),
)
CRON = "^" + "[ \t]+".join(f"({f})" for f in CRON_FIELDS) + "$"
# A day of month no selected month has, with any weekday (a restricted weekday field
# would fire on its own days): 30 or 31 February, 31 April, June, September or November.
_FEB = rf"0*2|{_ci('feb(ruary)?')}"
_SHORT = rf"0*[2469]|0*11|{_ci('feb(ruary)?|apr(il)?|june?|sep(t|tember)?|nov(ember)?')}"
CRON_NEVER = (
    r"^[^ \t]+[ \t]+[^ \t]+[ \t]+"
    rf"(0*3[01]([-,]0*3[01])*[ \t]+({_FEB})(,({_FEB}))*"
    rf"|0*31(,0*31)*[ \t]+({_SHORT})(,({_SHORT}))*)"
    r"[ \t]+\*$"
)
CRON_NEVER_MESSAGE = (
    "cron never fires: February has no 30th or 31st, and April, June, September and "
    "November have no 31st"
)
CRON_MESSAGE = (
    "cron must be 5 fields separated by spaces: minute 0-59, hour 0-23, day of month 1-31, "
    "month 1-12 or Jan-Dec, day of week 0-7 or Sun-Sat; each a list of *, values or "
    "ranges (a range may wrap, e.g. Fri-Mon), with an optional /step of 1-999"
)

# -- right-sizing option names ------------------------------------------------------------

# rightsizing/catalog.py's vocabulary: "cpu", "cpu-<cores>" (1-256, as profiling.cpuCores),
# "gpu:<nvidia.com/gpu.product label value>", "mig:<profile>".
MIG_PROFILE = r"^[1-7]g\.[1-9][0-9]{0,2}gb$"
PROFILE_OPTION = (
    r"^(cpu(-([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-6]))?"
    r"|gpu:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
    r"|mig:[1-7]g\.[1-9][0-9]{0,2}gb)$"
)
PROFILE_OPTION_MESSAGE = (
    "option must be a right-sizing option name: cpu, cpu-<cores> (1-256), "
    "gpu:<GPU product label, e.g. NVIDIA-L4> or mig:<profile, e.g. 1g.10gb>"
)

# -- time zones ------------------------------------------------------------------------------

# The shape of an IANA name (Europe/Berlin, America/Argentina/Buenos_Aires, Etc/GMT+5,
# UTC); whether the zone exists is asked of the zone database in a CEL rule.
TIME_ZONE = r"^[A-Za-z][-A-Za-z0-9_+]*(/[A-Za-z0-9][-A-Za-z0-9_+]*)*$"
TIME_ZONE_MESSAGE = "timeZone must be an IANA time zone name such as Europe/Berlin"
# Files of a zone database that are not zones of their own: localtime is the machine's
# zone (the operator's and the API server's, each its own, like Go's Local), posixrules
# a template, posix/ and right/ copies of the tree (right/ counts leap seconds: its
# clock is 27 s off). Accepted or not depends on the machine's database.
TIME_ZONE_FILES = r"^(localtime|posixrules|(posix|right)/.*)$"
TIME_ZONE_FILES_MESSAGE = (
    TIME_ZONE_MESSAGE + " (localtime, posixrules and the posix/ and right/ trees are files of "
    "a machine's zone database, not zones)"
)


def matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None

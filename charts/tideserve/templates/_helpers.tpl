{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tideserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name + chart name, unless the release name already
contains the chart name. Suffixed names (-activator) must stay <= 63.
*/}}
{{- define "tideserve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 53 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tideserve.operatorName" -}}
{{- include "tideserve.fullname" . }}
{{- end }}

{{- define "tideserve.activatorName" -}}
{{- printf "%s-activator" (include "tideserve.fullname" .) }}
{{- end }}

{{- define "tideserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object of the release. */}}
{{- define "tideserve.labels" -}}
helm.sh/chart: {{ include "tideserve.chart" . }}
app.kubernetes.io/name: {{ include "tideserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tideserve
{{- end }}

{{/* Selector labels: stable across upgrades (never the version). */}}
{{- define "tideserve.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "tideserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tideserve.activatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "tideserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: activator
{{- end }}

{{- define "tideserve.operatorServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tideserve.operatorName" .) .Values.serviceAccount.operatorName }}
{{- else }}
{{- default "default" .Values.serviceAccount.operatorName }}
{{- end }}
{{- end }}

{{- define "tideserve.activatorServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tideserve.activatorName" .) .Values.serviceAccount.activatorName }}
{{- else }}
{{- default "default" .Values.serviceAccount.activatorName }}
{{- end }}
{{- end }}

{{- define "tideserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{- define "tideserve.tritonImage" -}}
{{- .Values.triton.image }}
{{- with .Values.triton.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* A NetworkPolicy peer: the pods of the watched namespaces (all when none are listed). */}}
{{- define "tideserve.watchedNamespacesPeer" -}}
{{- if .Values.watchNamespaces }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values: {{ toJson .Values.watchNamespaces }}
{{- else }}
namespaceSelector: {}
{{- end }}
{{- end }}

{{/* A NetworkPolicy peer: the activator's pods. */}}
{{- define "tideserve.activatorPeer" -}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ .Release.Namespace }}
podSelector:
  matchLabels:
    {{- include "tideserve.activatorSelectorLabels" . | nindent 4 }}
{{- end }}

{{/*
TIDESERVE_NETWORK_POLICY: who may reach each endpoint's Triton pods. serving
(HTTP, gRPC): the endpoint's own namespace, the activator, networkPolicy.clients;
metrics: networkPolicy.prometheus.
*/}}
{{- define "tideserve.endpointPeers" -}}
{{- $serving := list (dict "podSelector" (dict)) }}
{{- if .Values.activator.enabled }}
{{- $serving = append $serving (include "tideserve.activatorPeer" . | fromYaml) }}
{{- end }}
{{- $serving = concat $serving .Values.networkPolicy.clients }}
{{- dict "serving" $serving "metrics" .Values.networkPolicy.prometheus | toJson }}
{{- end }}

{{/*
Refuse value combinations that the schema cannot express, with the field
names in the message.
*/}}
{{- define "tideserve.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: without it every replica would reconcile and write replica counts" }}
{{- end }}
{{- if and .Values.rbac.namespaced (empty .Values.watchNamespaces) }}
{{- fail "rbac.namespaced: true needs watchNamespaces to list the namespaces to grant (an empty list means all namespaces, which only a ClusterRole can grant)" }}
{{- end }}
{{- if eq (int .Values.operator.metricsPort) (int .Values.operator.healthPort) }}
{{- fail "operator.metricsPort and operator.healthPort must differ" }}
{{- end }}
{{- if and .Values.triton.digest (contains "@" .Values.triton.image) }}
{{- fail "triton.digest: triton.image already names a digest (image@sha256:...); give it in one place" }}
{{- end }}
{{- $p := .Values.activator.ports }}
{{- if or (eq (int $p.http) (int $p.grpc)) (eq (int $p.http) (int $p.control)) (eq (int $p.grpc) (int $p.control)) }}
{{- fail "activator.ports: http, grpc and control must be three different ports" }}
{{- end }}
{{- end }}

{{/* The operator's leader election Lease (in the release namespace). */}}
{{- define "tideserve.leaseName" -}}
{{- .Values.operator.leaderElection.leaseName | default (printf "%s-leader" (include "tideserve.operatorName" .)) }}
{{- end }}

{{/* Volumes shared by both pods: a writable /tmp under a read-only root. */}}
{{- define "tideserve.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* The release's base name, cut to fit the suffixes of its objects. */}}
{{- define "hearth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hearth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hearth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hearth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hearth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hearth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hearth
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "gateway") */}}
{{- define "hearth.componentLabels" -}}
{{ include "hearth.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hearth.componentSelector" -}}
{{ include "hearth.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A Hearth image: (dict "ctx" $ "name" "hearth-gateway") */}}
{{- define "hearth.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if .ctx.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .ctx.Values.image.registry) .name $tag -}}
{{- else -}}
{{- printf "%s:%s" .name $tag -}}
{{- end -}}
{{- end -}}

{{- define "hearth.apiKeySecret" -}}
{{- default (printf "%s-api-key" (include "hearth.fullname" .)) .Values.gateway.auth.existingSecret -}}
{{- end -}}

{{- define "hearth.redisSecret" -}}
{{- default (printf "%s-redis" (include "hearth.fullname" .)) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{- define "hearth.redisHost" -}}
{{- if .Values.clusterDns -}}
{{- printf "%s-redis.%s.svc" (include "hearth.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- /* $(NAME_REDIS_SERVICE_HOST): a Service environment variable, expanded by the kubelet. */ -}}
{{- printf "$(%s_REDIS_SERVICE_HOST)" (include "hearth.fullname" . | upper | replace "-" "_") -}}
{{- end -}}
{{- end -}}

{{/*
Environment that gives a component HEARTH_REDIS_URL: built from the generated password for the
chart's Redis (Kubernetes expands $(HEARTH_REDIS_PASSWORD) from the variable before it), or read
from the external Secret, or the external URL as given.
*/}}
{{- define "hearth.redisEnv" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
- name: HEARTH_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hearth.redisSecret" . }}
      key: {{ .Values.redis.auth.existingSecretKey }}
- name: HEARTH_REDIS_URL
  value: {{ printf "redis://:$(HEARTH_REDIS_PASSWORD)@%s:6379" (include "hearth.redisHost" .) | quote }}
{{- else }}
- name: HEARTH_REDIS_URL
  value: {{ printf "redis://%s:6379" (include "hearth.redisHost" .) | quote }}
{{- end }}
{{- else if .Values.redis.external.existingSecret }}
- name: HEARTH_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.existingSecretKey }}
{{- else }}
- name: HEARTH_REDIS_URL
  value: {{ required "redis.external.url (or redis.external.existingSecret) is required when redis.enabled is false" .Values.redis.external.url | quote }}
{{- end }}
{{- end -}}

{{/* The gateway's base URL inside the cluster. */}}
{{- define "hearth.gatewayUrl" -}}
{{- printf "http://%s-gateway.%s.svc:%v" (include "hearth.fullname" .) .Release.Namespace .Values.gateway.service.port -}}
{{- end -}}

{{/* The gateway as the controller calls it: by DNS name, or by its Service's environment variable. */}}
{{- define "hearth.gatewayInternalUrl" -}}
{{- if .Values.clusterDns -}}
{{- include "hearth.gatewayUrl" . -}}
{{- else -}}
{{- printf "http://$(%s_GATEWAY_SERVICE_HOST):%v" (include "hearth.fullname" . | upper | replace "-" "_") .Values.gateway.service.port -}}
{{- end -}}
{{- end -}}

{{/* "true" when the gateway serves the management API (it needs the code store). */}}
{{- define "hearth.managementEnabled" -}}
{{- if and .Values.codeStore.enabled .Values.gateway.management.enabled -}}true{{- end -}}
{{- end -}}

{{/* Where the management API writes Functions: the first functions namespace. */}}
{{- define "hearth.managementNamespace" -}}
{{- first (include "hearth.functionNamespaces" . | fromJsonArray) -}}
{{- end -}}

{{- define "hearth.functionNamespaces" -}}
{{- if .Values.functions.namespaces -}}
{{- toJson .Values.functions.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* Whether the Prometheus Operator's API is there (or the caller asked for it explicitly). */}}
{{- define "hearth.hasMonitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}

{{/* The runtime images as JSON: {"nodejs20.x": "<registry>/hearth-runtime-nodejs20:<tag>", ...} */}}
{{- define "hearth.runtimeImages" -}}
{{- $images := dict -}}
{{- range $runtime, $name := .Values.functions.runtimeImages -}}
{{- $_ := set $images $runtime (include "hearth.image" (dict "ctx" $ "name" $name)) -}}
{{- end -}}
{{- toJson $images -}}
{{- end -}}

{{/* Settings the gateway's HTTP side and its workers share. */}}
{{- define "hearth.gatewayEnv" -}}
- name: HEARTH_GATEWAY_PORT
  value: {{ .Values.gateway.port | quote }}
# Unique per replica: names the pod in demand reports and concurrency leases.
- name: HEARTH_GATEWAY_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: HEARTH_LOG_LEVEL
  value: {{ .Values.gateway.logLevel | quote }}
- name: HEARTH_REGION
  value: {{ .Values.gateway.region | quote }}
- name: HEARTH_ACCOUNT_ID
  value: {{ .Values.gateway.accountId | quote }}
- name: HEARTH_ACCOUNT_CONCURRENCY
  value: {{ .Values.gateway.accountConcurrency | quote }}
- name: HEARTH_COLD_START_BUDGET_MS
  value: {{ .Values.gateway.coldStartBudgetMs | quote }}
- name: HEARTH_AUTH
  value: {{ .Values.gateway.auth.enabled | quote }}
{{- if .Values.gateway.auth.enabled }}
- name: HEARTH_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "hearth.apiKeySecret" . }}
      key: {{ .Values.gateway.auth.existingSecretKey }}
{{- if .Values.gateway.auth.accessKeysSecret }}
- name: HEARTH_ACCESS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.gateway.auth.accessKeysSecret }}
      key: {{ .Values.gateway.auth.accessKeysSecretKey }}
{{- end }}
{{- end }}
{{ include "hearth.redisEnv" . }}
{{- end -}}

{{/* A gateway-image pod's containers' common parts after env: probes, security, volumes. */}}
{{- define "hearth.gatewayProbes" -}}
readinessProbe:
  httpGet: { path: /healthz, port: http }
  periodSeconds: 2
  failureThreshold: 2
livenessProbe:
  httpGet: { path: /healthz, port: http }
  initialDelaySeconds: 10
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

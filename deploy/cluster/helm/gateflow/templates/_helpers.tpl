{{/*
Names, labels and the pieces every workload shares. The three processes are
one binary (`gateflow ingress|worker|sink`); "c" below is the subcommand.
*/}}

{{- define "gateflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gateflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one process: (dict "root" $ "c" "ingress"). */}}
{{- define "gateflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .c }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Labels of every object; "c" may be empty (shared objects). */}}
{{- define "gateflow.labels" -}}
{{ include "gateflow.selectorLabels" . }}
app.kubernetes.io/part-of: gateflow
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gateflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The config dir as ConfigMap data: path -> content, from config.files or the
chart's files/config. ConfigMap keys cannot hold "/": a file's key is its
path with "/" replaced by "_" (definitions/a.yaml -> definitions_a.yaml).
*/}}
{{- define "gateflow.configFiles" -}}
{{- $files := dict -}}
{{- if .Values.config.files -}}
{{- range $path, $content := .Values.config.files -}}
{{- $_ := set $files $path $content -}}
{{- end -}}
{{- else -}}
{{- range $path, $_ := .Files.Glob "files/config/**" -}}
{{- $_ := set $files (trimPrefix "files/config/" $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- if not (hasKey $files "gateflow.yaml") -}}
{{- fail "config.files: gateflow.yaml is required at the root of the config dir" -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{- define "gateflow.configKey" -}}
{{- replace "/" "_" . -}}
{{- end -}}

{{/* Pod annotations: scrape settings and the checksums that roll pods. */}}
{{- define "gateflow.podAnnotations" -}}
{{- $root := .root -}}
{{- $v := index $root.Values .c -}}
{{- if $root.Values.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "gateflow.metricsPort" . | quote }}
prometheus.io/path: /metrics
{{- end }}
checksum/connections: {{ include (print $root.Template.BasePath "/connections.yaml") $root | sha256sum }}
{{- if ne .c "sink" }}
checksum/config: {{ include (print $root.Template.BasePath "/config.yaml") $root | sha256sum }}
{{- end }}
{{- with $v.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The port serving /healthz, /readyz and /metrics. */}}
{{- define "gateflow.metricsPort" -}}
{{- $v := index .root.Values .c -}}
{{- if eq .c "ingress" }}{{ $v.port }}{{ else }}{{ $v.metricsPort }}{{ end -}}
{{- end -}}

{{- define "gateflow.portName" -}}
{{- if eq .c "ingress" }}http{{ else }}metrics{{ end -}}
{{- end -}}

{{/* The termination grace period: the stop budget of the process + 10 s
for the call-record producer + 10 s margin (cmd/gateflow's test checks the
sum). */}}
{{- define "gateflow.grace" -}}
{{- $v := index .root.Values .c -}}
{{- if eq .c "ingress" -}}
{{- add $v.preStopSleepSeconds $v.shutdownTimeoutSeconds 20 -}}
{{- else if eq .c "worker" -}}
{{- add $v.stopTimeoutSeconds 20 -}}
{{- else -}}
30
{{- end -}}
{{- end -}}

{{/* A variable from a key of the connections ConfigMap. */}}
{{- define "gateflow.connEnv" -}}
- name: {{ .name }}
  valueFrom:
    configMapKeyRef: {name: {{ include "gateflow.fullname" .root }}-connections, key: {{ .key }}}
{{- end -}}

{{/* Connection variables of one process: Temporal (ingress, worker),
Kafka and ClickHouse (all three). */}}
{{- define "gateflow.connectionEnv" -}}
{{- $root := .root -}}
{{- $t := $root.Values.temporal -}}
{{- $k := $root.Values.kafka -}}
{{- if ne .c "sink" }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_TEMPORAL_HOST" "key" "temporal-host") }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_TEMPORAL_NAMESPACE" "key" "temporal-namespace") }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_TEMPORAL_TASK_QUEUE" "key" "temporal-task-queue") }}
{{- if $t.apiKeySecretKey }}
# Temporal Cloud; turns TLS on by itself.
- name: GATEFLOW_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.secrets.name }}, key: {{ $t.apiKeySecretKey }}, optional: true}
{{- end }}
{{- if $t.tls.enabled }}
- name: GATEFLOW_TEMPORAL_TLS
  value: "true"
{{- if $t.tls.clientCert }}
- name: GATEFLOW_TEMPORAL_TLS_CERT
  value: /etc/gateflow/temporal-tls/tls.crt
- name: GATEFLOW_TEMPORAL_TLS_KEY
  value: /etc/gateflow/temporal-tls/tls.key
{{- end }}
{{- if $t.tls.ca }}
- name: GATEFLOW_TEMPORAL_TLS_CA
  value: /etc/gateflow/temporal-tls/ca.crt
{{- end }}
{{- with $t.tls.serverName }}
- name: GATEFLOW_TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_KAFKA_BROKERS" "key" "kafka-brokers") }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_KAFKA_TOPIC" "key" "kafka-topic") }}
{{ include "gateflow.connEnv" (dict "root" $root "name" "GATEFLOW_KAFKA_DLQ_TOPIC" "key" "kafka-dlq-topic") }}
{{- with $k.sasl.mechanism }}
- name: GATEFLOW_KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
- name: GATEFLOW_KAFKA_SASL_USER
  value: {{ required "kafka.sasl.user is required with kafka.sasl.mechanism" $k.sasl.user | quote }}
- name: GATEFLOW_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.secrets.name }}, key: {{ $k.sasl.passwordSecretKey }}}
{{- end }}
{{- if $k.tls.enabled }}
- name: GATEFLOW_KAFKA_TLS
  value: "true"
{{- if $k.tls.ca }}
- name: GATEFLOW_KAFKA_TLS_CA
  value: /etc/gateflow/kafka-tls/ca.crt
{{- end }}
{{- if $k.tls.clientCert }}
- name: GATEFLOW_KAFKA_TLS_CERT
  value: /etc/gateflow/kafka-tls/tls.crt
- name: GATEFLOW_KAFKA_TLS_KEY
  value: /etc/gateflow/kafka-tls/tls.key
{{- end }}
{{- with $k.tls.serverName }}
- name: GATEFLOW_KAFKA_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
# Holds the password: from the Secret. The ingress and the worker read the
# rollups (token budgets, analytics; a read-only user is enough), the sink
# writes and runs the migrations.
- name: GATEFLOW_CLICKHOUSE_DSN
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.secrets.name }}, key: {{ $root.Values.clickhouse.dsnSecretKey }}}
{{- if $root.Values.clickhouse.caSecretName }}
# A private CA for ClickHouse, added to the system roots (the DSN has no CA
# option).
- name: SSL_CERT_DIR
  value: /etc/ssl/certs:/etc/gateflow/clickhouse-ca
{{- end }}
{{- end -}}

{{/* Volumes and mounts for TLS material (per process). */}}
{{- define "gateflow.tlsVolumes" -}}
{{- $root := .root -}}
{{- if and (ne .c "sink") $root.Values.temporal.tls.enabled $root.Values.temporal.tls.secretName }}
- name: temporal-tls
  secret:
    secretName: {{ $root.Values.temporal.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if and $root.Values.kafka.tls.enabled $root.Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ $root.Values.kafka.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- with $root.Values.clickhouse.caSecretName }}
- name: clickhouse-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- end -}}

{{- define "gateflow.tlsMounts" -}}
{{- $root := .root -}}
{{- if and (ne .c "sink") $root.Values.temporal.tls.enabled $root.Values.temporal.tls.secretName }}
- name: temporal-tls
  mountPath: /etc/gateflow/temporal-tls
  readOnly: true
{{- end }}
{{- if and $root.Values.kafka.tls.enabled $root.Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/gateflow/kafka-tls
  readOnly: true
{{- end }}
{{- if $root.Values.clickhouse.caSecretName }}
- name: clickhouse-ca
  mountPath: /etc/gateflow/clickhouse-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Refuse values the processes would refuse at start (or silently ignore). */}}
{{- define "gateflow.validate" -}}
{{- range $name := list "temporal" "kafka" -}}
{{- $tls := (index $.Values $name).tls -}}
{{- if and (or $tls.clientCert $tls.ca) (not $tls.enabled) -}}
{{- fail (printf "%s.tls: clientCert and ca need enabled: true" $name) -}}
{{- end -}}
{{- if and (or $tls.clientCert $tls.ca) (not $tls.secretName) -}}
{{- fail (printf "%s.tls: clientCert and ca need secretName (the Secret holding tls.crt, tls.key, ca.crt)" $name) -}}
{{- end -}}
{{- end -}}
{{- with .Values.kafka.sasl.mechanism -}}
{{- if not (has . (list "plain" "scram-sha-256" "scram-sha-512")) -}}
{{- fail (printf "kafka.sasl.mechanism %q: want plain, scram-sha-256 or scram-sha-512" .) -}}
{{- end -}}
{{- end -}}
{{- range $c := list "ingress" "worker" "sink" -}}
{{- $v := index $.Values $c -}}
{{- if and $v.autoscaling.enabled (not (dig "requests" "cpu" "" $v.resources)) -}}
{{- fail (printf "%s.autoscaling needs %s.resources.requests.cpu (utilization is relative to it)" $c $c) -}}
{{- end -}}
{{- range $name, $_ := $v.env -}}
{{- if not (hasPrefix "GATEFLOW_" $name) -}}
{{- fail (printf "%s.env.%s: only GATEFLOW_* variables (flags of gateflow %s)" $c $name $c) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

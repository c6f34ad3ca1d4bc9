{{/*
Names and labels shared by every template, and the driftwatch container
itself, which both render modes and other charts (as a sidecar) include.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "driftwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's resources: fullnameOverride, else
<release>-<chart>, or just the release name when it already holds the chart
name. Cut to 63 characters, the limit of a DNS label.
*/}}
{{- define "driftwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* name-version, as the helm.sh/chart label wants it. */}}
{{- define "driftwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels a selector matches on: stable across upgrades. */}}
{{- define "driftwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every label of every resource. */}}
{{- define "driftwatch.labels" -}}
helm.sh/chart: {{ include "driftwatch.chart" . }}
{{ include "driftwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftwatch
{{- end -}}

{{- define "driftwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "driftwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The ConfigMap holding driftwatch.yml. */}}
{{- define "driftwatch.configMapName" -}}
{{- printf "%s-config" (include "driftwatch.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The PersistentVolumeClaim of /var/lib/driftwatch. */}}
{{- define "driftwatch.claimName" -}}
{{- default (printf "%s-data" (include "driftwatch.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/*
The checksum/config annotation: a change of the configuration changes the
pod template, so `helm upgrade` rolls the pods and they read the new file.
*/}}
{{- define "driftwatch.configChecksum" -}}
checksum/config: {{ .Values.config | toYaml | sha256sum }}
{{- end -}}

{{/*
The driftwatch container, as one item of a pod's `containers` list. Used by
both render modes, and meant for other charts too: a chart that has this
one as a dependency (with `mode: embedded`, so that it renders the
ConfigMap but no Deployment of its own) puts driftwatch beside its model
server with

  containers:
    - name: model-server
      ...
    {{- include "driftwatch.sidecarContainer" (index .Subcharts "driftwatch") | nindent 4 }}
  volumes:
    {{- include "driftwatch.volumes" (index .Subcharts "driftwatch") | nindent 4 }}

The container mounts the volumes `driftwatch-config` (the ConfigMap with
driftwatch.yml) and `driftwatch-data` (/var/lib/driftwatch), which
"driftwatch.volumes" declares.
*/}}
{{- define "driftwatch.sidecarContainer" -}}
- name: driftwatch
  image: {{ include "driftwatch.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - --config.file=/etc/driftwatch/driftwatch.yml
    - --web.listen-address=0.0.0.0:{{ .Values.containerPort }}
    - --storage.path=/var/lib/driftwatch
    - --log.level={{ .Values.log.level }}
    - --log.format={{ .Values.log.format }}
    {{- if eq .Values.mode "sharded" }}
    - --shard.total={{ .Values.sharding.shards }}
    {{- end }}
    {{- range .Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if or .Values.extraEnv (eq .Values.mode "sharded") }}
  env:
    {{- if eq .Values.mode "sharded" }}
    # The shard index is the ordinal ending the StatefulSet pod's name.
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    - name: http-metrics
      containerPort: {{ .Values.containerPort }}
      protocol: TCP
  {{- with .Values.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: driftwatch-config
      mountPath: /etc/driftwatch
      readOnly: true
    - name: driftwatch-data
      mountPath: /var/lib/driftwatch
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The volumes the driftwatch container mounts, as items of `volumes`. */}}
{{- define "driftwatch.volumes" -}}
- name: driftwatch-config
  configMap:
    name: {{ include "driftwatch.configMapName" . }}
{{- /* A sharded StatefulSet's claim template provides driftwatch-data. */}}
{{- if not (and .Values.persistence.enabled (eq .Values.mode "sharded")) }}
- name: driftwatch-data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "driftwatch.claimName" . }}
  {{- else }}
  emptyDir:
    {{- with .Values.emptyDir.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* What the values must satisfy; fails the render with a clear message. */}}
{{- define "driftwatch.validate" -}}
{{- if not (has .Values.mode (list "standalone" "sidecar" "embedded" "sharded")) -}}
{{- fail (printf "mode must be standalone, sidecar, embedded or sharded, not %q" .Values.mode) -}}
{{- end -}}
{{- if eq .Values.mode "sharded" -}}
{{- if lt (int .Values.sharding.shards) 1 -}}
{{- fail "sharding.shards must be at least 1" -}}
{{- end -}}
{{- if not .Values.service.enabled -}}
{{- fail "mode: sharded needs service.enabled: the StatefulSet names its pods through the headless Service" -}}
{{- end -}}
{{- else if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) -}}
{{- fail "persistence.enabled needs replicaCount 1: a ReadWriteOnce volume belongs to one pod" -}}
{{- end -}}
{{- if not .Values.config.sources -}}
{{- fail "config.sources is empty: driftwatch needs at least one source to watch" -}}
{{- end -}}
{{- end -}}

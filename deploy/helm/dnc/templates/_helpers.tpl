{{/*
Shared pieces of the dnc chart. Roles are a fixed list (they are the service's processes,
not user-defined); every per-role template ranges over dnc.roles.
*/}}

{{- define "dnc.roles" -}}
ingest listwriter gate api{{ if eq .Values.view.backend "postgres" }} viewwriter{{ end }}
{{- end -}}

{{- define "dnc.consumerRoles" -}}
ingest listwriter gate
{{- end -}}

{{- define "dnc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dnc.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "dnc.metaLabels" . }}
{{- end -}}

{{/* The labels that are not selectors (pods carry them next to dnc.selectorLabels). */}}
{{- define "dnc.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dnc
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "gate"). Never change them: a
Deployment's selector is immutable. */}}
{{- define "dnc.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "dnc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dnc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dnc.image" -}}
{{- $repo := required "image.repository is required (the registry path of deploy/docker/Dockerfile's image)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag must not be \"latest\": pin a version (or image.digest) so rollouts and rollbacks are reproducible" -}}
{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/*
Seconds a role may legitimately need between SIGTERM and exit, plus margin:
  preStop sleep (api only)
  + the API's HTTP drain (uvicorn's graceful shutdown = the deadline; api only)
  + the deadline for the batch in flight, + 5 s that dnc.runtime allows stop() on top
  + terminationMarginSeconds.
Kubernetes SIGKILLs at terminationGracePeriodSeconds, counted from the start of preStop.
*/}}
{{- define "dnc.gracePeriod" -}}
{{- $deadline := .root.Values.shutdownDeadlineSeconds | int -}}
{{- $grace := add $deadline 5 .root.Values.terminationMarginSeconds -}}
{{- if eq .role "api" -}}
{{- $grace = add $grace $deadline .root.Values.api.preStopSleepSeconds -}}
{{- end -}}
{{- $grace -}}
{{- end -}}

{{/*
Non-secret settings as DNC_* variables (a YAML map). The ConfigMap renders it for the roles;
the topics hook Job renders it inline because hooks run before the ConfigMap exists.
*/}}
{{- define "dnc.config" -}}
{{- $v := .Values -}}
{{- if and (not $v.redis.existingSecret) (not $v.redis.url) -}}
{{- fail "set redis.url, or redis.existingSecret for a URL with credentials" -}}
{{- end -}}
{{- if and $v.redis.url (regexMatch "^[a-z+]+://[^/]*@" $v.redis.url) -}}
{{- fail "redis.url contains credentials: put the URL in a Secret and set redis.existingSecret" -}}
{{- end -}}
{{- $c := dict
  "DNC_KAFKA_BOOTSTRAP" (required "kafka.bootstrap is required" $v.kafka.bootstrap)
  "DNC_APP_ID" $v.appId
  "DNC_INDEX__PREFIX" $v.index.prefix
  "DNC_INDEX__BUCKETS" ($v.index.buckets | int | toString)
  "DNC_INDEX__CLUSTER" ($v.redis.cluster | toString)
  "DNC_TOPIC_LAYOUT__INPUT_PARTITIONS" ($v.topicLayout.inputPartitions | int | toString)
  "DNC_TOPIC_LAYOUT__OUTBOUND_PARTITIONS" ($v.topicLayout.outboundPartitions | int | toString)
  "DNC_TOPIC_LAYOUT__LIST_PARTITIONS" ($v.topicLayout.listPartitions | int | toString)
  "DNC_TOPIC_LAYOUT__REPLICATION_FACTOR" ($v.topicLayout.replicationFactor | int | toString)
  "DNC_SHUTDOWN_DEADLINE_S" ($v.shutdownDeadlineSeconds | int | toString)
  "DNC_LOG_LEVEL" $v.logLevel
  "DNC_LOG_JSON" ($v.logJson | toString)
  "DNC_HEARTBEAT_FILE" $v.heartbeat.file
  "DNC_HEARTBEAT_INTERVAL_S" ($v.heartbeat.intervalSeconds | int | toString)
  "DNC_API__PUBLIC_BASE_URL" (required "api.publicBaseUrl is required (base of unsubscribe links)" $v.api.publicBaseUrl)
  "DNC_VIEW__BACKEND" $v.view.backend
  "DNC_VIEW__POSTGRES_POOL_SIZE" ($v.view.postgresPoolSize | int | toString)
-}}
{{- if $v.viewwriter.autoscaling.enabled -}}
{{- fail "viewwriter.autoscaling is not supported yet: size it with viewwriter.replicas (at most the list's partitions)" -}}
{{- end -}}
{{- if and (eq $v.view.backend "postgres") (not $v.view.postgresSecret) -}}
{{- fail "view.backend=postgres needs view.postgresSecret: the Secret holding the PostgreSQL URL (DNC_VIEW__POSTGRES_URL) under view.postgresSecretKey" -}}
{{- end -}}
{{- if not $v.redis.existingSecret -}}
{{- $_ := set $c "DNC_REDIS_URL" $v.redis.url -}}
{{- end -}}
{{- if $v.metrics.enabled -}}
{{- $_ := set $c "DNC_METRICS_PORT" ($v.metrics.port | int | toString) -}}
{{- end -}}
{{- range $name, $topic := $v.topics -}}
{{- $_ := set $c (printf "DNC_TOPICS__%s" (upper $name)) (toString $topic) -}}
{{- end -}}
{{- range $name, $value := $v.extraEnv -}}
{{- if not (hasPrefix "DNC_" $name) -}}
{{- fail (printf "extraEnv.%s: only DNC_* settings belong here" $name) -}}
{{- end -}}
{{- if regexMatch "(KEYS|SECRET|PASSWORD|TOKEN|REDIS_URL)" $name -}}
{{- fail (printf "extraEnv.%s may carry a secret: it must come from a Secret (secrets.existingSecret, redis.existingSecret)" $name) -}}
{{- end -}}
{{- if hasKey $c $name -}}
{{- fail (printf "extraEnv.%s is set by the chart: use its own value instead" $name) -}}
{{- end -}}
{{- $_ := set $c $name (toString $value) -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Secret-backed variables a role needs, and nothing more (least privilege). */}}
{{- define "dnc.secretEnv" -}}
{{- $root := .root -}}
{{- $secret := required "secrets.existingSecret is required: the chart never ships default API or unsubscribe keys" $root.Values.secrets.existingSecret -}}
{{- if $root.Values.redis.existingSecret }}
- name: DNC_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.redis.existingSecret }}
      key: {{ $root.Values.redis.existingSecretKey }}
{{- end }}
{{- if and (eq $root.Values.view.backend "postgres") (has .role (list "api" "viewwriter")) }}
- name: DNC_VIEW__POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.view.postgresSecret }}
      key: {{ $root.Values.view.postgresSecretKey }}
{{- end }}
{{- if eq .role "api" }}
- name: DNC_API__KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.apiKeysKey }}
{{- end }}
{{- if has .role (list "api" "ingest") }}
{{- /* ingest verifies unsubscribe-link signatures; the API signs and verifies them. */}}
- name: DNC_API__UNSUBSCRIBE_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.unsubscribeKeysKey }}
{{- end }}
{{- end -}}

{{/*
Heartbeat probe of a consumer role: (dict "root" $ "maxAge" 20). Plain sh + coreutils
(no Python start-up per probe): the file must exist and be younger than maxAge seconds.
*/}}
{{- define "dnc.heartbeatProbe" -}}
exec:
  command:
    - /bin/sh
    - -c
    - {{ printf "f=%s; [ -f \"$f\" ] && [ $(( $(date +%%s) - $(stat -c %%Y \"$f\") )) -lt %d ]" .root.Values.heartbeat.file (.maxAge | int) | quote }}
{{- end -}}

{{/*
Upper bound of useful instances of a role: a consumer without a partition idles. For ingest
(four input topics, one KEDA trigger each) every trigger is capped at its topic's partitions
and the HPA takes the largest, so the cap is one topic's partition count.
*/}}
{{- define "dnc.partitionsOf" -}}
{{- $l := .root.Values.topicLayout -}}
{{- if eq .role "gate" -}}{{ $l.outboundPartitions }}
{{- else if eq .role "listwriter" -}}{{ $l.listPartitions }}
{{- else if eq .role "ingest" -}}{{ $l.inputPartitions }}
{{- else if eq .role "viewwriter" -}}{{ $l.listPartitions }}
{{- end -}}
{{- end -}}

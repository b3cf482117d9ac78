{{- define "kafkube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafkube.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kafkube.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kafkube.labels" -}}
app.kubernetes.io/name: {{ include "kafkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kafkube.selector" -}}
app.kubernetes.io/name: {{ include "kafkube.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A component's service account: its own existing one (.own.name), else the chart's
     <fullname>-<component>. One each, so a cloud role bound to one (the S3 sink's) reaches
     no other pod. */}}
{{- define "kafkube.serviceAccountName" -}}
{{- default (printf "%s-%s" (include "kafkube.fullname" .root) .component) (.own | default dict).name -}}
{{- end -}}

{{/* Every component the values enable: its name, its service account values, and whether
     its pods reach the Kubernetes API. */}}
{{- define "kafkube.components" -}}
{{- $components := list -}}
{{- if .Values.producer.enabled -}}
{{- $components = append $components (dict "component" "producer" "account" (.Values.producer.serviceAccount | default dict)) -}}
{{- end -}}
{{- range $type, $sink := .Values.sinks -}}
{{- if $sink.enabled -}}
{{- $components = append $components (dict "component" (printf "sink-%s" $type) "account" ($sink.serviceAccount | default dict)) -}}
{{- end -}}
{{- end -}}
{{- toJson $components -}}
{{- end -}}

{{- define "kafkube.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* kafkube's configuration file, from the values. */}}
{{- define "kafkube.config" -}}
{{- $kafka := .Values.kafka -}}
{{- $security := dict "protocol" $kafka.security.protocol -}}
{{- if $kafka.security.saslMechanism }}{{ $_ := set $security "sasl_mechanism" $kafka.security.saslMechanism }}{{ end -}}
{{- if $kafka.security.username }}{{ $_ := set $security "username" $kafka.security.username }}{{ end -}}
{{- with $kafka.security.oidc -}}
{{- if .tokenEndpoint -}}
{{- $oidc := dict "token_endpoint" .tokenEndpoint "client_id" .clientId -}}
{{- if .scope }}{{ $_ := set $oidc "scope" .scope }}{{ end -}}
{{- if .extensions }}{{ $_ := set $oidc "extensions" .extensions }}{{ end -}}
{{- if .caSecret.name }}{{ $_ := set $oidc "ca_file" (printf "/etc/kafkube/oidc-ca/%s" .caSecret.key) }}{{ end -}}
{{- $_ := set $security "oidc" $oidc -}}
{{- end -}}
{{- end -}}
{{- with $kafka.security.mskIam -}}
{{- if or .region .roleArn -}}
{{- $msk := dict -}}
{{- if .region }}{{ $_ := set $msk "region" .region }}{{ end -}}
{{- if .roleArn }}{{ $_ := set $msk "role_arn" .roleArn }}{{ end -}}
{{- $_ := set $security "msk_iam" $msk -}}
{{- end -}}
{{- end -}}
{{- if $kafka.security.tlsSecret.name -}}
{{- $_ := set $security "ca_file" "/etc/kafkube/kafka-tls/ca.crt" -}}
{{- if $kafka.security.tlsSecret.mutual -}}
{{- $_ := set $security "cert_file" "/etc/kafkube/kafka-tls/tls.crt" -}}
{{- $_ := set $security "key_file" "/etc/kafkube/kafka-tls/tls.key" -}}
{{- end -}}
{{- end -}}
{{- $sinks := dict -}}
{{- range $type, $sink := .Values.sinks -}}
{{- if $sink.enabled -}}
{{- $own := deepCopy (default dict $sink.config) -}}
{{- range $field, $value := $own -}}
{{- if and (kindIs "string" $value) (eq $value "") -}}
{{- fail (printf "sinks.%s.config.%s is required" $type $field) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $own "enabled" true -}}
{{- $_ := set $sinks $type $own -}}
{{- end -}}
{{- end -}}
{{- $config := dict
  "kafka" (dict "bootstrap_servers" $kafka.bootstrapServers "topic" $kafka.topic "security" $security "properties" $kafka.properties)
  "producer" (dict "cluster" .Values.clusterName "api_version" .Values.producer.apiVersion "namespaces" .Values.producer.namespaces
               "filter" .Values.producer.filter "enrich" .Values.producer.enrich
               "leader_election" (dict "enabled" true "lease_name" (printf "%s-producer" (include "kafkube.fullname" .))
                                        "namespace" .Release.Namespace
                                        "lease_duration_seconds" .Values.producer.leaseDurationSeconds
                                        "renew_period_seconds" .Values.producer.renewPeriodSeconds))
  "sinks" $sinks
  "observability" (dict "listen" (printf "0.0.0.0:%d" (int .Values.observability.port)) "log_format" .Values.observability.logFormat "log_level" .Values.observability.logLevel)
-}}
{{- toYaml $config -}}
{{- end -}}

{{/* The pod spec shared by the producer and every sink; .args says which it runs. */}}
{{- define "kafkube.pod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "kafkube.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "kafkube.config" $root | sha256sum }}
    {{- if $root.Values.observability.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $root.Values.observability.port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kafkube.serviceAccountName" (dict "root" $root "component" .component "own" .account) }}
  automountServiceAccountToken: {{ .kubeApi }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: 60
  containers:
    - name: kafkube
      image: {{ include "kafkube.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: {{ toJson .args }}
      env:
        - name: KAFKUBE_CONFIG
          value: /etc/kafkube/config/config.yaml
        {{- with $root.Values.kafka.security.passwordSecret }}
        {{- if .name }}
        - name: KAFKUBE_KAFKA__SECURITY__PASSWORD
          valueFrom:
            secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
        {{- end }}
        {{- end }}
        {{- with $root.Values.kafka.security.oidc.clientSecretSecret }}
        {{- if .name }}
        - name: KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET
          valueFrom:
            secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
        {{- end }}
        {{- end }}
        {{- range .env }}
        - {{ toJson . }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ $root.Values.observability.port }}
          protocol: TCP
      livenessProbe:
        httpGet: {path: /healthz, port: metrics}
        periodSeconds: 10
        failureThreshold: 6
      readinessProbe:
        httpGet: {path: /readyz, port: metrics}
        periodSeconds: 5
        failureThreshold: 2
      startupProbe:
        httpGet: {path: /healthz, port: metrics}
        periodSeconds: 2
        failureThreshold: 60
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/kafkube/config, readOnly: true}
        - {name: tmp, mountPath: /tmp}
        {{- if $root.Values.kafka.security.tlsSecret.name }}
        - {name: kafka-tls, mountPath: /etc/kafkube/kafka-tls, readOnly: true}
        {{- end }}
        {{- if $root.Values.kafka.security.oidc.caSecret.name }}
        - {name: oidc-ca, mountPath: /etc/kafkube/oidc-ca, readOnly: true}
        {{- end }}
        {{- range .mounts }}
        - {{ toJson . }}
        {{- end }}
  volumes:
    - name: config
      configMap: {name: {{ include "kafkube.fullname" $root }}}
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    {{- if $root.Values.kafka.security.tlsSecret.name }}
    - name: kafka-tls
      secret: {secretName: {{ $root.Values.kafka.security.tlsSecret.name }}}
    {{- end }}
    {{- with $root.Values.kafka.security.oidc.caSecret }}
    {{- if .name }}
    - name: oidc-ca
      secret: {secretName: {{ .name }}, items: [{key: {{ .key }}, path: {{ .key }}}]}
    {{- end }}
    {{- end }}
    {{- range .volumes }}
    - {{ toJson . }}
    {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.topologySpreadConstraints }}
  {{- $component := $.component }}
  topologySpreadConstraints:
    {{- /* Each constraint spreads the pods of one component: its own selector unless given. */}}
    {{- range . }}
    - {{ toJson (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "kafkube.selector" (dict "root" $root "component" $component) | fromYaml)))) }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/* Names and labels shared by every object. */}}
{{- define "govcloud.labels" -}}
app.kubernetes.io/part-of: govcloud
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "govcloud.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "govcloud.operator" -}}{{ .Release.Name }}-operator{{- end }}
{{- define "govcloud.api" -}}{{ .Release.Name }}-api{{- end }}

{{/* The platform's namespaces, as both binaries must be given them. */}}
{{- define "govcloud.reserved" -}}
{{- join "," (concat (list .Release.Namespace) .Values.platform.reservedNamespaces) -}}
{{- end }}

{{/* Pod and container security: the restricted Pod Security level. */}}
{{- define "govcloud.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "govcloud.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
